// `affinity campaign`: new products → one personalized letter per interested customer, each told
// once (engine/include/affinity/campaign.h, docs/campaigns.md).
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "affinity/campaign.h"
#include "affinity/time_util.h"
#include "commands.h"

namespace affinity::cli {
namespace {

struct CampaignFlags {
  std::string db;
  std::string snapshots;
  std::string since;
  std::vector<std::string> products;
  bool dry_run = false;
  std::string out;
  std::string smtp;
  std::string smtp_user;
  bool smtp_require_tls = false;
  int smtp_timeout = 30;
  std::string template_dir;
  std::string write_templates;
  std::string campaign_id;
  CampaignOptions options;
  LetterOptions letter;
  std::string now;
  bool json = false;
  bool quiet = false;
};

// Test hook (docs/campaigns.md): AFFINITY_CAMPAIGN_CRASH_AFTER_SENT=K ends the process abruptly
// (no destructors, no flush: as kill -9 would) once K letters are marked sent;
// AFFINITY_CAMPAIGN_CRASH_BEFORE_MARK=K once the K-th letter is delivered but not yet marked.
std::optional<int64_t> CrashPoint(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::strtoll(v, nullptr, 10);
}

void PrintReport(const CampaignReport& r) {
  std::printf("campaign %s%s (model v%lld, probabilities within %g days)%s%s\n",
              r.campaign_id.c_str(), r.dry_run ? " [dry run]" : "",
              static_cast<long long>(r.model_version), r.horizon_days, r.sink.empty() ? "" : " -> ",
              r.sink.c_str());
  if (r.resumed) std::printf("resumed: planned by an earlier run\n");
  int64_t with_audience = 0;
  for (const auto& p : r.products) with_audience += p.skipped.empty() ? 1 : 0;
  std::printf("products: %zu new, %lld with an audience; %lld customer-product pairs scored\n",
              r.products.size(), static_cast<long long>(with_audience),
              static_cast<long long>(r.customers_scored));
  std::printf(
      "letters: %lld planned, %lld sent by this run, %lld sent before, %lld pending, %lld failed, "
      "%lld rejected, %lld skipped\n",
      static_cast<long long>(r.letters_planned), static_cast<long long>(r.letters_sent),
      static_cast<long long>(r.letters_sent_before), static_cast<long long>(r.letters_pending),
      static_cast<long long>(r.letters_failed), static_cast<long long>(r.letters_rejected),
      static_cast<long long>(r.letters_skipped));
  if (r.letters_dropped > 0) {
    std::printf(
        "dropped: %lld (their address had this campaign's letter through another account)\n",
        static_cast<long long>(r.letters_dropped));
  }
  std::printf("suppressed:");
  if (r.suppressed.empty()) std::printf(" none");
  for (const auto& [rule, n] : r.suppressed) {
    std::printf(" %s %lld;", rule.c_str(), static_cast<long long>(n));
  }
  std::printf("\nexpected buyers: %.1f (sum of calibrated probabilities in the planned letters)\n",
              r.expected_buyers);
  std::printf("top products by expected buyers:\n");
  int shown = 0;
  for (const auto& p : r.products) {
    if (shown++ == 10) break;
    if (!p.skipped.empty()) {
      std::printf("  %-12s %-40.40s skipped: %s\n", p.product.c_str(), p.title.c_str(),
                  p.skipped.c_str());
      continue;
    }
    std::printf("  %-12s %-40.40s audience %6lld  letters %6lld  expected %6.2f\n",
                p.product.c_str(), p.title.c_str(), static_cast<long long>(p.audience),
                static_cast<long long>(p.letters), p.expected_buyers);
  }
  for (const auto& e : r.errors) std::printf("error: %s\n", e.c_str());
  for (const auto& n : r.notes) std::printf("note: %s\n", n.c_str());
  std::printf("time: plan %.2f s, delivery %.2f s\n", r.plan_seconds, r.deliver_seconds);
}

int Run(CampaignFlags& f) {
  if (!f.write_templates.empty()) {
    Status s = LetterTemplates::WriteDefault(f.write_templates);
    if (!s.ok()) return Fail(s);
    std::printf("wrote subject.mustache, letter.txt.mustache, letter.html.mustache to %s\n",
                f.write_templates.c_str());
    return 0;
  }
  if (f.db.empty() || f.snapshots.empty()) {
    return Fail(Status::InvalidArgument("--db and --snapshots are required", "db"));
  }
  if (f.since.empty() && f.products.empty()) {
    return Fail(Status::InvalidArgument("give --since DATE or --products ID,...", "since"));
  }
  if (!f.out.empty() && !f.smtp.empty()) {
    return Fail(Status::InvalidArgument("give --out or --smtp, not both", "out"));
  }
  if (f.out.empty() && f.smtp.empty() && !f.dry_run) {
    return Fail(Status::InvalidArgument(
        "give --out DIR (.eml files) or --smtp URL, or --dry-run to plan only", "out"));
  }
  CampaignOptions& o = f.options;
  o.campaign_id = f.campaign_id;
  o.products = f.products;
  o.dry_run = f.dry_run;
  if (!f.since.empty()) {
    auto since = ParseTimestamp(f.since);
    if (!since.ok()) return Fail(Status::InvalidArgument(since.status().message(), "since"));
    o.since = *since;
  }
  if (!f.now.empty()) {
    auto now = ParseTimestamp(f.now);
    if (!now.ok()) return Fail(Status::InvalidArgument(now.status().message(), "now"));
    o.now = *now;
  }
  if (Status s = o.Validate(); !s.ok()) return Fail(s);
  if (Status s = f.letter.Validate(); !s.ok()) return Fail(s);
  LetterTemplates templates = LetterTemplates::Default();
  if (!f.template_dir.empty()) {
    auto loaded = LetterTemplates::Load(f.template_dir);
    if (!loaded.ok()) return Fail(loaded.status());
    templates = std::move(*loaded);
  }

  std::unique_ptr<LetterSink> sink;
  if (!f.out.empty()) {
    auto s = OpenEmlDirectory(f.out);
    if (!s.ok()) return Fail(s.status());
    sink = std::move(*s);
  } else if (!f.smtp.empty() && !f.dry_run) {
    SmtpOptions so;
    so.url = f.smtp;
    so.user = f.smtp_user;
    if (const char* password = std::getenv("AFFINITY_SMTP_PASSWORD")) so.password = password;
    so.require_tls = f.smtp_require_tls;
    so.timeout_seconds = f.smtp_timeout;
    auto s = OpenSmtp(so);
    if (!s.ok()) return Fail(s.status());
    sink = std::move(*s);
  }

  // A dry run only reads, so it may run beside a server on the same store; a real run records
  // the plan and each letter with fsync'ed writes (the ledger must survive a power loss, or
  // letters already out would be sent again).
  StoreOptions store_options;
  store_options.read_only = f.dry_run;
  store_options.sync_writes = true;
  auto store = Store::Open(f.db, store_options);
  if (!store.ok()) return Fail(store.status());
  ServingOptions serving;
  if (!f.quiet) std::fprintf(stderr, "campaign: loading the model and the store\n");
  auto engine = ServingEngine::Open(store->get(), f.snapshots, serving);
  if (!engine.ok()) return Fail(engine.status());

  CampaignHooks hooks;
  const bool quiet = f.quiet;
  hooks.audience_progress = [quiet](size_t done, size_t all) {
    if (!quiet && (done == all || done % 25 == 0)) {
      std::fprintf(stderr, "campaign: audiences %zu/%zu\n", done, all);
    }
  };
  const std::optional<int64_t> crash_after_sent = CrashPoint("AFFINITY_CAMPAIGN_CRASH_AFTER_SENT");
  const std::optional<int64_t> crash_before_mark =
      CrashPoint("AFFINITY_CAMPAIGN_CRASH_BEFORE_MARK");
  hooks.delivered = [crash_before_mark](int64_t n) {
    if (crash_before_mark && n >= *crash_before_mark) std::_Exit(137);
  };
  hooks.marked_sent = [crash_after_sent, quiet](int64_t n) {
    if (!quiet && n % 1000 == 0)
      std::fprintf(stderr, "campaign: %lld letters sent\n", static_cast<long long>(n));
    if (crash_after_sent && n >= *crash_after_sent) std::_Exit(137);
  };
  auto report = RunCampaign(**engine, o, f.letter, templates, sink.get(), hooks);
  if (!report.ok()) return Fail(report.status());
  if (f.json) {
    std::printf("%s\n", Dump(CampaignReportJson(*report)).c_str());
  } else {
    PrintReport(*report);
  }
  // Letters that failed stay pending for the next run; the exit code tells the scheduler.
  return report->letters_failed > 0 ? 1 : 0;
}

}  // namespace

Command RegisterCampaign(CLI::App& app) {
  auto f = std::make_shared<CampaignFlags>();
  CLI::App* sub = app.add_subcommand(
      "campaign",
      "Tell customers about new products: one letter per interested customer (up to N products,\n"
      "best first, each with its reason), under opt-outs, a frequency cap and a ledger so nobody\n"
      "is told twice. Re-running a campaign id sends only what is still pending\n"
      "(docs/campaigns.md).");
  sub->add_option("--db", f->db, "Store directory");
  sub->add_option("--snapshots", f->snapshots, "Snapshot root directory");
  sub->add_option("--since", f->since,
                  "New products: created at or after this time (2011-11-09 or ISO 8601)");
  sub->add_option("--products", f->products, "New products: these ids (comma-separated)")
      ->delimiter(',');
  sub->add_flag("--dry-run", f->dry_run,
                "Plan and render, write nothing to the ledger, send nothing (with --out the "
                "letters are written there as previews)");
  sub->add_option("--out", f->out, "Write each letter as an .eml file into this directory");
  sub->add_option("--smtp", f->smtp, "Send over SMTP: smtp://host:port or smtps://host:port");
  sub->add_option("--smtp-user", f->smtp_user,
                  "SMTP user (the password comes from $AFFINITY_SMTP_PASSWORD)");
  sub->add_flag("--smtp-require-tls", f->smtp_require_tls,
                "Refuse to send unless the connection is encrypted (STARTTLS or smtps)");
  sub->add_option("--smtp-timeout", f->smtp_timeout, "Seconds per message")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  sub->add_option("--template", f->template_dir,
                  "Directory with subject.mustache, letter.txt.mustache, letter.html.mustache "
                  "(missing ones: built-in)");
  sub->add_option("--write-templates", f->write_templates,
                  "Write the built-in templates to this directory and exit");
  sub->add_option("--campaign-id", f->campaign_id,
                  "Campaign id (default: new-since-DATE, or products-HASH of the product list)");
  sub->add_option("--products-per-letter", f->options.products_per_letter,
                  "Most new products in one customer's letter (the likeliest)")
      ->capture_default_str()
      ->check(CLI::Range(1, 50));
  sub->add_option("--min-probability", f->options.min_probability,
                  "Leave out customer-product pairs less likely than this (calibrated)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--horizon-days", f->options.horizon_days,
                  "Window of the probabilities (default: the model's calibration)");
  sub->add_option("--frequency-cap", f->options.frequency_cap_letters,
                  "At most this many letters per customer within --frequency-cap-days, across "
                  "campaigns (0: no cap)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  sub->add_option("--frequency-cap-days", f->options.frequency_cap_days,
                  "The cap's window, in whole days (UTC) counting today")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3650.0));
  sub->add_option("--max-letters", f->options.max_letters,
                  "Most letters (keeping those with the most expected buyers; 0: no cap)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  sub->add_option("--now", f->now,
                  "The time of the run: the frequency cap's today, the ledger's times and the "
                  "letters' Date (default: now)");
  sub->add_option("--shop-name", f->letter.shop_name, "The shop, in letters and as sender name")
      ->capture_default_str();
  sub->add_option("--shop-url", f->letter.shop_url,
                  "The shop's absolute http(s) URL, for the links ({{shop_url}})")
      ->capture_default_str();
  sub->add_option("--from", f->letter.from_address, "Sender address")->capture_default_str();
  sub->add_option("--from-name", f->letter.from_name, "Sender name (default: the shop name)");
  sub->add_option("--product-url", f->letter.product_url,
                  "Mustache template of a product link ({{shop_url}}, {{product}})")
      ->capture_default_str();
  sub->add_option("--unsubscribe-url", f->letter.unsubscribe_url,
                  "Mustache template of the unsubscribe link ({{shop_url}}, {{customer}}, "
                  "{{token}}; POST /v1/unsubscribe checks the token)")
      ->capture_default_str();
  sub->add_option("--one-click-url", f->letter.one_click_url,
                  "Mustache template of the List-Unsubscribe URL mail clients POST to "
                  "(RFC 8058), e.g. the server's /v1/unsubscribe?customer={{customer}}&"
                  "token={{token}} (default: the unsubscribe link)");
  sub->add_option("--currency", f->letter.currency, "Printed before prices")->capture_default_str();
  sub->add_flag("--json", f->json, "Print the report as one JSON object");
  sub->add_flag("--quiet", f->quiet, "No progress on stderr");
  return [f] { return Run(*f); };
}

}  // namespace affinity::cli
