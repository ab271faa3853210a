// `affinity campaign` end to end, as the marketing team's scheduler runs it: the launch shop
// (tests/launch_shop.h) with two products launched after the snapshot, letters delivered to a
// real SMTP server on loopback (aiosmtpd, tests/tools/smtp_sink.py, which parses every message
// with Python's email package) or written as .eml files, and runs killed half-way (the
// AFFINITY_CAMPAIGN_CRASH_* hooks end the process with _Exit, as kill -9 would) that resume
// without duplicates.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "launch_shop.h"

extern char** environ;

namespace affinity {
namespace {

using testing::LaunchDay;
using testing::ScratchDir;

using RunResult = testing::CliRun;

// `affinity <args>` with `env`; stderr (progress) dropped, so the output is the JSON report.
RunResult RunCli(const std::string& args, const std::string& env = "") {
  return testing::RunCli(args, env, /*keep_stderr=*/false);
}

nlohmann::json Report(const RunResult& r) {
  auto j = nlohmann::json::parse(r.output, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.output;
  return j;
}

// The SMTP server, for the lifetime of the object.
class SmtpSink {
 public:
  // `flags`: more of smtp_sink.py's (--refuse-senders, --relay-denied, --refuse-messages).
  explicit SmtpSink(const ScratchDir& dir, const std::vector<std::string>& reject = {},
                    const std::vector<std::string>& flags = {})
      : log_(dir.Sub("smtp.jsonl")) {
    const std::string port_file = dir.Sub("smtp.port");
    std::filesystem::remove(port_file);  // an earlier sink's
    const std::string script = std::string(AFFINITY_SOURCE_DIR) + "/tests/tools/smtp_sink.py";
    std::vector<std::string> args = {"/usr/bin/python3", script,   "--log", log_,
                                     "--port-file",      port_file};
    for (const std::string& address : reject) {
      args.push_back("--reject");
      args.push_back(address);
    }
    args.insert(args.end(), flags.begin(), flags.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) != 0) pid_ = -1;
    for (int i = 0; i < 200 && pid_ > 0; ++i) {  // up to 20 s for Python to start
      std::ifstream in(port_file);
      if (in >> port_) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ~SmtpSink() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
  }
  bool ready() const { return port_ > 0; }
  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }

  // The messages received so far, one JSON object each.
  std::vector<nlohmann::json> Messages() const {
    std::vector<nlohmann::json> out;
    std::ifstream in(log_);
    std::string line;
    while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
    return out;
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// The launch shop in dir/db with snapshot v1 in dir/snaps, emails for everyone, one opt-out,
// and kx (kitchen) and rx (running) launched on day 125.
void MakeShop(const ScratchDir& dir) {
  {
    auto store = Store::Open(dir.Sub("db"), StoreOptions());
    ASSERT_TRUE(store.ok());
    testing::FillLaunchShop(store->get());
    ASSERT_EQ(testing::TrainLaunchSnapshot(**store, dir.Sub("snaps")), 1);
    std::vector<std::pair<std::string, CustomerProfile>> customers;
    for (char side : {'a', 'b'}) {
      for (int i = 0; i < testing::kLaunchCustomers; ++i) {
        const std::string id = testing::LaunchCustomer(side, i);
        CustomerProfile p;
        p.email = id + "@mail.example";
        p.name = side == 'a' ? "Zoë Müller" : "Ann O'Neil";
        p.opted_out = id == "a03";
        customers.emplace_back(id, p);
      }
    }
    ASSERT_TRUE((*store)->UpsertCustomers(customers).ok());
    std::vector<std::pair<std::string, ProductAttributes>> products;
    for (char side : {'k', 'r'}) {
      ProductAttributes a = testing::LaunchProduct(side, 99, true);
      a.title = side == 'k' ? "Enamel mug \"Ørsted\" <new>" : "Trail shoe new 99";
      a.created_at = LaunchDay(125);
      products.emplace_back(std::string(1, side) + "x", a);
    }
    ASSERT_TRUE((*store)->UpsertProducts(products).ok());
  }
}

std::string CampaignArgs(const ScratchDir& dir, const std::string& more) {
  return "campaign --quiet --json --db " + dir.Sub("db") + " --snapshots " + dir.Sub("snaps") +
         " --since 2025-05-06 --now 2025-05-07 --min-probability 0.05 " + more;
}

TEST(CampaignCli, SmtpDeliveryKilledHalfWayResumesExactlyOnce) {
  ScratchDir dir;
  MakeShop(dir);
  SmtpSink smtp(dir);
  ASSERT_TRUE(smtp.ready()) << "the SMTP sink did not start (python3-aiosmtpd installed?)";

  // Killed once 3 letters are marked sent.
  RunResult killed =
      RunCli(CampaignArgs(dir, "--smtp " + smtp.url()), "AFFINITY_CAMPAIGN_CRASH_AFTER_SENT=3");
  EXPECT_EQ(killed.exit_code, 137) << killed.output;
  EXPECT_EQ(smtp.Messages().size(), 3u);

  RunResult resumed = RunCli(CampaignArgs(dir, "--smtp " + smtp.url()));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  nlohmann::json report = Report(resumed);
  EXPECT_EQ(report["campaign_id"], "new-since-2025-05-06");
  EXPECT_TRUE(report["resumed"]);
  EXPECT_EQ(report["letters_sent_before"], 3);
  const int planned = report["letters_planned"];
  EXPECT_EQ(report["letters_sent"], planned - 3);
  EXPECT_EQ(report["letters_pending"], 0);
  EXPECT_EQ(report["suppressed"]["opted_out"], 1);
  EXPECT_GT(report["expected_buyers"].get<double>(), 0);
  ASSERT_GE(planned, 40);

  // Every letter arrived once, parses, and has both parts.
  std::vector<nlohmann::json> messages = smtp.Messages();
  ASSERT_EQ(static_cast<int>(messages.size()), planned);
  std::set<std::string> recipients, ids;
  for (const auto& m : messages) {
    const std::string rcpt = m["rcpt_tos"][0];
    EXPECT_TRUE(recipients.insert(rcpt).second) << "twice to " << rcpt;
    EXPECT_TRUE(ids.insert(m["message_id"].get<std::string>()).second);
    EXPECT_EQ(m["mail_from"], "news@shop.example");
    EXPECT_EQ(m["content_type"], "multipart/alternative");
    EXPECT_EQ(m["parts"], nlohmann::json::array({"text/plain", "text/html"}));
    EXPECT_TRUE(m["defects"].empty()) << m["defects"];
    EXPECT_NE(rcpt, "a03@mail.example");  // opted out
    const std::string text = m["text"], html = m["html"], subject = m["subject"];
    if (rcpt[0] == 'a') {
      // Non-ASCII names and titles survive the header and body encodings.
      EXPECT_EQ(m["to"], "Zoë Müller <" + rcpt + ">");
      EXPECT_NE(subject.find("Zoë, new at Affinity Shop: Enamel mug \"Ørsted\" <new>"),
                std::string::npos)
          << subject;
      EXPECT_NE(text.find("Hello Zoë,"), std::string::npos);
      EXPECT_NE(text.find("* Enamel mug \"Ørsted\" <new> - £"), std::string::npos) << text;
      EXPECT_NE(html.find("Enamel mug &quot;Ørsted&quot; &lt;new&gt;"), std::string::npos);
    } else {
      EXPECT_NE(text.find("Trail shoe new 99"), std::string::npos);
    }
    EXPECT_NE(text.find("Because you bought "), std::string::npos);
    EXPECT_NE(text.find("https://shop.example/unsubscribe?customer="), std::string::npos);
    EXPECT_EQ(m["list_unsubscribe"].get<std::string>().rfind("<https://shop.example/unsub", 0), 0u);
  }

  // A third run sends nothing.
  RunResult again = RunCli(CampaignArgs(dir, "--smtp " + smtp.url()));
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(Report(again)["letters_sent"], 0);
  EXPECT_EQ(static_cast<int>(smtp.Messages().size()), planned);
}

TEST(CampaignCli, KilledBetweenDeliveryAndMarkRetriesThatLetterOnly) {
  ScratchDir dir;
  MakeShop(dir);
  SmtpSink smtp(dir);
  ASSERT_TRUE(smtp.ready());
  RunResult killed =
      RunCli(CampaignArgs(dir, "--smtp " + smtp.url()), "AFFINITY_CAMPAIGN_CRASH_BEFORE_MARK=2");
  EXPECT_EQ(killed.exit_code, 137);
  EXPECT_EQ(smtp.Messages().size(), 2u);
  RunResult resumed = RunCli(CampaignArgs(dir, "--smtp " + smtp.url()));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  const int planned = Report(resumed)["letters_planned"];
  EXPECT_EQ(Report(resumed)["letters_sent_before"], 1);
  // The letter in flight at the kill is delivered again, with the same Message-ID (documented
  // at-least-once for that one letter); every other letter once.
  std::map<std::string, int> by_id;
  for (const auto& m : smtp.Messages()) ++by_id[m["message_id"].get<std::string>()];
  EXPECT_EQ(static_cast<int>(by_id.size()), planned);
  int twice = 0;
  for (const auto& [id, n] : by_id) twice += n == 2;
  EXPECT_EQ(twice, 1);
}

TEST(CampaignCli, EmlFilesDryRunAndBadInput) {
  ScratchDir dir;
  MakeShop(dir);
  // Dry run: a report, nothing recorded.
  RunResult dry = RunCli(CampaignArgs(dir, "--dry-run"));
  ASSERT_EQ(dry.exit_code, 0) << dry.output;
  const int planned = Report(dry)["letters_planned"];
  EXPECT_GE(planned, 40);
  EXPECT_EQ(Report(dry)["letters_sent"], 0);
  // Previews written by a dry run say they are previews, in the file name and the first header.
  RunResult previews = RunCli(CampaignArgs(dir, "--dry-run --out " + dir.Sub("previews")));
  ASSERT_EQ(previews.exit_code, 0) << previews.output;
  int preview_files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.Sub("previews"))) {
    EXPECT_TRUE(e.path().filename().string().starts_with("preview-")) << e.path();
    std::ifstream in(e.path());
    std::string first;
    std::getline(in, first);
    EXPECT_TRUE(first.starts_with("X-Affinity-Preview: dry run of campaign ")) << first;
    ++preview_files;
  }
  EXPECT_EQ(preview_files, planned);

  // Killed after 5 letters, resumed: one .eml per letter.
  RunResult killed =
      RunCli(CampaignArgs(dir, "--out " + dir.Sub("out")), "AFFINITY_CAMPAIGN_CRASH_AFTER_SENT=5");
  EXPECT_EQ(killed.exit_code, 137);
  RunResult resumed = RunCli(CampaignArgs(dir, "--out " + dir.Sub("out")));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(Report(resumed)["letters_planned"], planned);  // the dry run recorded nothing
  EXPECT_EQ(Report(resumed)["letters_sent_before"], 5);
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.Sub("out"))) {
    EXPECT_EQ(e.path().extension(), ".eml") << e.path();
    ++files;
  }
  EXPECT_EQ(files, planned);

  // Bad input exits 2 and names the problem.
  EXPECT_EQ(RunCli(CampaignArgs(dir, "")).exit_code, 2);  // neither --out, --smtp nor --dry-run
  EXPECT_EQ(RunCli(CampaignArgs(dir, "--dry-run --products nope")).exit_code, 2);
  EXPECT_EQ(RunCli(CampaignArgs(dir, "--dry-run --campaign-id 'a b'")).exit_code, 2);
  EXPECT_EQ(RunCli(CampaignArgs(dir, "--smtp http://x --out y")).exit_code, 2);
  EXPECT_EQ(RunCli(CampaignArgs(dir, "--smtp http://127.0.0.1:1")).exit_code, 2);
  // A shop URL without a scheme makes every unsubscribe link relative: refused up front, not
  // every letter skipped with exit 0 (the build before).
  RunResult relative = testing::RunCli(CampaignArgs(dir, "--dry-run --shop-url www.shop.example"),
                                       "", /*keep_stderr=*/true);
  EXPECT_EQ(relative.exit_code, 2) << relative.output;
  EXPECT_NE(relative.output.find("www.shop.example"), std::string::npos) << relative.output;
  EXPECT_EQ(RunCli("campaign --help").exit_code, 0);
}

TEST(CampaignCli, RefusedRecipientsAreNotRetriedAndDryRunsRunBesideAWriter) {
  ScratchDir dir;
  MakeShop(dir);
  {
    // Another process holds the store for writing (the server, say): a dry run still plans.
    auto writer = Store::Open(dir.Sub("db"), StoreOptions());
    ASSERT_TRUE(writer.ok());
    RunResult dry = RunCli(CampaignArgs(dir, "--dry-run"));
    EXPECT_EQ(dry.exit_code, 0) << dry.output;
    EXPECT_GE(Report(dry)["letters_planned"].get<int>(), 40);
    // A real run needs the write lock and says so.
    EXPECT_EQ(RunCli(CampaignArgs(dir, "--out " + dir.Sub("out"))).exit_code, 1);
  }
  SmtpSink smtp(dir, {"b05@mail.example", "b06@mail.example"});
  ASSERT_TRUE(smtp.ready());
  RunResult run = RunCli(CampaignArgs(dir, "--smtp " + smtp.url()));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  nlohmann::json report = Report(run);
  const int rejected = report["letters_rejected"];
  EXPECT_GE(rejected, 1);  // whichever of b05, b06 the plan wrote to
  EXPECT_EQ(report["letters_sent"].get<int>() + rejected, report["letters_planned"].get<int>());
  EXPECT_NE(report["errors"][0].get<std::string>().find("550"), std::string::npos);
  RunResult again = RunCli(CampaignArgs(dir, "--smtp " + smtp.url()));
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(Report(again)["letters_rejected"], 0);
  EXPECT_EQ(Report(again)["letters_pending"], 0);
}

// A server that refuses the session (here: every MAIL FROM, as one that wants authentication;
// a wrong password or a refused sender alike) refuses no letter for good: they fail, the run
// stops after 10 and exits 1, and the next run against a working server sends them all. The
// build before took any 5xx for a refused recipient: every letter marked rejected, never sent,
// exit 0.
TEST(CampaignCli, ServerRefusingTheSessionFailsLettersInsteadOfRejectingThem) {
  ScratchDir dir;
  MakeShop(dir);
  {
    SmtpSink refusing(dir, {}, {"--refuse-senders"});
    ASSERT_TRUE(refusing.ready());
    RunResult run = RunCli(CampaignArgs(dir, "--smtp " + refusing.url()));
    EXPECT_EQ(run.exit_code, 1) << run.output;
    nlohmann::json report = Report(run);
    EXPECT_EQ(report["letters_rejected"], 0);
    EXPECT_EQ(report["letters_failed"], 10);
    EXPECT_EQ(report["letters_pending"], report["letters_planned"]);
    EXPECT_NE(report["errors"][0].get<std::string>().find("530"), std::string::npos);
  }
  {
    // A relay that wants a login refuses every recipient with a policy code (5.7.1): not those
    // recipients' fault, so the same.
    SmtpSink relay(dir, {}, {"--relay-denied"});
    ASSERT_TRUE(relay.ready());
    RunResult run = RunCli(CampaignArgs(dir, "--smtp " + relay.url()));
    EXPECT_EQ(run.exit_code, 1) << run.output;
    nlohmann::json report = Report(run);
    EXPECT_EQ(report["letters_rejected"], 0);
    EXPECT_EQ(report["letters_failed"], 10);
    EXPECT_NE(report["errors"][0].get<std::string>().find("5.7.1"), std::string::npos)
        << report["errors"][0];
  }
  SmtpSink smtp(dir);
  ASSERT_TRUE(smtp.ready());
  RunResult up = RunCli(CampaignArgs(dir, "--smtp " + smtp.url()));
  ASSERT_EQ(up.exit_code, 0) << up.output;
  EXPECT_GT(Report(up)["letters_sent"].get<int>(), 10);
  EXPECT_EQ(Report(up)["letters_pending"], 0);
}

// A message the server refuses after its data (552 5.3.4, too big) is refused for good: marked
// rejected, not sent again. (libcurl 7.88 reports that reply as a weird server reply; the build
// before took it for a failure and sent every letter again on every run.)
TEST(CampaignCli, AMessageRefusedAfterItsDataIsNotSentAgain) {
  ScratchDir dir;
  MakeShop(dir);
  SmtpSink smtp(dir, {}, {"--refuse-messages"});
  ASSERT_TRUE(smtp.ready());
  RunResult run = RunCli(CampaignArgs(dir, "--smtp " + smtp.url()));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  nlohmann::json report = Report(run);
  EXPECT_EQ(report["letters_rejected"], report["letters_planned"]);
  EXPECT_EQ(report["letters_failed"], 0);
  EXPECT_NE(report["errors"][0].get<std::string>().find("552"), std::string::npos);
  RunResult again = RunCli(CampaignArgs(dir, "--smtp " + smtp.url()));
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(Report(again)["letters_pending"], 0);
  EXPECT_EQ(Report(again)["letters_rejected"], 0);
}

TEST(CampaignCli, ServerDownLeavesLettersPendingAndExitsOne) {
  ScratchDir dir;
  MakeShop(dir);
  // Nothing listens on port 1: every delivery fails, the run stops after 10 in a row.
  RunResult down = RunCli(CampaignArgs(dir, "--smtp smtp://127.0.0.1:1 --smtp-timeout 5"));
  EXPECT_EQ(down.exit_code, 1) << down.output;
  nlohmann::json report = Report(down);
  EXPECT_EQ(report["letters_sent"], 0);
  EXPECT_EQ(report["letters_failed"], 10);
  EXPECT_EQ(report["letters_pending"], report["letters_planned"]);
  const std::string error = report["errors"][0];
  EXPECT_NE(error.find("SMTP delivery failed"), std::string::npos) << error;
  EXPECT_EQ(error.find('@'), std::string::npos) << "no address in the report: " << error;
  // Once the server is back, the next run delivers them all.
  SmtpSink smtp(dir);
  ASSERT_TRUE(smtp.ready());
  RunResult up = RunCli(CampaignArgs(dir, "--smtp " + smtp.url()));
  ASSERT_EQ(up.exit_code, 0) << up.output;
  EXPECT_EQ(Report(up)["letters_sent"], report["letters_planned"]);
  EXPECT_EQ(smtp.Messages().size(), report["letters_planned"].get<size_t>());
}

}  // namespace
}  // namespace affinity
