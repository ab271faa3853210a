#include "affinity/campaign.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <kainjow/mustache.hpp>
#include <limits>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "affinity/time_util.h"
#include "codec.h"
#include "default_templates.h"

namespace affinity {
namespace {

namespace mustache = kainjow::mustache;

constexpr const char* kTemplateFiles[] = {"subject.mustache", "letter.txt.mustache",
                                          "letter.html.mustache"};

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

UnixSeconds WallClock() { return static_cast<UnixSeconds>(std::time(nullptr)); }

// RFC 3986: unreserved characters as is, every other byte %XX.
std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    if (std::isalnum(u) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

std::string FormatPrice(double price, const std::string& currency) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", price);
  return currency + buf;
}

std::string FirstName(const std::string& name) {
  const size_t start = name.find_first_not_of(' ');
  if (start == std::string::npos) return "";
  const size_t end = name.find(' ', start);
  return name.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// A template compiled once per run; text templates render without HTML escaping.
struct Compiled {
  mustache::mustache subject, text, html;
  explicit Compiled(const LetterTemplates& t) : subject(t.subject), text(t.text), html(t.html) {
    auto verbatim = [](const std::string& s) { return s; };
    subject.set_custom_escape(verbatim);
    text.set_custom_escape(verbatim);
  }
};

std::string AddressKey(const std::string& email) { return EmailAddressKey(email); }

// The day (UTC) of a time, counted from 1970-01-01.
int64_t UtcDay(UnixSeconds t) { return t / 86400 - (t % 86400 < 0 ? 1 : 0); }

Status CheckTemplate(const std::string& source, const char* field) {
  mustache::mustache t(source);
  if (!t.is_valid()) {
    return Status::InvalidArgument("template does not parse: " + t.error_message(), field);
  }
  return Status::Ok();
}

// The link a URL template makes (for a sample customer and product) is absolute: http(s), or
// mailto: where `mailto` (the unsubscribe links). A letter with a relative link would be built
// for nobody (its List-Unsubscribe header refuses one): refused up front instead.
Status CheckLink(const std::string& source, const std::string& shop_url, const char* field,
                 bool mailto) {
  mustache::mustache t(source);
  mustache::data d;
  d.set("shop_url", shop_url);
  d.set("customer", "c1");
  d.set("token", "t");
  d.set("product", "p1");
  const std::string url = t.render(d);
  if (url.starts_with("https://") || url.starts_with("http://") ||
      (mailto && url.starts_with("mailto:"))) {
    return Status::Ok();
  }
  return Status::InvalidArgument(std::string("must make an absolute http(s)") +
                                     (mailto ? " or mailto: " : " ") + "link; with shop_url '" +
                                     shop_url + "' it makes '" + url + "'",
                                 field);
}

Result<std::string> Render(mustache::mustache& t, const mustache::data& data, const char* field) {
  std::string out = t.render(data);
  if (!t.is_valid()) {
    return Status::InvalidArgument("template does not render: " + t.error_message(), field);
  }
  return out;
}

std::string DefaultCampaignId(const CampaignOptions& o) {
  if (o.products.empty() && o.since) return "new-since-" + FormatTimestamp(*o.since).substr(0, 10);
  std::vector<std::string> ids = o.products;
  std::sort(ids.begin(), ids.end());
  std::string joined;
  for (const auto& id : ids) joined.append(id).push_back('\n');
  if (o.since) joined.append(FormatTimestamp(*o.since).substr(0, 10));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx",
                static_cast<unsigned long long>(codec::Fnv1a64(joined)));
  return std::string("products-") + buf;
}

// The parts of a report that the plan fixes, as stored in the campaign record (so a resumed run
// reports the same plan).
nlohmann::json PlanJson(const CampaignReport& r) {
  nlohmann::json j = CampaignReportJson(r);
  for (const char* run_only :
       {"dry_run", "resumed", "sink", "letters_sent", "letters_sent_before", "letters_pending",
        "letters_failed", "letters_rejected", "letters_rejected_before", "letters_dropped",
        "letters_skipped", "errors", "notes", "deliver_seconds"}) {
    j.erase(run_only);
  }
  return j;
}

// Corruption if the stored plan has members of the wrong type.
Status RestorePlan(const nlohmann::json& plan, CampaignReport* r) try {
  r->model_version = plan.value("model_version", int64_t{0});
  r->horizon_days = plan.value("horizon_days", 0.0);
  r->customers_scored = plan.value("customers_scored", int64_t{0});
  r->letters_planned = plan.value("letters_planned", int64_t{0});
  r->expected_buyers = plan.value("expected_buyers", 0.0);
  r->plan_seconds = plan.value("plan_seconds", 0.0);
  if (auto it = plan.find("suppressed"); it != plan.end() && it->is_object()) {
    for (const auto& [rule, n] : it->items()) r->suppressed[rule] = n.get<int64_t>();
  }
  if (auto it = plan.find("products"); it != plan.end() && it->is_array()) {
    for (const auto& p : *it) {
      CampaignProductReport pr;
      pr.product = p.value("product", "");
      pr.title = p.value("title", "");
      pr.product_vector = p.value("product_vector", "");
      pr.audience = p.value("audience", int64_t{0});
      pr.letters = p.value("letters", int64_t{0});
      pr.expected_buyers = p.value("expected_buyers", 0.0);
      pr.skipped = p.value("skipped", "");
      r->products.push_back(std::move(pr));
    }
  }
  return Status::Ok();
} catch (const nlohmann::json::exception& e) {
  return Status::Corruption(std::string("the recorded campaign plan is malformed: ") + e.what());
}

struct Candidate {
  size_t product = 0;  // index into the chosen products
  double probability = 0;
  std::string reason_kind, reason;
};

struct ChosenProduct {
  ProductId id;
  std::string external;
  ProductAttributes attributes;
};

// Phase 1 (see campaign.h): the letters to write, best products first, and the report's plan.
Result<std::vector<LedgerLetter>> Plan(ServingEngine& engine, const CampaignOptions& options,
                                       const std::string& campaign_id, UnixSeconds now,
                                       const CampaignHooks& hooks, CampaignReport* report) {
  Store& store = engine.store();
  // The products.
  std::vector<ChosenProduct> chosen;
  auto recent = [&](const ProductAttributes& a) {
    return !options.since || (a.created_at && *a.created_at >= *options.since);
  };
  if (!options.products.empty()) {
    std::unordered_set<std::string> seen;
    for (const std::string& external : options.products) {
      if (!seen.insert(external).second) continue;
      auto id = store.FindProduct(external);
      if (!id.ok()) {
        if (id.status().code() == StatusCode::kNotFound) {
          return Status::InvalidArgument("unknown product '" + external + "'", "products");
        }
        return id.status();
      }
      auto attributes = store.GetProduct(*id);
      ProductAttributes a = attributes.ok() ? *attributes : ProductAttributes{};
      if (recent(a)) chosen.push_back({*id, external, std::move(a)});
    }
  } else {
    std::vector<std::pair<ProductId, ProductAttributes>> found;
    AFFINITY_RETURN_IF_ERROR(store.ScanProducts([&](ProductId id, const ProductAttributes& a) {
      if (recent(a) && a.available.value_or(true)) found.emplace_back(id, a);
      return true;
    }));
    for (auto& [id, a] : found) {
      AFFINITY_ASSIGN_OR_RETURN(std::string external, store.ProductExternalId(id));
      chosen.push_back({id, std::move(external), std::move(a)});
    }
  }

  // Their audiences over the whole customer base.
  std::unordered_map<std::string, std::vector<Candidate>> by_customer;
  report->model_version = engine.model_version();
  for (size_t i = 0; i < chosen.size(); ++i) {
    CampaignProductReport pr;
    pr.product = chosen[i].external;
    pr.title = chosen[i].attributes.title.value_or(chosen[i].external);
    AudienceRequest request;
    request.product = chosen[i].external;
    request.limit = std::numeric_limits<int>::max();  // all_customers: not capped
    request.all_customers = true;
    request.include_opted_out = true;
    request.min_probability = options.min_probability;
    if (options.horizon_days > 0) request.horizon_days = options.horizon_days;
    auto audience = engine.Audience(request);
    if (!audience.ok()) {
      if (audience.status().code() != StatusCode::kFailedPrecondition) return audience.status();
      pr.skipped = audience.status().message();
    } else {
      if (!audience->calibrated) {
        return Status::FailedPrecondition(
            "model v" + std::to_string(audience->model_version) +
            " has no audience calibration, so a campaign cannot tell who is likely to buy: "
            "retrain with the audience model (affinity train without --no-audience-model)");
      }
      report->model_version = audience->model_version;
      report->horizon_days = audience->horizon_days;
      report->customers_scored += audience->candidates;
      report->suppressed["below_min_probability"] +=
          audience->candidates - static_cast<int64_t>(audience->customers.size());
      pr.product_vector = audience->product_vector;
      pr.audience = static_cast<int64_t>(audience->customers.size());
      for (AudienceMember& m : audience->customers) {
        const double p = m.probability.value_or(0);
        if (!std::isfinite(p)) continue;  // never stored: the ledger holds numbers only
        by_customer[m.customer].push_back({i, p, std::move(m.reason_kind), std::move(m.reason)});
      }
    }
    report->products.push_back(std::move(pr));
    if (hooks.audience_progress) hooks.audience_progress(i + 1, chosen.size());
  }

  // What the ledger says: products told and recent letters, per customer, then per address
  // (below).
  std::unordered_map<uint32_t, std::unordered_set<uint32_t>> told_by_id;
  std::unordered_map<uint32_t, int> recent_by_id;
  // The cap counts whole days (UTC): a letter of day D counts on days D .. D + N - 1 (N the cap's
  // days, rounded up), so a run at the same hour every week is not capped by last week's letters,
  // which went out a little after that run's start (an exact 7 × 24 h window capped them).
  const int64_t today = UtcDay(now);
  const auto cap_days = static_cast<int64_t>(std::ceil(options.frequency_cap_days));
  AFFINITY_RETURN_IF_ERROR(store.ScanLetters([&](const LedgerLetter& l) {
    auto& products = told_by_id[l.customer.value];
    for (const LetterProduct& p : l.products) products.insert(p.product.value);
    const UnixSeconds at = l.status == LetterStatus::kSent ? l.sent_at : l.planned_at;
    if (l.campaign != campaign_id && at <= now && UtcDay(at) > today - cap_days) {
      ++recent_by_id[l.customer.value];
    }
    return true;
  }));
  // An address is a person's, whatever account it is stored on: the ledger counts per address
  // (an account without one by itself), an opt-out on any account covers the address, and an
  // address gets one letter per campaign.
  std::unordered_set<std::string> opted_out_addresses;
  std::unordered_map<std::string, std::unordered_set<uint32_t>> told;
  std::unordered_map<std::string, int> recent_letters;
  AFFINITY_RETURN_IF_ERROR(store.ScanCustomers([&](CustomerId id, const CustomerProfile& p) {
    const bool has_address = p.email && !p.email->empty();
    const std::string key = has_address ? AddressKey(*p.email) : "#" + std::to_string(id.value);
    if (p.opted_out.value_or(false) && has_address) opted_out_addresses.insert(key);
    if (auto it = told_by_id.find(id.value); it != told_by_id.end()) {
      told[key].insert(it->second.begin(), it->second.end());
    }
    if (auto it = recent_by_id.find(id.value); it != recent_by_id.end()) {
      recent_letters[key] += it->second;
    }
    return true;
  }));

  // The rules, customer by customer (in external-id order, so plans are reproducible).
  std::vector<std::string> customers;
  customers.reserve(by_customer.size());
  for (const auto& [c, _] : by_customer) customers.push_back(c);
  std::sort(customers.begin(), customers.end());
  struct Planned {
    double expected = 0;
    std::string external, address;
    LedgerLetter letter;
    std::vector<size_t> products;
  };
  std::vector<Planned> planned;
  for (const std::string& external : customers) {
    auto id = store.FindCustomer(external);
    if (!id.ok()) {
      if (id.status().code() == StatusCode::kNotFound) continue;  // forgotten meanwhile
      return id.status();
    }
    auto stored = store.GetCustomer(*id);
    if (!stored.ok() && stored.status().code() != StatusCode::kNotFound) return stored.status();
    const CustomerProfile profile = stored.ok() ? *stored : CustomerProfile{};
    if (profile.opted_out.value_or(false)) {
      ++report->suppressed["opted_out"];
      continue;
    }
    if (!profile.email || profile.email->empty()) {
      ++report->suppressed["no_email"];
      continue;
    }
    if (!IsValidEmailAddress(*profile.email)) {
      ++report->suppressed["invalid_email"];
      continue;
    }
    const std::string address = AddressKey(*profile.email);
    if (opted_out_addresses.count(address)) {
      ++report->suppressed["address_opted_out"];
      continue;
    }
    std::vector<Candidate>& cands = by_customer[external];
    if (auto it = told.find(address); it != told.end()) {
      std::erase_if(cands, [&](const Candidate& c) {
        return it->second.count(chosen[c.product].id.value) > 0;
      });
      if (cands.empty()) {
        ++report->suppressed["already_told"];
        continue;
      }
    }
    if (options.frequency_cap_letters > 0) {
      auto it = recent_letters.find(address);
      if (it != recent_letters.end() && it->second >= options.frequency_cap_letters) {
        ++report->suppressed["frequency_cap"];
        continue;
      }
    }
    std::sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& b) {
      return a.probability != b.probability ? a.probability > b.probability : a.product < b.product;
    });
    if (cands.size() > static_cast<size_t>(options.products_per_letter)) {
      cands.resize(static_cast<size_t>(options.products_per_letter));
    }
    Planned p;
    p.address = address;
    p.external = external;
    p.letter.customer = *id;
    p.letter.campaign = campaign_id;
    p.letter.status = LetterStatus::kPending;
    p.letter.planned_at = now;
    for (Candidate& c : cands) {
      p.expected += c.probability;
      p.products.push_back(c.product);
      p.letter.products.push_back(
          {chosen[c.product].id, c.probability, std::move(c.reason_kind), std::move(c.reason)});
    }
    planned.push_back(std::move(p));
  }
  // One letter per address: the account whose letter has the most expected buyers keeps it.
  std::stable_sort(planned.begin(), planned.end(),
                   [](const Planned& a, const Planned& b) { return a.expected > b.expected; });
  {
    std::unordered_set<std::string> addressed;
    const size_t before = planned.size();
    std::erase_if(planned, [&](const Planned& p) { return !addressed.insert(p.address).second; });
    if (planned.size() < before) {
      report->suppressed["same_address"] += static_cast<int64_t>(before - planned.size());
    }
  }
  if (options.max_letters > 0 && planned.size() > static_cast<size_t>(options.max_letters)) {
    report->suppressed["letter_cap"] += static_cast<int64_t>(planned.size()) - options.max_letters;
    planned.resize(static_cast<size_t>(options.max_letters));
  }

  std::vector<LedgerLetter> letters;
  letters.reserve(planned.size());
  for (Planned& p : planned) {
    for (size_t k = 0; k < p.products.size(); ++k) {
      CampaignProductReport& pr = report->products[p.products[k]];
      ++pr.letters;
      pr.expected_buyers += p.letter.products[k].probability;
    }
    report->expected_buyers += p.expected;
    letters.push_back(std::move(p.letter));
  }
  report->letters_planned = static_cast<int64_t>(letters.size());
  std::stable_sort(report->products.begin(), report->products.end(),
                   [](const CampaignProductReport& a, const CampaignProductReport& b) {
                     return a.expected_buyers > b.expected_buyers;
                   });
  return letters;
}

// Renders one letter. InvalidArgument for a template that does not render or a header value
// that cannot be made safe.
class LetterRenderer {
 public:
  LetterRenderer(Store& store, const LetterOptions& options, const LetterTemplates& templates,
                 std::string secret, std::string campaign_id)
      : store_(store),
        options_(options),
        compiled_(templates),
        product_url_(options.product_url),
        unsubscribe_url_(options.unsubscribe_url),
        one_click_url_(options.one_click_url),
        secret_(std::move(secret)),
        campaign_id_(std::move(campaign_id)) {
    auto verbatim = [](const std::string& s) { return s; };
    product_url_.set_custom_escape(verbatim);
    unsubscribe_url_.set_custom_escape(verbatim);
    one_click_url_.set_custom_escape(verbatim);
  }

  Result<OutgoingLetter> Render(const LedgerLetter& letter, const std::string& customer,
                                const CustomerProfile& profile) {
    mustache::data d;
    const std::string name = profile.name.value_or("");
    d.set("shop_name", options_.shop_name);
    d.set("shop_url", options_.shop_url);
    d.set("campaign_id", campaign_id_);
    d.set("customer", customer);
    d.set("name", name);
    d.set("first_name", FirstName(name));
    d.set("has_name", !FirstName(name).empty());
    d.set("email", profile.email.value_or(""));
    mustache::data products(mustache::data::type::list);
    std::string top_title;
    for (const LetterProduct& lp : letter.products) {
      AFFINITY_ASSIGN_OR_RETURN(const Product* product, Lookup(lp.product));
      mustache::data p;
      p.set("id", product->external);
      p.set("title", product->title);
      p.set("has_price", product->price.has_value());
      p.set("price", product->price ? FormatPrice(*product->price, options_.currency) : "");
      p.set("category", product->category);
      p.set("url", product->url);
      p.set("reason_kind", lp.reason_kind);
      std::string reason;
      if (lp.reason_kind == "purchased" && !lp.reason.empty()) {
        const std::string bought = TitleOf(lp.reason);
        reason = "Because you bought " + bought + ".";
        p.set("because_bought", bought);
      } else if (lp.reason_kind == "stated_interest" && !lp.reason.empty()) {
        reason = "You told us you like " + lp.reason + ".";
        p.set("likes", lp.reason);
      }
      p.set("has_reason", !reason.empty());
      p.set("reason", reason);
      char percent[32];
      std::snprintf(percent, sizeof percent, "%.1f", 100 * lp.probability);
      p.set("probability_percent", std::string(percent));
      if (top_title.empty()) top_title = product->title;
      products.push_back(p);
    }
    const size_t n = letter.products.size();
    d.set("products", products);
    d.set("product_count", std::to_string(n));
    d.set("top_title", top_title);
    d.set("has_more", n > 1);
    d.set("more_count", std::to_string(n > 0 ? n - 1 : 0));
    mustache::data link;
    link.set("shop_url", options_.shop_url);
    link.set("customer", UrlEncode(customer));
    link.set("token", UnsubscribeToken(secret_, customer));
    AFFINITY_ASSIGN_OR_RETURN(std::string unsubscribe,
                              affinity::Render(unsubscribe_url_, link, "unsubscribe_url"));
    d.set("unsubscribe_url", unsubscribe);
    // The List-Unsubscribe header: the one-click URL (RFC 8058, unsubscribes on POST) when there
    // is one, else the letter's link, without one-click (it opens a page, which a mail client's
    // one-click POST would not unsubscribe through).
    std::string one_click = unsubscribe;
    if (!options_.one_click_url.empty()) {
      AFFINITY_ASSIGN_OR_RETURN(one_click, affinity::Render(one_click_url_, link, "one_click_url"));
    }

    EmailMessage m;
    m.from_address = options_.from_address;
    m.from_name = options_.from_name.empty() ? options_.shop_name : options_.from_name;
    m.to_address = profile.email.value_or("");
    m.to_name = name;
    AFFINITY_ASSIGN_OR_RETURN(m.subject, affinity::Render(compiled_.subject, d, "subject"));
    AFFINITY_ASSIGN_OR_RETURN(m.text, affinity::Render(compiled_.text, d, "text"));
    AFFINITY_ASSIGN_OR_RETURN(m.html, affinity::Render(compiled_.html, d, "html"));
    std::string local = campaign_id_;
    std::replace(local.begin(), local.end(), ':', '=');
    m.message_id = local + "." + std::to_string(letter.customer.value) + "@" +
                   options_.from_address.substr(options_.from_address.find('@') + 1);
    m.unsubscribe_url = one_click;
    m.one_click = !options_.one_click_url.empty();
    m.date = letter.sent_at > 0 ? letter.sent_at : WallClock();
    // What the message refuses comes from this customer's data (an unsubscribe link made too
    // long by their id): FailedPrecondition, so the run skips this letter and goes on.
    auto message = BuildMimeMessage(m);
    if (!message.ok()) {
      return Status::FailedPrecondition("the letter to customer #" +
                                        std::to_string(letter.customer.value) +
                                        " cannot be built: " + message.status().ToString());
    }
    OutgoingLetter out;
    out.envelope_from = options_.from_address;
    out.recipient = m.to_address;
    out.file_name = campaign_id_ + "-" + std::to_string(letter.customer.value) + ".eml";
    std::replace(out.file_name.begin(), out.file_name.end(), ':', '=');
    out.message = std::move(*message);
    return out;
  }

 private:
  struct Product {
    std::string external, title, category, url;
    std::optional<double> price;
  };

  Result<const Product*> Lookup(ProductId id) {
    if (auto it = products_.find(id.value); it != products_.end()) return &it->second;
    AFFINITY_ASSIGN_OR_RETURN(std::string external, store_.ProductExternalId(id));
    auto attributes = store_.GetProduct(id);
    ProductAttributes a = attributes.ok() ? *attributes : ProductAttributes{};
    Product p;
    p.external = external;
    p.title = a.title.value_or(external);
    p.category = a.category ? JoinCategory(*a.category) : "";
    p.price = a.price;
    mustache::data link;
    link.set("shop_url", options_.shop_url);
    link.set("product", UrlEncode(external));
    AFFINITY_ASSIGN_OR_RETURN(p.url, affinity::Render(product_url_, link, "product_url"));
    return &products_.emplace(id.value, std::move(p)).first->second;
  }

  // The title of a product named by its external id (the id itself if it has none).
  std::string TitleOf(const std::string& external) {
    if (auto it = titles_.find(external); it != titles_.end()) return it->second;
    std::string title = external;
    if (auto id = store_.FindProduct(external); id.ok()) {
      if (auto a = store_.GetProduct(*id); a.ok() && a->title && !a->title->empty()) {
        title = *a->title;
      }
    }
    return titles_.emplace(external, std::move(title)).first->second;
  }

  Store& store_;
  const LetterOptions& options_;
  Compiled compiled_;
  mustache::mustache product_url_, unsubscribe_url_, one_click_url_;
  std::string secret_;
  std::string campaign_id_;
  std::unordered_map<uint32_t, Product> products_;
  std::unordered_map<std::string, std::string> titles_;
};

}  // namespace

LetterTemplates LetterTemplates::Default() {
  return {std::string(kDefaultSubjectTemplate), std::string(kDefaultTextTemplate),
          std::string(kDefaultHtmlTemplate)};
}

Result<LetterTemplates> LetterTemplates::Load(const std::string& dir) {
  LetterTemplates t = Default();
  std::string* fields[] = {&t.subject, &t.text, &t.html};
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return Status::InvalidArgument("no template directory " + dir, "template");
  }
  for (size_t i = 0; i < 3; ++i) {
    const std::string path = dir + "/" + kTemplateFiles[i];
    if (!std::filesystem::exists(path, ec)) continue;
    std::ifstream in(path, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    if (!in && !in.eof()) return Status::IOError("cannot read " + path);
    *fields[i] = buffer.str();
    AFFINITY_RETURN_IF_ERROR(CheckTemplate(*fields[i], kTemplateFiles[i]));
  }
  return t;
}

Status LetterTemplates::WriteDefault(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IOError("cannot create " + dir + ": " + ec.message());
  const LetterTemplates t = Default();
  const std::string* fields[] = {&t.subject, &t.text, &t.html};
  for (size_t i = 0; i < 3; ++i) {
    const std::string path = dir + "/" + kTemplateFiles[i];
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << *fields[i];
    out.close();
    if (!out) return Status::IOError("cannot write " + path);
  }
  return Status::Ok();
}

Status LetterOptions::Validate() const {
  if (!IsValidEmailAddress(from_address)) {
    return Status::InvalidArgument("not a valid email address: '" + from_address + "'", "from");
  }
  if (shop_name.empty()) return Status::InvalidArgument("must not be empty", "shop_name");
  AFFINITY_RETURN_IF_ERROR(CheckTemplate(product_url, "product_url"));
  AFFINITY_RETURN_IF_ERROR(CheckTemplate(unsubscribe_url, "unsubscribe_url"));
  auto carries_token = [](const std::string& url) {
    return url.find("{{token}}") != std::string::npos ||
           url.find("{{{token}}}") != std::string::npos;
  };
  if (!carries_token(unsubscribe_url)) {
    return Status::InvalidArgument("the unsubscribe link must carry {{token}}", "unsubscribe_url");
  }
  AFFINITY_RETURN_IF_ERROR(CheckLink(product_url, shop_url, "product_url", /*mailto=*/false));
  AFFINITY_RETURN_IF_ERROR(CheckLink(unsubscribe_url, shop_url, "unsubscribe_url", true));
  if (!one_click_url.empty()) {
    AFFINITY_RETURN_IF_ERROR(CheckTemplate(one_click_url, "one_click_url"));
    if (!carries_token(one_click_url)) {
      return Status::InvalidArgument("the one-click link must carry {{token}}", "one_click_url");
    }
    AFFINITY_RETURN_IF_ERROR(CheckLink(one_click_url, shop_url, "one_click_url", true));
  }
  return Status::Ok();
}

Status CampaignOptions::Validate() const {
  if (!campaign_id.empty()) AFFINITY_RETURN_IF_ERROR(ValidateCampaignId(campaign_id));
  if (!since && products.empty()) {
    return Status::InvalidArgument("give the date new products are counted from, or products",
                                   "since");
  }
  if (products_per_letter < 1)
    return Status::InvalidArgument("must be >= 1", "products_per_letter");
  if (!(min_probability >= 0 && min_probability <= 1)) {
    return Status::InvalidArgument("must be in [0, 1]", "min_probability");
  }
  if (!(horizon_days >= 0) || !std::isfinite(horizon_days)) {
    return Status::InvalidArgument("must be >= 0", "horizon_days");
  }
  if (frequency_cap_letters < 0) {
    return Status::InvalidArgument("must be >= 0", "frequency_cap_letters");
  }
  if (!(frequency_cap_days >= 0) || !std::isfinite(frequency_cap_days)) {
    return Status::InvalidArgument("must be >= 0", "frequency_cap_days");
  }
  if (max_letters < 0) return Status::InvalidArgument("must be >= 0", "max_letters");
  return Status::Ok();
}

nlohmann::json CampaignReportJson(const CampaignReport& r) {
  nlohmann::json products = nlohmann::json::array();
  nlohmann::json top = nlohmann::json::array();
  for (const CampaignProductReport& p : r.products) {
    products.push_back({{"product", p.product},
                        {"title", p.title},
                        {"product_vector", p.product_vector},
                        {"audience", p.audience},
                        {"letters", p.letters},
                        {"expected_buyers", p.expected_buyers},
                        {"skipped", p.skipped}});
    if (top.size() < 5 && p.letters > 0) top.push_back(p.product);
  }
  nlohmann::json suppressed = nlohmann::json::object();
  for (const auto& [rule, n] : r.suppressed) suppressed[rule] = n;
  return {{"campaign_id", r.campaign_id},
          {"dry_run", r.dry_run},
          {"resumed", r.resumed},
          {"sink", r.sink},
          {"model_version", r.model_version},
          {"horizon_days", r.horizon_days},
          {"products", std::move(products)},
          {"top_products", std::move(top)},
          {"customers_scored", r.customers_scored},
          {"letters_planned", r.letters_planned},
          {"letters_sent", r.letters_sent},
          {"letters_sent_before", r.letters_sent_before},
          {"letters_pending", r.letters_pending},
          {"letters_failed", r.letters_failed},
          {"letters_rejected", r.letters_rejected},
          {"letters_rejected_before", r.letters_rejected_before},
          {"letters_dropped", r.letters_dropped},
          {"letters_skipped", r.letters_skipped},
          {"suppressed", std::move(suppressed)},
          {"expected_buyers", r.expected_buyers},
          {"errors", r.errors},
          {"notes", r.notes},
          {"plan_seconds", r.plan_seconds},
          {"deliver_seconds", r.deliver_seconds}};
}

Result<CampaignReport> RunCampaign(ServingEngine& engine, const CampaignOptions& options,
                                   const LetterOptions& letter_options,
                                   const LetterTemplates& templates, LetterSink* sink,
                                   const CampaignHooks& hooks) {
  AFFINITY_RETURN_IF_ERROR(options.Validate());
  AFFINITY_RETURN_IF_ERROR(letter_options.Validate());
  AFFINITY_RETURN_IF_ERROR(CheckTemplate(templates.subject, "subject"));
  AFFINITY_RETURN_IF_ERROR(CheckTemplate(templates.text, "text"));
  AFFINITY_RETURN_IF_ERROR(CheckTemplate(templates.html, "html"));
  if (!sink && !options.dry_run) {
    return Status::InvalidArgument("a campaign that is not a dry run needs somewhere to deliver",
                                   "sink");
  }
  Store& store = engine.store();
  const UnixSeconds now = options.now != 0 ? options.now : WallClock();
  auto clock = [&] { return options.now != 0 ? options.now : WallClock(); };

  CampaignReport report;
  report.campaign_id =
      options.campaign_id.empty() ? DefaultCampaignId(options) : options.campaign_id;
  AFFINITY_RETURN_IF_ERROR(ValidateCampaignId(report.campaign_id));
  report.dry_run = options.dry_run;
  report.sink = sink ? sink->Describe() : "";
  AFFINITY_ASSIGN_OR_RETURN(std::optional<CampaignRecord> record,
                            store.GetCampaign(report.campaign_id));
  if (!options.dry_run && store.read_only()) {
    return Status::FailedPrecondition(
        "the store is open read-only: only a dry run can plan a campaign on it");
  }
  auto secret = store.CampaignSecret();
  if (!secret.ok()) {
    if (!(options.dry_run && secret.status().code() == StatusCode::kFailedPrecondition)) {
      return secret.status();
    }
    // A dry run on a read-only store that never ran a campaign: previews only.
    secret = std::string(32, '\0');
    report.notes.push_back(
        "the store has no campaign secret yet: the previews' unsubscribe tokens are placeholders");
  }

  // Phase 1: plan, or the plan of an earlier run.
  const auto plan_start = std::chrono::steady_clock::now();
  std::vector<LedgerLetter> pending;
  // The customers whose letter of this campaign earlier runs sent (a resume).
  std::unordered_set<uint32_t> sent_before;
  if (record) {
    // A campaign resumes with the plan it made: a run asking for another plan under its id (other
    // products, other rules) is refused rather than silently given the old one.
    // (The products as a set: in another order or repeated, they are the same campaign, as its
    // default id says.)
    auto as_set = [](std::vector<std::string> v) {
      std::sort(v.begin(), v.end());
      v.erase(std::unique(v.begin(), v.end()), v.end());
      return v;
    };
    const nlohmann::json asked = {{"since", options.since ? FormatTimestamp(*options.since) : ""},
                                  {"products", as_set(options.products)},
                                  {"min_probability", options.min_probability},
                                  {"products_per_letter", options.products_per_letter},
                                  {"frequency_cap_letters", options.frequency_cap_letters},
                                  {"frequency_cap_days", options.frequency_cap_days},
                                  {"max_letters", options.max_letters}};
    for (const auto& [key, value] : asked.items()) {
      auto it = record->details.find(key);
      if (it == record->details.end()) continue;
      if (key == "products" && it->is_array()) {
        std::vector<std::string> recorded;
        for (const auto& p : *it) {
          if (p.is_string()) recorded.push_back(p.get<std::string>());
        }
        if (as_set(std::move(recorded)) == value.get<std::vector<std::string>>()) continue;
      } else if (*it == value) {
        continue;
      }
      auto text = [](const nlohmann::json& j) {
        return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      };
      return Status::InvalidArgument("campaign '" + report.campaign_id + "' was planned with " +
                                         key + " " + text(*it) + ", this run asks for " +
                                         text(value) +
                                         ": give the same options to resume it, or another "
                                         "campaign id for a new one",
                                     "campaign_id");
    }
    report.resumed = true;
    if (auto it = record->details.find("plan"); it != record->details.end()) {
      AFFINITY_RETURN_IF_ERROR(RestorePlan(*it, &report));
    }
    AFFINITY_RETURN_IF_ERROR(store.ScanLetters([&](const LedgerLetter& l) {
      if (l.campaign != report.campaign_id) return true;
      if (l.status == LetterStatus::kSent) {
        ++report.letters_sent_before;
        sent_before.insert(l.customer.value);
      } else if (l.status == LetterStatus::kRejected) {
        ++report.letters_rejected_before;  // refused for good: never retried
      } else {
        pending.push_back(l);
      }
      return true;
    }));
  } else {
    AFFINITY_ASSIGN_OR_RETURN(pending,
                              Plan(engine, options, report.campaign_id, now, hooks, &report));
    report.plan_seconds = SecondsSince(plan_start);
    if (!options.dry_run && !pending.empty()) {
      CampaignRecord created;
      created.id = report.campaign_id;
      created.created_at = now;
      created.details = {{"plan", PlanJson(report)},
                         {"since", options.since ? FormatTimestamp(*options.since) : ""},
                         {"products", options.products},
                         {"min_probability", options.min_probability},
                         {"products_per_letter", options.products_per_letter},
                         {"frequency_cap_letters", options.frequency_cap_letters},
                         {"frequency_cap_days", options.frequency_cap_days},
                         {"max_letters", options.max_letters},
                         {"runs", nlohmann::json::array()}};
      AFFINITY_RETURN_IF_ERROR(store.RecordCampaign(created, pending));
      record = std::move(created);
    }
  }

  // Phase 2: deliver what is pending, marking each letter sent once it is delivered.
  const auto deliver_start = std::chrono::steady_clock::now();
  LetterRenderer renderer(store, letter_options, templates, *secret, report.campaign_id);
  int failures_in_a_row = 0;
  int64_t delivered = 0;
  int64_t forgotten = 0;
  // Addresses opted out on any account, as of now: an opt-out since the plan (a resumed run's
  // plan may be days old) on another account of the address covers this letter too.
  std::unordered_set<std::string> opted_out_addresses;
  // One letter per address holds at delivery too, when an account's address changed since the
  // plan to one another of its letters goes to. `addressed`: the addresses this run delivered a
  // letter to (taken once delivered, so a letter that cannot be built or fails leaves the
  // address to the other account's); a letter to one of them is dropped. `sent_earlier`: the
  // addresses of now of the accounts whose letter an earlier run sent (the ledger keeps no
  // addresses, so that account may have moved since): a letter to one of them is skipped and
  // stays pending, not dropped on that guess.
  std::unordered_set<std::string> addressed, sent_earlier;
  if (!pending.empty()) {
    AFFINITY_RETURN_IF_ERROR(store.ScanCustomers([&](CustomerId id, const CustomerProfile& p) {
      if (!p.email || p.email->empty()) return true;
      if (p.opted_out.value_or(false)) opted_out_addresses.insert(AddressKey(*p.email));
      if (sent_before.count(id.value)) sent_earlier.insert(AddressKey(*p.email));
      return true;
    }));
  }
  // In the plan's order (most expected buyers first, as the plan's same_address rule keeps
  // them; a resumed plan comes from the ledger in customer order), so that of two accounts now
  // at one address, the one the plan would keep gets the letter.
  auto expected = [](const LedgerLetter& l) {
    double sum = 0;
    for (const LetterProduct& p : l.products) sum += p.probability;
    return sum;
  };
  std::stable_sort(
      pending.begin(), pending.end(),
      [&](const LedgerLetter& a, const LedgerLetter& b) { return expected(a) > expected(b); });
  for (LedgerLetter& letter : pending) {
    auto customer = store.CustomerExternalId(letter.customer);
    if (!customer.ok()) {
      if (customer.status().code() != StatusCode::kNotFound) return customer.status();
      ++report.letters_skipped;  // forgotten meanwhile: their letter is gone too
      ++forgotten;
      continue;
    }
    auto stored = store.GetCustomer(letter.customer);
    if (!stored.ok() && stored.status().code() != StatusCode::kNotFound) return stored.status();
    const CustomerProfile profile = stored.ok() ? *stored : CustomerProfile{};
    if (profile.opted_out.value_or(false) || !profile.email ||
        !IsValidEmailAddress(*profile.email) ||
        opted_out_addresses.count(AddressKey(*profile.email))) {
      ++report.letters_skipped;
      continue;
    }
    const std::string address = AddressKey(*profile.email);
    if (sent_earlier.count(address)) {
      ++report.letters_skipped;
      continue;
    }
    if (addressed.count(address)) {
      // The address has this campaign's letter through another account: this one is dropped,
      // as the plan drops it (same_address), so that it neither stays pending nor counts in
      // later campaigns' frequency cap and already-told rules.
      if (!options.dry_run) {
        Status dropped = store.DropLetter(letter.customer, report.campaign_id);
        if (!dropped.ok() && dropped.code() != StatusCode::kNotFound) return dropped;
      }
      ++report.letters_dropped;
      continue;
    }
    letter.sent_at = clock();
    auto out = renderer.Render(letter, *customer, profile);
    if (!out.ok()) {
      // A letter this customer's data cannot make: skipped (pending), the run goes on.
      if (out.status().code() == StatusCode::kFailedPrecondition) {
        ++report.letters_skipped;
        if (report.errors.size() < 10) report.errors.push_back(out.status().message());
        continue;
      }
      return out.status();  // a template that does not render fails every letter alike
    }
    if (options.dry_run) {
      // A preview says so, in its file name and in a header (first, where a reader of the file
      // sees it), so that nobody takes it for a letter that went out, or sends it on as one.
      // ("preview--": no campaign id makes it, two punctuation marks in a row being refused.)
      out->file_name = "preview--" + out->file_name;
      out->message = "X-Affinity-Preview: dry run of campaign " + report.campaign_id +
                     ", not sent\r\n" + out->message;
      if (sink) AFFINITY_RETURN_IF_ERROR(sink->Deliver(*out));
      addressed.insert(address);
      continue;
    }
    Status sent = sink->Deliver(*out);
    if (sent.code() == StatusCode::kFailedPrecondition) {
      // Refused for good by the receiving server: recorded, never retried.
      failures_in_a_row = 0;
      ++report.letters_rejected;
      if (report.errors.size() < 10) {
        report.errors.push_back("customer #" + std::to_string(letter.customer.value) + ": " +
                                sent.message());
      }
      Status marked = store.MarkLetterRejected(letter.customer, report.campaign_id, clock());
      if (!marked.ok() && marked.code() != StatusCode::kNotFound) return marked;
      continue;
    }
    if (!sent.ok()) {
      ++report.letters_failed;
      if (report.errors.size() < 10) {
        report.errors.push_back("customer #" + std::to_string(letter.customer.value) + ": " +
                                sent.ToString());
      }
      if (++failures_in_a_row >= 10) {
        report.errors.push_back("stopped after 10 delivery failures in a row");
        break;
      }
      continue;
    }
    failures_in_a_row = 0;
    ++delivered;
    addressed.insert(address);
    if (hooks.delivered) hooks.delivered(delivered);
    Status marked = store.MarkLetterSent(letter.customer, report.campaign_id, letter.sent_at);
    if (!marked.ok() && marked.code() != StatusCode::kNotFound) return marked;
    ++report.letters_sent;
    if (hooks.marked_sent) hooks.marked_sent(report.letters_sent);
  }
  // Everything not sent (skipped, failed, not reached) is still pending. A dry run changes
  // nothing: of a new plan nothing is pending (it recorded nothing); of a resumed one every
  // pending letter still is, those it counts in letters_dropped (would drop) included.
  if (options.dry_run) {
    report.letters_pending = report.resumed ? static_cast<int64_t>(pending.size()) - forgotten : 0;
  } else {
    report.letters_pending = static_cast<int64_t>(pending.size()) - report.letters_sent -
                             report.letters_rejected - report.letters_dropped - forgotten;
  }
  report.deliver_seconds = SecondsSince(deliver_start);

  if (!options.dry_run && record) {
    nlohmann::json details = record->details;
    if (!details.contains("runs") || !details["runs"].is_array()) {
      details["runs"] = nlohmann::json::array();
    }
    details["runs"].push_back({{"at", FormatTimestamp(clock())},
                               {"sink", report.sink},
                               {"sent", report.letters_sent},
                               {"failed", report.letters_failed},
                               {"rejected", report.letters_rejected},
                               {"skipped", report.letters_skipped},
                               {"dropped", report.letters_dropped},
                               {"pending", report.letters_pending}});
    record->details = std::move(details);
    AFFINITY_RETURN_IF_ERROR(store.UpdateCampaign(*record));
  }
  return report;
}

}  // namespace affinity
