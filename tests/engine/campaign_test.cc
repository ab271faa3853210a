// Campaigns on the launch shop (tests/launch_shop.h): kitchen customers a00..a39, running
// customers b00..b39, and two products launched after the snapshot, kx (a mug) and rx (a trail
// shoe), placed by their attributes only. The right side gets each, the rules hold, the ledger
// makes re-runs and resumed runs send every letter once.
#include "affinity/campaign.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "launch_shop.h"

namespace affinity {
namespace {

using testing::LaunchDay;
using testing::LaunchProduct;
using testing::ScratchDir;

// Keeps delivered letters in memory; after `fail_after` deliveries every later one fails (the
// server went down).
class MemorySink : public LetterSink {
 public:
  Status Deliver(const OutgoingLetter& letter) override {
    if (fail_after >= 0 && static_cast<int64_t>(letters.size()) >= fail_after) {
      return Status::IOError("connection refused");
    }
    if (!reject_prefix.empty() && letter.recipient.rfind(reject_prefix, 0) == 0) {
      ++rejected;
      return Status::FailedPrecondition("550 5.1.1 no such user");
    }
    letters.push_back(letter);
    return Status::Ok();
  }
  std::string Describe() const override { return "memory"; }

  // The customer of each letter (the local part of the recipient address).
  std::vector<std::string> Recipients() const {
    std::vector<std::string> out;
    for (const auto& l : letters) out.push_back(l.recipient.substr(0, l.recipient.find('@')));
    return out;
  }

  std::vector<OutgoingLetter> letters;
  int64_t fail_after = -1;
  std::string reject_prefix;  // recipients refused for good (an SMTP 5xx)
  int64_t rejected = 0;
};

class CampaignTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::OpenLaunchEngine(dir_, &store_, &engine_);
    ASSERT_TRUE(engine_);
    for (char side : {'a', 'b'}) {
      for (int i = 0; i < testing::kLaunchCustomers; ++i) {
        const std::string id = testing::LaunchCustomer(side, i);
        CustomerProfile p;
        p.email = id + "@mail.example";
        ASSERT_TRUE(engine_->UpsertCustomer(id, p).ok());
      }
    }
    CustomerProfile opted_out;
    opted_out.opted_out = true;
    ASSERT_TRUE(engine_->UpsertCustomer("a00", opted_out).ok());
    CustomerProfile no_email;
    no_email.email = "";
    ASSERT_TRUE(engine_->UpsertCustomer("a01", no_email).ok());
    CustomerProfile bad_email;
    bad_email.email = "a02 at mail.example";
    ASSERT_TRUE(engine_->UpsertCustomer("a02", bad_email).ok());
    CustomerProfile injector;
    injector.name = "Eve\r\nBcc: spy@evil.example";
    ASSERT_TRUE(engine_->UpsertCustomer("b00", injector).ok());
    AddProduct("kx", 'k', LaunchDay(125));
    AddProduct("rx", 'r', LaunchDay(125));
  }

  void AddProduct(const std::string& id, char side, UnixSeconds created) {
    ProductAttributes a = LaunchProduct(side, 99, true);
    a.title = id == "kx" ? "Enamel mug new 99" : (id == "rx" ? "Trail shoe new 99" : *a.title);
    a.created_at = created;
    ASSERT_TRUE(engine_->UpsertProduct(id, a).ok());
  }

  CampaignOptions Options() const {
    CampaignOptions o;
    o.since = LaunchDay(125);
    o.min_probability = 0.05;
    o.now = LaunchDay(126);
    return o;
  }

  Result<CampaignReport> Run(const CampaignOptions& o, LetterSink* sink,
                             const LetterTemplates& templates = LetterTemplates::Default()) {
    return RunCampaign(*engine_, o, LetterOptions(), templates, sink);
  }

  // The customers a dry run of `o` writes to (`told`); then `o` planned while the server is down,
  // so that every letter is pending.
  void PlanWhileDown(CampaignOptions o, std::vector<std::string>* told) {
    o.dry_run = true;
    MemorySink preview;
    ASSERT_TRUE(Run(o, &preview).ok());
    *told = preview.Recipients();
    o.dry_run = false;
    MemorySink down;
    down.fail_after = 0;
    auto planned = Run(o, &down);
    ASSERT_TRUE(planned.ok()) << planned.status().ToString();
    ASSERT_EQ(planned->letters_sent, 0);
  }

  int64_t LedgerSize() const {
    int64_t n = 0;
    EXPECT_TRUE(store_
                    ->ScanLetters([&](const LedgerLetter&) {
                      ++n;
                      return true;
                    })
                    .ok());
    return n;
  }

  ScratchDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<ServingEngine> engine_;
};

TEST_F(CampaignTest, TheRightCustomersGetOneLetterEachAndTheRulesHold) {
  MemorySink sink;
  auto report = Run(Options(), &sink);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->campaign_id, "new-since-2025-05-06");
  ASSERT_EQ(report->products.size(), 2u);
  EXPECT_EQ(report->products[0].product_vector, "attributes");
  EXPECT_EQ(report->letters_planned, static_cast<int64_t>(sink.letters.size()));
  EXPECT_EQ(report->letters_sent, report->letters_planned);
  EXPECT_EQ(report->letters_pending, 0);
  EXPECT_EQ(LedgerSize(), report->letters_planned);

  int kitchen = 0, running = 0;
  std::set<std::string> seen;
  for (const OutgoingLetter& l : sink.letters) {
    const std::string customer = l.recipient.substr(0, l.recipient.find('@'));
    EXPECT_TRUE(seen.insert(customer).second) << "two letters to " << customer;
    const bool mug = l.message.find("Enamel mug new 99") != std::string::npos;
    const bool shoe = l.message.find("Trail shoe new 99") != std::string::npos;
    if (customer[0] == 'a') {
      ++kitchen;
      EXPECT_TRUE(mug && !shoe) << customer << " (kitchen) got the wrong product";
    } else {
      ++running;
      EXPECT_TRUE(shoe && !mug) << customer << " (running) got the wrong product";
    }
    EXPECT_NE(l.message.find("Because you bought "), std::string::npos) << customer;
    EXPECT_NE(l.message.find("token=" + UnsubscribeToken(*store_->CampaignSecret(), customer)),
              std::string::npos);
    // No header can be injected through a name.
    const std::string headers = l.message.substr(0, l.message.find("\r\n\r\n"));
    EXPECT_EQ(headers.find("\r\nBcc:"), std::string::npos) << customer;
  }
  // Most of each side is likely enough (a launch sells to a quarter of its side in 8 days).
  EXPECT_GE(kitchen, 20);
  EXPECT_GE(running, 20);
  EXPECT_EQ(seen.count("a00"), 0u);
  EXPECT_EQ(seen.count("a01"), 0u);
  EXPECT_EQ(seen.count("a02"), 0u);
  EXPECT_EQ(report->suppressed["opted_out"], 1);
  EXPECT_EQ(report->suppressed["no_email"], 1);
  EXPECT_EQ(report->suppressed["invalid_email"], 1);
  EXPECT_GT(report->suppressed["below_min_probability"], 0);
  EXPECT_GT(report->expected_buyers, 0.05 * report->letters_planned);
  double per_product = 0;
  for (const auto& p : report->products) per_product += p.expected_buyers;
  EXPECT_NEAR(per_product, report->expected_buyers, 1e-9);

  // The same campaign again sends nothing.
  auto again = Run(Options(), &sink);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(again->resumed);
  EXPECT_EQ(again->letters_sent, 0);
  EXPECT_EQ(again->letters_sent_before, report->letters_planned);
  EXPECT_EQ(again->letters_planned, report->letters_planned);
  EXPECT_EQ(static_cast<int64_t>(sink.letters.size()), report->letters_planned);
}

TEST_F(CampaignTest, AStatedInterestIsAReasonForACustomerWithoutPurchases) {
  // A newcomer who bought nothing but told the shop they like kitchen things.
  ASSERT_TRUE(engine_->SetInterests("newcomer", {"Home/Kitchen"}).ok());
  CustomerProfile p;
  p.email = "newcomer@mail.example";
  p.name = "Nia Newcomer";
  ASSERT_TRUE(engine_->UpsertCustomer("newcomer", p).ok());
  CampaignOptions o = Options();
  o.products = {"kx"};
  o.min_probability = 0;  // whatever the model thinks of a customer it knows so little of
  MemorySink sink;
  auto report = Run(o, &sink);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  const OutgoingLetter* theirs = nullptr;
  for (const auto& l : sink.letters) {
    if (l.recipient == "newcomer@mail.example") theirs = &l;
  }
  ASSERT_NE(theirs, nullptr);
  EXPECT_NE(theirs->message.find("You told us you like Home/Kitchen."), std::string::npos);
  EXPECT_NE(theirs->message.find("Hello Nia,"), std::string::npos);
}

// The cap counts whole days: a run at the same hour a week later is not capped by the letters of
// the last one (with an exact 7 × 24 h window, a run starting a minute earlier in the day was),
// and one six days later is.
TEST_F(CampaignTest, AWeeklyRunIsNotCappedByLastWeeksLetters) {
  CampaignOptions o = Options();
  o.now = LaunchDay(126.4);
  MemorySink first;
  auto report = Run(o, &first);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_FALSE(first.letters.empty());
  AddProduct("kx3", 'k', LaunchDay(130));
  o.products = {"kx3"};
  o.campaign_id = "kx3-six-days";
  o.now = LaunchDay(132.4);
  o.dry_run = true;
  MemorySink six;
  auto capped = Run(o, &six);
  ASSERT_TRUE(capped.ok()) << capped.status().ToString();
  EXPECT_GT(capped->suppressed["frequency_cap"], 0);
  o.campaign_id = "kx3-week";
  o.now = LaunchDay(133.4) - 60;  // a minute earlier in the day than last week's run
  MemorySink week;
  auto weekly = Run(o, &week);
  ASSERT_TRUE(weekly.ok()) << weekly.status().ToString();
  EXPECT_EQ(weekly->suppressed.count("frequency_cap"), 0u);
}

// A campaign id resumes its own plan only: asked again with other options (a later --since under
// the same id), the run is refused, where the build before resumed the old plan and sent nothing.
TEST_F(CampaignTest, ACampaignIdAskedForAnotherPlanIsRefused) {
  CampaignOptions o = Options();
  o.campaign_id = "weekly";
  MemorySink first;
  ASSERT_TRUE(Run(o, &first).ok());
  ASSERT_FALSE(first.letters.empty());
  MemorySink again;
  auto resumed = Run(o, &again);
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_TRUE(resumed->resumed);
  o.since = LaunchDay(125.5);
  auto other = Run(o, &again);
  EXPECT_EQ(other.status().field(), "campaign_id") << other.status().ToString();
  EXPECT_NE(other.status().message().find("since"), std::string::npos);
}

// An address is a person's: two accounts with one address (letter case aside) get one letter,
// the one with more expected buyers; once either account opts out, neither gets one. The build
// before wrote to the address twice, and after the opt-out still once.
TEST_F(CampaignTest, OneLetterPerAddressAndAnOptOutCoversIt) {
  CampaignOptions o = Options();
  o.dry_run = true;
  MemorySink before;
  ASSERT_TRUE(Run(o, &before).ok());
  const std::vector<std::string> told = before.Recipients();
  ASSERT_GE(told.size(), 2u);
  const std::string first = told[0], second = told[1];
  CustomerProfile shared;
  shared.email = "SHARED@Mail.Example";
  ASSERT_TRUE(engine_->UpsertCustomer(first, shared).ok());
  shared.email = "shared@mail.example";
  ASSERT_TRUE(engine_->UpsertCustomer(second, shared).ok());
  MemorySink together;
  auto report = Run(o, &together);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->suppressed["same_address"], 1);
  int to_shared = 0;
  for (const auto& l : together.letters) {
    to_shared += l.recipient == "SHARED@Mail.Example" || l.recipient == "shared@mail.example";
  }
  EXPECT_EQ(to_shared, 1);
  EXPECT_EQ(together.letters.size(), before.letters.size() - 1);

  CustomerProfile out;
  out.opted_out = true;
  ASSERT_TRUE(engine_->UpsertCustomer(first, out).ok());
  MemorySink after;
  report = Run(o, &after);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->suppressed["address_opted_out"], 1);
  for (const auto& l : after.letters) {
    EXPECT_NE(l.recipient, "shared@mail.example");
    EXPECT_NE(l.recipient, "SHARED@Mail.Example");
  }
}

// Across campaigns and runs too: the letters of an address count for every account with it
// (frequency cap, products told), and an opt-out on another account of the address after the
// plan stops the letter when a later run delivers it.
TEST_F(CampaignTest, AnAddressIsOnePersonAcrossCampaignsAndRuns) {
  CampaignOptions o = Options();
  o.dry_run = true;
  MemorySink preview;
  ASSERT_TRUE(Run(o, &preview).ok());
  const std::vector<std::string> told = preview.Recipients();
  ASSERT_GE(told.size(), 2u);
  CustomerProfile shared;
  shared.email = "pair@mail.example";
  ASSERT_TRUE(engine_->UpsertCustomer(told[0], shared).ok());
  ASSERT_TRUE(engine_->UpsertCustomer(told[1], shared).ok());

  // Planned while the server is down: every letter stays pending.
  o.dry_run = false;
  MemorySink down;
  down.fail_after = 0;
  auto planned = Run(o, &down);
  ASSERT_TRUE(planned.ok()) << planned.status().ToString();
  EXPECT_EQ(planned->letters_sent, 0);
  // The other account of the address opts out; the next run does not write to the address.
  CustomerProfile out;
  out.opted_out = true;
  ASSERT_TRUE(engine_->UpsertCustomer(told[1], out).ok());
  MemorySink up;
  auto resumed = Run(o, &up);
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_TRUE(resumed->resumed);
  EXPECT_GT(resumed->letters_sent, 0);
  for (const auto& l : up.letters) EXPECT_NE(l.recipient, "pair@mail.example");

  // Opted back in, and written to by a campaign two weeks on (past the cap of the letter still
  // pending) through one account: the other account is capped with it the next day.
  out.opted_out = false;
  ASSERT_TRUE(engine_->UpsertCustomer(told[1], out).ok());
  const char side = told[0][0] == 'a' ? 'k' : 'r';  // the pair's department
  AddProduct("x4", side, LaunchDay(139));
  o.products = {"x4"};
  o.campaign_id = "x4";
  o.now = LaunchDay(140);
  MemorySink next;
  auto rn = Run(o, &next);
  ASSERT_TRUE(rn.ok());

  int to_pair = 0;
  for (const auto& l : next.letters) to_pair += l.recipient == "pair@mail.example";
  ASSERT_EQ(to_pair, 1) << "the address hears about the new product once";
  AddProduct("x5", side, LaunchDay(140.2));
  o.products = {"x5"};
  o.campaign_id = "x5";
  o.now = LaunchDay(141);
  MemorySink capped;
  ASSERT_TRUE(Run(o, &capped).ok());
  for (const auto& l : capped.letters) EXPECT_NE(l.recipient, "pair@mail.example");
}

TEST_F(CampaignTest, CampaignIdsThatDifferInPunctuationHaveTheirOwnMessageIdsAndFiles) {
  // ':' is not allowed in a Message-ID or a file name on every system; it used to become '.' in
  // the one and '_' in the other, so "x:1" shared its Message-IDs with "x.1" and its files with
  // "x_1".
  std::map<std::string, std::set<std::string>> seen;  // Message-ID or file name → campaigns
  for (const std::string id : {"x:1", "x.1", "x_1", "x-1"}) {
    CampaignOptions o = Options();
    o.campaign_id = id;
    o.dry_run = true;
    MemorySink preview;
    auto report = Run(o, &preview);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    ASSERT_FALSE(preview.letters.empty());
    for (const auto& l : preview.letters) {
      const size_t at = l.message.find("\r\nMessage-ID: <");
      ASSERT_NE(at, std::string::npos);
      const size_t from = at + 15;
      seen[l.message.substr(from, l.message.find('>', from) - from)].insert(id);
      seen[l.file_name].insert(id);
    }
  }
  for (const auto& [name, ids] : seen) EXPECT_EQ(ids.size(), 1u) << name;
  // Each campaign's letters: a Message-ID and a file name apiece, none shared.
  int of_colon = 0;
  for (const auto& [name, ids] : seen) {
    if (*ids.begin() != "x:1") continue;
    ++of_colon;
    EXPECT_TRUE(name.starts_with("x=1.") || name.starts_with("preview--x=1-")) << name;
  }
  EXPECT_GE(of_colon, 2);
}

TEST_F(CampaignTest, AnAddressChangedSinceThePlanGetsOneLetter) {
  // Planned while the server is down (every letter pending), each customer with an address of
  // their own; then two of them take one address.
  const CampaignOptions o = Options();
  std::vector<std::string> told;
  ASSERT_NO_FATAL_FAILURE(PlanWhileDown(o, &told));
  ASSERT_GE(told.size(), 4u);
  CustomerProfile moved;
  moved.email = "Shared@mail.example";
  ASSERT_TRUE(engine_->UpsertCustomer(told[0], moved).ok());
  moved.email = "shared@MAIL.example";
  ASSERT_TRUE(engine_->UpsertCustomer(told[1], moved).ok());
  // A dry run first: it counts the letter it would drop, and leaves it (and every other) pending.
  CampaignOptions dry = o;
  dry.dry_run = true;
  MemorySink preview;
  auto previewed = Run(dry, &preview);
  ASSERT_TRUE(previewed.ok()) << previewed.status().ToString();
  EXPECT_TRUE(previewed->resumed);
  EXPECT_EQ(previewed->letters_dropped, 1);
  EXPECT_EQ(previewed->letters_sent, 0);
  EXPECT_EQ(previewed->letters_pending, static_cast<int64_t>(told.size()));
  EXPECT_EQ(preview.letters.size(), told.size() - 1);
  MemorySink up;
  auto resumed = Run(o, &up);
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_EQ(resumed->letters_sent, static_cast<int64_t>(told.size()) - 1);
  EXPECT_EQ(resumed->letters_dropped, 1);
  EXPECT_EQ(resumed->letters_skipped, 0);
  EXPECT_EQ(resumed->letters_pending, 0) << "the campaign is done";
  int64_t pending_in_ledger = 0;
  ASSERT_TRUE(store_
                  ->ScanLetters([&](const LedgerLetter& l) {
                    pending_in_ledger += l.status == LetterStatus::kPending;
                    return true;
                  })
                  .ok());
  EXPECT_EQ(pending_in_ledger, 0);
  auto to_shared = [](const MemorySink& sink) {
    int n = 0;
    for (const auto& l : sink.letters) n += l.recipient.find("hared@") != std::string::npos;
    return n;
  };
  EXPECT_EQ(to_shared(up), 1);
  // The dropped letter left the ledger: a later campaign's cap (two letters a week here) counts
  // one letter at the address, not two (the build that kept it pending capped the address).
  const char side = told[0][0] == 'a' ? 'k' : 'r';
  AddProduct("x6", side, LaunchDay(126.5));
  CampaignOptions next = Options();
  next.products = {"x6"};
  next.campaign_id = "x6";
  next.now = LaunchDay(127);
  next.frequency_cap_letters = 2;
  MemorySink later;
  auto x6 = Run(next, &later);
  ASSERT_TRUE(x6.ok()) << x6.status().ToString();
  EXPECT_EQ(to_shared(later), 1);
  // Nothing more to do for the first campaign.
  MemorySink again;
  auto last = Run(o, &again);
  ASSERT_TRUE(last.ok()) << last.status().ToString();
  EXPECT_EQ(last->letters_sent_before, static_cast<int64_t>(told.size()) - 1);
  EXPECT_EQ(last->letters_pending, 0);
  EXPECT_TRUE(again.letters.empty());
}

TEST_F(CampaignTest, AnAccountMovedOntoAnAddressAnEarlierRunWroteToIsSkipped) {
  const CampaignOptions o = Options();
  std::vector<std::string> told;
  ASSERT_NO_FATAL_FAILURE(PlanWhileDown(o, &told));
  ASSERT_GE(told.size(), 3u);
  // One letter goes out before the server goes down again; then another account, still
  // pending, takes that letter's address.
  MemorySink one;
  one.fail_after = 1;
  auto first = Run(o, &one);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_EQ(one.letters.size(), 1u);
  const std::string address = one.letters[0].recipient;
  const std::string other = told[0] == one.Recipients()[0] ? told[1] : told[0];
  CustomerProfile moved;
  moved.email = address;
  ASSERT_TRUE(engine_->UpsertCustomer(other, moved).ok());
  MemorySink up;
  auto second = Run(o, &up);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  for (const auto& l : up.letters) EXPECT_NE(l.recipient, address);
  EXPECT_EQ(second->letters_sent, static_cast<int64_t>(told.size()) - 2);
  // Skipped, not dropped: where the earlier letter went is the account's address of now, a guess.
  EXPECT_EQ(second->letters_skipped, 1);
  EXPECT_EQ(second->letters_dropped, 0);
  EXPECT_EQ(second->letters_pending, 1);
}

TEST_F(CampaignTest, FrequencyCapAndNeverTwiceAcrossCampaigns) {
  MemorySink first;
  auto report = Run(Options(), &first);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  const std::vector<std::string> told = first.Recipients();
  const std::set<std::string> told_set(told.begin(), told.end());

  // A second kitchen launch a day later: everyone written to yesterday is capped.
  AddProduct("kx2", 'k', LaunchDay(125.5));
  CampaignOptions o = Options();
  o.campaign_id = "kx2-week";
  o.products = {"kx2"};
  o.now = LaunchDay(127);
  MemorySink second;
  auto capped = Run(o, &second);
  ASSERT_TRUE(capped.ok()) << capped.status().ToString();
  EXPECT_GT(capped->suppressed["frequency_cap"], 0);
  for (const std::string& c : second.Recipients()) EXPECT_EQ(told_set.count(c), 0u) << c;

  // Two weeks on, the cap has passed: they hear about kx2 (a product they were not told of).
  o.campaign_id = "kx2-later";
  o.now = LaunchDay(141);
  MemorySink third;
  auto later = Run(o, &third);
  ASSERT_TRUE(later.ok()) << later.status().ToString();
  EXPECT_EQ(later->suppressed.count("frequency_cap"), 0u);
  int again = 0;
  for (const std::string& c : third.Recipients()) again += told_set.count(c) > 0;
  EXPECT_GT(again, 10);
  for (const auto& l : third.letters) {
    EXPECT_EQ(l.message.find("Enamel mug new 99"), std::string::npos);
  }

  // kx once more, without a cap: nobody is told twice about it.
  o.campaign_id = "kx-again";
  o.products = {"kx"};
  o.frequency_cap_letters = 0;
  MemorySink fourth;
  auto twice = Run(o, &fourth);
  ASSERT_TRUE(twice.ok()) << twice.status().ToString();
  int kx_told = 0;
  for (const std::string& c : told) kx_told += c[0] == 'a';
  EXPECT_EQ(twice->suppressed["already_told"], kx_told);
  for (const std::string& c : fourth.Recipients()) EXPECT_EQ(told_set.count(c), 0u) << c;
}

TEST_F(CampaignTest, AStoppedRunResumesWithoutDuplicates) {
  MemorySink down;
  down.fail_after = 5;  // the server accepts 5 letters, then refuses every one
  auto report = Run(Options(), &down);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->letters_sent, 5);
  EXPECT_EQ(report->letters_failed, 10);  // gives up after 10 failures in a row
  EXPECT_EQ(report->letters_pending, report->letters_planned - 5);
  EXPECT_FALSE(report->errors.empty());

  MemorySink up;
  auto resumed = Run(Options(), &up);
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_TRUE(resumed->resumed);
  EXPECT_EQ(resumed->letters_sent_before, 5);
  EXPECT_EQ(resumed->letters_sent, report->letters_planned - 5);
  EXPECT_EQ(resumed->letters_pending, 0);
  std::multiset<std::string> all;
  for (const auto& c : down.Recipients()) all.insert(c);
  for (const auto& c : up.Recipients()) all.insert(c);
  EXPECT_EQ(static_cast<int64_t>(all.size()), report->letters_planned);
  for (const auto& c : all) EXPECT_EQ(all.count(c), 1u) << c;
  int64_t sent = 0;
  ASSERT_TRUE(store_
                  ->ScanLetters([&](const LedgerLetter& l) {
                    sent += l.status == LetterStatus::kSent;
                    return true;
                  })
                  .ok());
  EXPECT_EQ(sent, report->letters_planned);
}

TEST_F(CampaignTest, ForgottenAndOptedOutBetweenPlanAndDeliveryAreNotWritten) {
  MemorySink down;
  down.fail_after = 0;
  auto planned = Run(Options(), &down);
  ASSERT_TRUE(planned.ok()) << planned.status().ToString();
  ASSERT_EQ(planned->letters_sent, 0);
  // Two planned recipients: one forgotten, one opting out.
  std::vector<std::string> recipients;
  ASSERT_TRUE(store_
                  ->ScanLetters([&](const LedgerLetter& l) {
                    recipients.push_back(*store_->CustomerExternalId(l.customer));
                    return recipients.size() < 2;
                  })
                  .ok());
  ASSERT_EQ(recipients.size(), 2u);
  ASSERT_TRUE(engine_->ForgetCustomer(recipients[0]).ok());
  CustomerProfile out;
  out.opted_out = true;
  ASSERT_TRUE(engine_->UpsertCustomer(recipients[1], out).ok());

  MemorySink up;
  auto resumed = Run(Options(), &up);
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_EQ(resumed->letters_sent, planned->letters_planned - 2);
  EXPECT_EQ(resumed->letters_skipped, 1);  // the forgotten one has no letter left to skip
  EXPECT_EQ(resumed->letters_pending, 1);
  for (const std::string& c : up.Recipients()) {
    EXPECT_NE(c, recipients[0]);
    EXPECT_NE(c, recipients[1]);
  }
}

TEST_F(CampaignTest, RefusedLettersAreRecordedAndNeverRetried) {
  MemorySink sink;
  sink.reject_prefix = "b0";  // b00..b09 do not exist at the receiving server
  auto report = Run(Options(), &sink);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_GT(sink.rejected, 0);
  EXPECT_EQ(report->letters_rejected, sink.rejected);
  EXPECT_EQ(report->letters_sent + report->letters_rejected, report->letters_planned);
  EXPECT_EQ(report->letters_pending, 0);
  EXPECT_EQ(report->letters_failed, 0);
  int64_t rejected = 0;
  ASSERT_TRUE(store_
                  ->ScanLetters([&](const LedgerLetter& l) {
                    rejected += l.status == LetterStatus::kRejected;
                    return true;
                  })
                  .ok());
  EXPECT_EQ(rejected, sink.rejected);
  // The next run does not try them again.
  auto again = Run(Options(), &sink);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->letters_rejected, 0);
  EXPECT_EQ(again->letters_rejected_before, report->letters_rejected);
  EXPECT_EQ(again->letters_sent, 0);
  EXPECT_EQ(again->letters_pending, 0);
  EXPECT_EQ(sink.rejected, report->letters_rejected);
}

TEST_F(CampaignTest, OneClickUnsubscribeGoesInTheHeaderTheLinkInTheBody) {
  LetterOptions letter;
  letter.one_click_url =
      "https://api.shop.example/v1/unsubscribe?customer={{customer}}&token={{token}}";
  CampaignOptions o = Options();
  o.dry_run = true;
  MemorySink previews;
  auto report = RunCampaign(*engine_, o, letter, LetterTemplates::Default(), &previews);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_FALSE(previews.letters.empty());
  const std::string& m = previews.letters[0].message;
  EXPECT_NE(m.find("List-Unsubscribe: <https://api.shop.example/v1/unsubscribe?customer="),
            std::string::npos);
  EXPECT_NE(m.find("https://shop.example/unsubscribe?customer=3D"), std::string::npos);  // QP
  letter.one_click_url = "https://api.shop.example/v1/unsubscribe";                      // no token
  EXPECT_EQ(
      RunCampaign(*engine_, o, letter, LetterTemplates::Default(), &previews).status().field(),
      "one_click_url");
}

TEST_F(CampaignTest, LetterCapKeepsTheMostLikelyAndDryRunWritesNothing) {
  CampaignOptions o = Options();
  o.dry_run = true;
  MemorySink previews;
  auto all = Run(o, &previews);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->letters_sent, 0);
  EXPECT_EQ(static_cast<int64_t>(previews.letters.size()), all->letters_planned);
  EXPECT_EQ(LedgerSize(), 0);
  EXPECT_FALSE(store_->GetCampaign(all->campaign_id)->has_value());
  ASSERT_GT(all->letters_planned, 4);

  o.dry_run = false;
  o.max_letters = 4;
  MemorySink sink;
  auto capped = Run(o, &sink);
  ASSERT_TRUE(capped.ok()) << capped.status().ToString();
  EXPECT_EQ(capped->letters_planned, 4);
  EXPECT_EQ(capped->suppressed["letter_cap"], all->letters_planned - 4);
  // The 4 kept are the best: above the mean of all letters.
  EXPECT_GT(capped->expected_buyers / 4, all->expected_buyers / all->letters_planned);
}

TEST_F(CampaignTest, BadInputIsRefusedNamingTheField) {
  MemorySink sink;
  CampaignOptions o = Options();
  o.products = {"no-such-product"};
  EXPECT_EQ(Run(o, &sink).status().field(), "products");
  o = Options();
  o.since.reset();
  EXPECT_EQ(Run(o, &sink).status().field(), "since");
  o = Options();
  o.campaign_id = "spaces are not ok";
  EXPECT_EQ(Run(o, &sink).status().field(), "campaign_id");
  o = Options();
  o.min_probability = 2;
  EXPECT_EQ(Run(o, &sink).status().field(), "min_probability");
  LetterTemplates broken = LetterTemplates::Default();
  broken.html = "{{#products}}unclosed";
  EXPECT_EQ(Run(Options(), &sink, broken).status().field(), "html");
  EXPECT_EQ(Run(Options(), nullptr).status().field(), "sink");
  LetterOptions from;
  from.from_address = "shop";
  EXPECT_EQ(
      RunCampaign(*engine_, Options(), from, LetterTemplates::Default(), &sink).status().field(),
      "from");
  EXPECT_TRUE(sink.letters.empty());
  EXPECT_EQ(LedgerSize(), 0);
}

TEST(Campaign, NeedsACalibratedModel) {
  ScratchDir dir;
  std::unique_ptr<Store> store;
  std::unique_ptr<ServingEngine> engine;
  testing::OpenPlantedEngine(dir, &store, &engine);  // a snapshot without an audience model
  ASSERT_TRUE(engine);
  CampaignOptions o;
  o.products = {testing::PlantedId('k', 1)};
  MemorySink sink;
  auto r = RunCampaign(*engine, o, LetterOptions(), LetterTemplates::Default(), &sink);
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << r.status().ToString();
}

TEST(Campaign, TemplatesLoadFromADirectoryAndRoundTrip) {
  ScratchDir dir;
  ASSERT_TRUE(LetterTemplates::WriteDefault(dir.Sub("t")).ok());
  auto loaded = LetterTemplates::Load(dir.Sub("t"));
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->html, LetterTemplates::Default().html);
  dir.Write("t/subject.mustache", "{{#x}}");
  EXPECT_EQ(LetterTemplates::Load(dir.Sub("t")).status().field(), "subject.mustache");
  EXPECT_EQ(LetterTemplates::Load(dir.Sub("none")).status().field(), "template");
}

}  // namespace
}  // namespace affinity
