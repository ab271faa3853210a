#include "affinity/store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cmath>
#include <functional>
#include <set>
#include <thread>

#include "test_util.h"

namespace affinity {
namespace {

using testing::ScratchDir;

EventInput Purchase(std::string customer, std::string product, UnixSeconds t, std::string event_id,
                    double quantity = 1, double price = 2.5) {
  EventInput e;
  e.customer = std::move(customer);
  e.product = std::move(product);
  e.time = t;
  e.quantity = quantity;
  e.unit_price = price;
  e.channel = "web";
  e.event_id = std::move(event_id);
  return e;
}

// A customer record with only an email address.
std::pair<std::string, CustomerProfile> WithEmail(std::string id, std::string email) {
  CustomerProfile profile;
  profile.email = std::move(email);
  return {std::move(id), std::move(profile)};
}

std::unique_ptr<Store> OpenOrDie(const std::string& path, StoreOptions options = {}) {
  auto store = Store::Open(path, options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(*store) : nullptr;
}

TEST(Store, AllocatesDenseIdsStableAcrossReopen) {
  ScratchDir dir;
  {
    auto store = OpenOrDie(dir.Sub("db"));
    std::vector<EventInput> events = {Purchase("alice", "mug", 100, "e1"),
                                      Purchase("bob", "mug", 200, "e2"),
                                      Purchase("alice", "tea", 300, "e3")};
    auto r = store->AppendEvents(events);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->written, 3);
    EXPECT_EQ(r->new_customers, 2);
    EXPECT_EQ(r->new_products, 2);
    EXPECT_EQ(store->FindCustomer("alice")->value, 0u);
    EXPECT_EQ(store->FindCustomer("bob")->value, 1u);
    EXPECT_EQ(store->FindProduct("mug")->value, 0u);
    EXPECT_EQ(store->FindProduct("tea")->value, 1u);
  }
  auto store = OpenOrDie(dir.Sub("db"));
  EXPECT_EQ(store->FindCustomer("bob")->value, 1u);
  EXPECT_EQ(*store->CustomerExternalId(CustomerId{0}), "alice");
  EXPECT_EQ(*store->ProductExternalId(ProductId{1}), "tea");
  EXPECT_EQ(store->customer_id_limit(), 2u);
  // New ids continue after the stored ones.
  std::vector<EventInput> more = {Purchase("carol", "pen", 400, "e4")};
  ASSERT_TRUE(store->AppendEvents(more).ok());
  EXPECT_EQ(store->FindCustomer("carol")->value, 2u);
  EXPECT_EQ(store->FindProduct("pen")->value, 2u);
  EXPECT_EQ(store->FindCustomer("nobody").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->CustomerExternalId(CustomerId{99}).status().code(), StatusCode::kNotFound);
}

TEST(Store, SameEventTwiceIsStoredOnce) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  std::vector<EventInput> batch = {Purchase("alice", "mug", 100, "e1"),
                                   Purchase("alice", "mug", 100, "e1"),  // repeated in the batch
                                   Purchase("alice", "tea", 100, "e2")};
  auto first = store->AppendEvents(batch);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->written, 2);
  EXPECT_EQ(first->duplicates, 1);
  // The events stored, with internal ids, in input order (what the server's caches take).
  ASSERT_EQ(first->events.size(), 2u);
  EXPECT_EQ(first->events[0].event_id, "e1");
  EXPECT_EQ(first->events[1].event_id, "e2");
  EXPECT_EQ(first->events[1].customer, *store->FindCustomer("alice"));
  EXPECT_EQ(first->events[1].product, *store->FindProduct("tea"));
  auto second = store->AppendEvents(batch);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->written, 0);
  EXPECT_EQ(second->duplicates, 3);
  EXPECT_TRUE(second->events.empty());
  // Same id with different content is still the same event: not stored again.
  std::vector<EventInput> changed = {Purchase("alice", "mug", 999, "e1", 5)};
  EXPECT_EQ(store->AppendEvents(changed)->written, 0);
  EXPECT_EQ(store->ComputeStats()->events, 2);
}

TEST(Store, HistoryIsOneCustomerOldestFirst) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  std::vector<EventInput> events;
  // 300 customers so that ids cross a byte boundary (255 -> 256).
  for (int c = 0; c < 300; ++c) {
    events.push_back(Purchase("c" + std::to_string(c), "p", 1000 - c, "x" + std::to_string(c)));
  }
  events.push_back(Purchase("c255", "q", -50, "early"));  // before the epoch
  events.push_back(Purchase("c255", "r", 5000, "late"));
  ASSERT_TRUE(store->AppendEvents(events).ok());
  CustomerId c255 = *store->FindCustomer("c255");
  auto history = store->CustomerHistory(c255);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 3u);
  EXPECT_EQ((*history)[0].event_id, "early");
  EXPECT_EQ((*history)[0].time, -50);
  EXPECT_EQ((*history)[1].event_id, "x255");
  EXPECT_EQ((*history)[2].event_id, "late");
  for (const auto& e : *history) EXPECT_EQ(e.customer, c255);
  EXPECT_EQ((*history)[2].product, *store->FindProduct("r"));
  EXPECT_EQ((*history)[2].channel, "web");
  EXPECT_DOUBLE_EQ((*history)[2].unit_price, 2.5);
  EXPECT_TRUE(store->CustomerHistory(CustomerId{12345})->empty());
}

TEST(Store, ScanStreamsAllEventsInCustomerOrderAndStopsEarly) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  std::vector<EventInput> events;
  for (int i = 0; i < 1000; ++i) {
    events.push_back(Purchase("c" + std::to_string(i % 37), "p" + std::to_string(i % 11), i,
                              "e" + std::to_string(i)));
  }
  ASSERT_TRUE(store->AppendEvents(events).ok());
  int64_t n = 0;
  std::pair<uint32_t, UnixSeconds> prev{0, INT64_MIN};
  std::set<std::string> ids;
  ASSERT_TRUE(store
                  ->ScanEvents([&](const Event& e) {
                    std::pair<uint32_t, UnixSeconds> cur{e.customer.value, e.time};
                    EXPECT_LE(prev, cur);
                    prev = cur;
                    ids.insert(e.event_id);
                    ++n;
                    return true;
                  })
                  .ok());
  EXPECT_EQ(n, 1000);
  EXPECT_EQ(ids.size(), 1000u);
  int64_t seen = 0;
  ASSERT_TRUE(store->ScanEvents([&](const Event&) { return ++seen < 10; }).ok());
  EXPECT_EQ(seen, 10);
}

TEST(Store, InvalidEventRejectsWholeBatchNamingTheField) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  struct Case {
    std::function<void(EventInput&)> spoil;
    std::string field;
  };
  std::vector<Case> cases = {
      {[](EventInput& e) { e.customer.clear(); }, "events[1].customer"},
      {[](EventInput& e) { e.product.clear(); }, "events[1].product"},
      {[](EventInput& e) { e.event_id.clear(); }, "events[1].event_id"},
      {[](EventInput& e) { e.quantity = 0; }, "events[1].quantity"},
      {[](EventInput& e) { e.quantity = std::nan(""); }, "events[1].quantity"},
      {[](EventInput& e) { e.unit_price = -1; }, "events[1].unit_price"},
      {[](EventInput& e) { e.type = static_cast<EventType>(9); }, "events[1].type"},
  };
  for (const auto& c : cases) {
    std::vector<EventInput> batch = {Purchase("a", "p", 1, "ok"), Purchase("b", "q", 2, "bad")};
    c.spoil(batch[1]);
    auto r = store->AppendEvents(batch);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().field(), c.field);
  }
  auto stats = store->ComputeStats();
  EXPECT_EQ(stats->events, 0);
  EXPECT_EQ(stats->customers, 0);
  EXPECT_EQ(store->customer_id_limit(), 0u);
}

TEST(Store, UpsertsMergeFieldsAndCreatedAtOnlyMovesEarlier) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  ProductAttributes first;
  first.title = "Stoneware Mug";
  first.category = std::vector<std::string>{"Home", "Kitchen", "Mugs"};
  first.price = 12.5;
  first.created_at = 5000;
  std::vector<std::pair<std::string, ProductAttributes>> a = {{"mug", first}};
  EXPECT_EQ(*store->UpsertProducts(a), 1);
  ProductAttributes update;
  update.price = 9.99;
  update.created_at = 7000;  // later: ignored
  std::vector<std::pair<std::string, ProductAttributes>> b = {{"mug", update}};
  EXPECT_EQ(*store->UpsertProducts(b), 0);
  auto got = store->GetProduct(*store->FindProduct("mug"));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got->title, "Stoneware Mug");
  EXPECT_EQ(*got->price, 9.99);
  EXPECT_EQ(*got->created_at, 5000);
  EXPECT_EQ(got->category->size(), 3u);
  EXPECT_FALSE(got->brand.has_value());

  // A purchase before created_at moves it earlier; one after leaves it.
  std::vector<EventInput> events = {Purchase("c", "mug", 4000, "e1"),
                                    Purchase("c", "mug", 9000, "e2")};
  ASSERT_TRUE(store->AppendEvents(events).ok());
  EXPECT_EQ(*store->GetProduct(*store->FindProduct("mug"))->created_at, 4000);
  EXPECT_EQ(*store->GetCustomer(*store->FindCustomer("c"))->created_at, 4000);

  CustomerProfile profile;
  profile.email = "c@example.com";
  profile.opted_out = true;
  std::vector<std::pair<std::string, CustomerProfile>> cs = {{"c", profile}};
  EXPECT_EQ(*store->UpsertCustomers(cs), 0);
  auto customer = store->GetCustomer(*store->FindCustomer("c"));
  EXPECT_EQ(*customer->email, "c@example.com");
  EXPECT_TRUE(*customer->opted_out);
  EXPECT_EQ(*customer->created_at, 4000);  // kept from the events

  std::vector<std::pair<std::string, CustomerProfile>> empty_id = {{"", profile}};
  EXPECT_EQ(store->UpsertCustomers(empty_id).status().code(), StatusCode::kInvalidArgument);
}

TEST(Store, ReturnsDoNotSetProductCreatedAt) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  EventInput ret = Purchase("c", "p", 100, "r1");
  ret.type = EventType::kReturn;
  std::vector<EventInput> events = {ret, Purchase("c", "p", 200, "s1")};
  ASSERT_TRUE(store->AppendEvents(std::span(events).first(1)).ok());
  EXPECT_FALSE(store->GetProduct(*store->FindProduct("p"))->created_at.has_value());
  ASSERT_TRUE(store->AppendEvents(std::span(events).subspan(1)).ok());
  EXPECT_EQ(*store->GetProduct(*store->FindProduct("p"))->created_at, 200);
  EXPECT_EQ(*store->GetCustomer(*store->FindCustomer("c"))->created_at, 100);
}

TEST(Store, StatsCountAndPercentiles) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  std::vector<EventInput> events;
  // Customer k (k = 1..10) has k events: nearest-rank p50 = 5, p90 = 9, p99 = 10.
  int n = 0;
  for (int k = 1; k <= 10; ++k) {
    for (int i = 0; i < k; ++i, ++n) {
      events.push_back(Purchase("c" + std::to_string(k), "p", 1000 + n, std::to_string(n)));
    }
  }
  events.back().type = EventType::kReturn;
  events.front().type = EventType::kView;
  ASSERT_TRUE(store->AppendEvents(events).ok());
  auto s = store->ComputeStats();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->customers, 10);
  EXPECT_EQ(s->products, 1);
  EXPECT_EQ(s->events, 55);
  EXPECT_EQ(s->purchases, 53);
  EXPECT_EQ(s->returns, 1);
  EXPECT_EQ(s->other_events, 1);
  EXPECT_EQ(*s->first_event, 1000);
  EXPECT_EQ(*s->last_event, 1054);
  EXPECT_EQ(s->events_per_customer_p50, 5);
  EXPECT_EQ(s->events_per_customer_p90, 9);
  EXPECT_EQ(s->events_per_customer_p99, 10);
  EXPECT_EQ(s->events_per_customer_max, 10);
}

TEST(Store, OpenErrors) {
  ScratchDir dir;
  StoreOptions no_create;
  no_create.create_if_missing = false;
  EXPECT_EQ(Store::Open(dir.Sub("missing"), no_create).status().code(), StatusCode::kNotFound);
  StoreOptions read_only;
  read_only.read_only = true;
  EXPECT_EQ(Store::Open(dir.Sub("missing"), read_only).status().code(), StatusCode::kNotFound);
  StoreOptions bad_cache;
  bad_cache.block_cache_mb = -1;
  EXPECT_EQ(Store::Open(dir.Sub("db"), bad_cache).status().code(), StatusCode::kInvalidArgument);
  {
    auto store = OpenOrDie(dir.Sub("db"));
    // A second writer on the same directory is refused (RocksDB's lock).
    EXPECT_EQ(Store::Open(dir.Sub("db"), {}).status().code(), StatusCode::kIOError);
    // A read-only view can coexist with the writer, and refuses writes.
    StoreOptions ro;
    ro.read_only = true;
    auto reader = Store::Open(dir.Sub("db"), ro);
    ASSERT_TRUE(reader.ok()) << reader.status().ToString();
    std::vector<EventInput> events = {Purchase("a", "p", 1, "e")};
    EXPECT_EQ((*reader)->AppendEvents(events).status().code(), StatusCode::kFailedPrecondition);
  }
}

TEST(Store, RefusesANewerSchemaVersion) {
  ScratchDir dir;
  { OpenOrDie(dir.Sub("db")); }
  {
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir.Sub("db"), &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const auto& name : names) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(
        rocksdb::DB::Open(rocksdb::DBOptions(), dir.Sub("db"), descriptors, &handles, &db).ok());
    size_t meta = std::find(names.begin(), names.end(), "meta") - names.begin();
    ASSERT_LT(meta, names.size());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), handles[meta], "schema_version", "99").ok());
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    delete db;
  }
  auto store = Store::Open(dir.Sub("db"), {});
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(store.status().message().find("99"), std::string::npos);
}

// An acknowledged write survives the process being killed (no close, no flush).
TEST(Store, AcknowledgedWritesSurviveKill) {
  for (bool sync : {false, true}) {
    ScratchDir dir;
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      StoreOptions options;
      options.sync_writes = sync;
      auto store = Store::Open(dir.Sub("db"), options);
      if (!store.ok()) _exit(3);
      for (int b = 0; b < 5; ++b) {
        std::vector<EventInput> batch;
        for (int i = 0; i < 100; ++i) {
          int n = b * 100 + i;
          batch.push_back(Purchase("c" + std::to_string(n % 7), "p" + std::to_string(n % 13), n,
                                   "e" + std::to_string(n)));
        }
        if (!(*store)->AppendEvents(batch).ok()) _exit(4);
      }
      kill(getpid(), SIGKILL);  // no destructor, no flush
      _exit(5);
    }
    int wstatus = 0;
    ASSERT_EQ(waitpid(child, &wstatus, 0), child);
    ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exited with " << WEXITSTATUS(wstatus);
    auto store = OpenOrDie(dir.Sub("db"));
    auto stats = store->ComputeStats();
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->events, 500) << "sync=" << sync;
    EXPECT_EQ(stats->customers, 7);
    EXPECT_EQ(store->product_id_limit(), 13u);
  }
}

// ---- The notification ledger ----

LedgerLetter Letter(uint32_t customer, const std::string& campaign, std::vector<uint32_t> products,
                    UnixSeconds planned_at = 1000) {
  LedgerLetter l;
  l.customer = CustomerId{customer};
  l.campaign = campaign;
  l.planned_at = planned_at;
  for (uint32_t p : products) {
    l.products.push_back({ProductId{p}, 0.25, "purchased", "k0" + std::to_string(p)});
  }
  return l;
}

// Customers c0 ... c<n-1>, with internal ids 0 ... n-1 (a letter is recorded for a customer
// the store knows).
void AddCustomers(Store& store, int n) {
  std::vector<EventInput> events;
  for (int i = 0; i < n; ++i) {
    const std::string c = "c" + std::to_string(i);
    events.push_back(Purchase(c, "p", 100, "e-" + c));
  }
  ASSERT_TRUE(store.AppendEvents(events).ok());
  ASSERT_EQ(store.FindCustomer("c" + std::to_string(n - 1))->value, static_cast<uint32_t>(n - 1));
}

TEST(StoreLedger, CampaignPlanIsRecordedWholeAndOnlyOnce) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  AddCustomers(*store, 6);
  CampaignRecord c{"spring-1", 1000, {{"plan", {{"letters_planned", 2}}}}};
  std::vector<LedgerLetter> letters = {Letter(0, "spring-1", {3, 4}), Letter(1, "spring-1", {4})};
  ASSERT_TRUE(store->RecordCampaign(c, letters).ok());
  // The same id again is refused, and nothing of the second plan is written.
  std::vector<LedgerLetter> again = {Letter(2, "spring-1", {5})};
  EXPECT_EQ(store->RecordCampaign(c, again).code(), StatusCode::kAlreadyExists);
  EXPECT_TRUE(store->CustomerLetters(CustomerId{2})->empty());
  // A bad plan is refused whole: a second letter to one customer, a letter of another campaign,
  // a letter that is not pending, a bad id.
  CampaignRecord d{"spring-2", 1000, nlohmann::json::object()};
  std::vector<LedgerLetter> twice = {Letter(5, "spring-2", {1}), Letter(5, "spring-2", {2})};
  Status s = store->RecordCampaign(d, twice);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.field(), "letters[1]");
  std::vector<LedgerLetter> other = {Letter(5, "spring-1", {1})};
  EXPECT_EQ(store->RecordCampaign(d, other).code(), StatusCode::kInvalidArgument);
  std::vector<LedgerLetter> sent = {Letter(5, "spring-2", {1})};
  sent[0].status = LetterStatus::kSent;
  EXPECT_EQ(store->RecordCampaign(d, sent).code(), StatusCode::kInvalidArgument);
  for (const char* bad : {"no spaces", ".hidden", "trailing-", "a..b", "a:.b", "a--b", ""}) {
    EXPECT_EQ(store->RecordCampaign({bad, 0, {}}, {}).field(), "campaign_id") << bad;
  }
  EXPECT_TRUE(ValidateCampaignId("new-since-2011-11-09").ok());
  EXPECT_TRUE(ValidateCampaignId("spring:week_2.v1").ok());
  EXPECT_FALSE(store->GetCampaign("spring-2")->has_value());
  EXPECT_TRUE(store->CustomerLetters(CustomerId{5})->empty());

  auto got = store->GetCampaign("spring-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->created_at, 1000);
  EXPECT_EQ((*got)->details["plan"]["letters_planned"], 2);
  auto mine = store->CustomerLetters(CustomerId{0});
  ASSERT_TRUE(mine.ok());
  ASSERT_EQ(mine->size(), 1u);
  EXPECT_EQ((*mine)[0].campaign, "spring-1");
  EXPECT_EQ((*mine)[0].status, LetterStatus::kPending);
  ASSERT_EQ((*mine)[0].products.size(), 2u);
  EXPECT_EQ((*mine)[0].products[1].product.value, 4u);
  EXPECT_DOUBLE_EQ((*mine)[0].products[1].probability, 0.25);
  EXPECT_EQ((*mine)[0].products[1].reason, "k04");
}

TEST(StoreLedger, MarkSentIsDurableAndKeepsTheFirstTime) {
  ScratchDir dir;
  {
    auto store = OpenOrDie(dir.Sub("db"));
    AddCustomers(*store, 9);
    std::vector<LedgerLetter> letters = {Letter(7, "c1", {1}), Letter(8, "c1", {1})};
    ASSERT_TRUE(store->RecordCampaign({"c1", 5, {}}, letters).ok());
    ASSERT_TRUE(store->MarkLetterSent(CustomerId{7}, "c1", 2000).ok());
    ASSERT_TRUE(store->MarkLetterSent(CustomerId{7}, "c1", 3000).ok());      // already sent: kept
    ASSERT_TRUE(store->MarkLetterRejected(CustomerId{7}, "c1", 3000).ok());  // kept too
    EXPECT_EQ(store->MarkLetterSent(CustomerId{9}, "c1", 2000).code(), StatusCode::kNotFound);
    ASSERT_TRUE(store->UpdateCampaign({"c1", 5, {{"runs", 1}}}).ok());
    EXPECT_EQ(store->UpdateCampaign({"c9", 5, {}}).code(), StatusCode::kNotFound);
  }
  auto store = OpenOrDie(dir.Sub("db"));
  std::vector<LedgerLetter> all;
  ASSERT_TRUE(store
                  ->ScanLetters([&](const LedgerLetter& l) {
                    all.push_back(l);
                    return true;
                  })
                  .ok());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].customer.value, 7u);
  EXPECT_EQ(all[0].status, LetterStatus::kSent);
  EXPECT_EQ(all[0].sent_at, 2000);
  EXPECT_EQ(all[1].status, LetterStatus::kPending);
  EXPECT_EQ(all[1].sent_at, 0);
  ASSERT_TRUE(store->MarkLetterRejected(CustomerId{8}, "c1", 4000).ok());
  auto rejected = store->CustomerLetters(CustomerId{8});
  ASSERT_TRUE(rejected.ok());
  EXPECT_EQ((*rejected)[0].status, LetterStatus::kRejected);
  EXPECT_EQ((*rejected)[0].sent_at, 4000);
  auto campaigns = store->ListCampaigns();
  ASSERT_TRUE(campaigns.ok());
  ASSERT_EQ(campaigns->size(), 1u);
  EXPECT_EQ((*campaigns)[0].details["runs"], 1);
}

TEST(StoreLedger, ForgettingACustomerDeletesTheirLettersOnly) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  std::vector<EventInput> events = {Purchase("alice", "p", 100, "e1"),
                                    Purchase("bob", "p", 100, "e2")};
  ASSERT_TRUE(store->AppendEvents(events).ok());
  const CustomerId alice = *store->FindCustomer("alice");
  const CustomerId bob = *store->FindCustomer("bob");
  std::vector<LedgerLetter> c1 = {Letter(alice.value, "c1", {0}), Letter(bob.value, "c1", {0})};
  std::vector<LedgerLetter> c2 = {Letter(alice.value, "c2", {0})};
  ASSERT_TRUE(store->RecordCampaign({"c1", 1, {}}, c1).ok());
  ASSERT_TRUE(store->RecordCampaign({"c2", 1, {}}, c2).ok());
  auto receipt = store->ForgetCustomer("alice");
  ASSERT_TRUE(receipt.ok());
  EXPECT_EQ(receipt->notifications, 2);
  EXPECT_TRUE(store->CustomerLetters(alice)->empty());
  EXPECT_EQ(store->CustomerLetters(bob)->size(), 1u);
  // A plan made before the forget and recorded after it: nothing of alice's is written again.
  std::vector<LedgerLetter> c3 = {Letter(alice.value, "c3", {0}), Letter(bob.value, "c3", {0})};
  ASSERT_TRUE(store->RecordCampaign({"c3", 1, {}}, c3).ok());
  EXPECT_TRUE(store->CustomerLetters(alice)->empty());
  EXPECT_EQ(store->CustomerLetters(bob)->size(), 2u);
  int letters = 0;
  ASSERT_TRUE(store
                  ->ScanLetters([&](const LedgerLetter& l) {
                    EXPECT_EQ(l.customer.value, bob.value);
                    ++letters;
                    return true;
                  })
                  .ok());
  EXPECT_EQ(letters, 2);
}

// Whether any file under `dir` holds `needle`.
bool AnyFileHolds(const std::string& dir, const std::string& needle) {
  return !testing::FilesHolding(dir, needle).empty();
}

TEST(Store, CompactionTakesAForgottenCustomersBytesOutOfTheFiles) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  CustomerProfile profile;
  profile.email = "forget-me-7f3a@mail.example";
  std::vector<std::pair<std::string, CustomerProfile>> customers = {{"cust-7f3a", profile}};
  ASSERT_TRUE(store->UpsertCustomers(customers).ok());
  std::vector<EventInput> events = {Purchase("cust-7f3a", "p", 100, "e1"),
                                    Purchase("bob", "p", 100, "e2")};
  ASSERT_TRUE(store->AppendEvents(events).ok());
  ASSERT_TRUE(store->Compact().ok());  // in the store's table files, as after a while
  ASSERT_TRUE(AnyFileHolds(dir.Sub("db"), "forget-me-7f3a"));
  ASSERT_TRUE(store->ForgetCustomer("cust-7f3a").ok());
  EXPECT_TRUE(AnyFileHolds(dir.Sub("db"), "forget-me-7f3a")) << "deleted, not yet erased";
  ASSERT_TRUE(store->Compact().ok());
  EXPECT_FALSE(AnyFileHolds(dir.Sub("db"), "forget-me-7f3a"));
  EXPECT_FALSE(AnyFileHolds(dir.Sub("db"), "cust-7f3a"));
  EXPECT_TRUE(store->FindCustomer("bob").ok()) << "the others stay";
  EXPECT_EQ(store->CustomerHistory(*store->FindCustomer("bob"))->size(), 1u);
  auto read_only = OpenOrDie(dir.Sub("db"), StoreOptions{.read_only = true});
  ASSERT_TRUE(read_only);
  EXPECT_EQ(read_only->Compact().code(), StatusCode::kFailedPrecondition);
}

TEST(Store, ErasuresPendingAreKeptUntilTheirErasureAndSurviveAReopen) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  auto pending = [&]() -> int64_t {
    auto n = store->ErasuresPending();
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? *n : -1;
  };
  EXPECT_EQ(pending(), 0);
  std::vector<EventInput> events = {Purchase("a", "p", 100, "e1"), Purchase("b", "p", 100, "e2"),
                                    Purchase("c", "p", 100, "e3"), Purchase("d", "p", 100, "e4")};
  ASSERT_TRUE(store->AppendEvents(events).ok());
  auto a = store->ForgetCustomer("a");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(store->ForgetCustomer("b").ok());
  EXPECT_EQ(store->ForgetCustomer("nobody").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(pending(), 2);
  store.reset();
  store = OpenOrDie(dir.Sub("db"));
  EXPECT_EQ(pending(), 2) << "written with the delete";
  ASSERT_TRUE(store->EraseForgotten(*a).ok());
  EXPECT_EQ(pending(), 1);
  auto c = store->ForgetCustomer("c");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(pending(), 2);
  ASSERT_TRUE(store->Compact().ok());  // erases b and c
  EXPECT_EQ(pending(), 0);
  // c's own erasure coming after the compaction (the server queues it after the delete) does
  // not take off d's, forgotten since.
  ASSERT_TRUE(store->ForgetCustomer("d").ok());
  ASSERT_TRUE(store->EraseForgotten(*c).ok());
  EXPECT_EQ(pending(), 1);
  store.reset();
  store = OpenOrDie(dir.Sub("db"));
  EXPECT_EQ(pending(), 1);
}

TEST(Store, EraseForgottenTakesTheirRecordsOutOfTheFiles) {
  // What the server does after a DELETE: no full compaction, the forgotten customer's bytes gone.
  ScratchDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  std::vector<std::pair<std::string, CustomerProfile>> customers = {
      WithEmail("cust-91c2", "erase-me-91c2@mail.example"),
      WithEmail("stays-91c2", "keep-me-91c2@mail.example")};
  ASSERT_TRUE(store->UpsertCustomers(customers).ok());
  std::vector<EventInput> events = {Purchase("cust-91c2", "p", 100, "ev-91c2-a"),
                                    Purchase("stays-91c2", "p", 100, "ev-91c2-b"),
                                    Purchase("cust-91c2", "q", 200, "ev-91c2-c")};
  ASSERT_TRUE(store->AppendEvents(events).ok());
  ASSERT_TRUE(store->Compact().ok());
  ASSERT_TRUE(AnyFileHolds(dir.Sub("db"), "erase-me-91c2"));
  ASSERT_TRUE(AnyFileHolds(dir.Sub("db"), "ev-91c2-c"));
  auto receipt = store->ForgetCustomer("cust-91c2");
  ASSERT_TRUE(receipt.ok());
  EXPECT_EQ(receipt->first_event_id, "ev-91c2-a");
  EXPECT_EQ(receipt->last_event_id, "ev-91c2-c");
  EXPECT_TRUE(AnyFileHolds(dir.Sub("db"), "erase-me-91c2")) << "deleted, not yet erased";
  EXPECT_EQ(*store->ErasuresPending(), 1);
  ASSERT_TRUE(store->EraseForgotten(*receipt).ok());
  EXPECT_EQ(*store->ErasuresPending(), 0);
  // In no file: no table file or log, nor the MANIFEST (RocksDB's list of table files, which
  // names each file's first and last key: one of theirs may have been a boundary of a file
  // compacted away; the store starts a new MANIFEST after the erasure).
  for (const char* gone : {"erase-me-91c2", "cust-91c2", "ev-91c2-a", "ev-91c2-c"}) {
    EXPECT_EQ(testing::FilesHolding(dir.Sub("db"), gone), std::vector<std::string>{}) << gone;
  }
  for (const char* kept : {"keep-me-91c2", "stays-91c2", "ev-91c2-b"}) {
    EXPECT_TRUE(AnyFileHolds(dir.Sub("db"), kept)) << kept;
  }
  EXPECT_EQ(store->CustomerHistory(*store->FindCustomer("stays-91c2"))->size(), 1u);
  store.reset();  // closes the LOG, so that all it was told is in the file
  store = OpenOrDie(dir.Sub("db"));
  // Nowhere after a reopen, in plain bytes or in the hex RocksDB's LOG writes keys in.
  auto hex = [](const std::string& text) {
    std::string out;
    for (unsigned char c : text) {
      out += "0123456789ABCDEF"[c >> 4];
      out += "0123456789ABCDEF"[c & 15];
    }
    return out;
  };
  for (const std::string gone : {"erase-me-91c2", "cust-91c2", "ev-91c2-a", "ev-91c2-c"}) {
    EXPECT_EQ(testing::FilesHolding(dir.Sub("db"), gone), std::vector<std::string>{}) << gone;
    EXPECT_EQ(testing::FilesHolding(dir.Sub("db"), hex(gone)), std::vector<std::string>{}) << gone;
  }
}

// Erasures while another thread keeps writing and flushing, so that level 0 keeps reaching its
// compaction trigger and automatic compactions and flushes run beside every erasure's own (the
// race of RocksDB issue #7983, docs/storage.md). No erased customer's email may be left in any
// file, and no one else's may go.
TEST(Store, ErasuresLeaveNothingWhileOthersWriteAndFlush) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  ASSERT_TRUE(store);
  constexpr int kErased = 24;
  auto email_of = [](const std::string& customer) { return customer + "-c0ffee@mail.example"; };
  auto write_customer = [&](Store& s, const std::string& customer, int events) {
    CustomerProfile profile;
    profile.email = email_of(customer);
    std::vector<std::pair<std::string, CustomerProfile>> one = {{customer, profile}};
    Status status = s.UpsertCustomers(one).status();
    std::vector<EventInput> bought;
    for (int k = 0; k < events; ++k) {
      bought.push_back(Purchase(customer, "p" + std::to_string(k % 7), 100 + k,
                                customer + "-ev" + std::to_string(k)));
    }
    if (status.ok()) status = s.AppendEvents(bought).status();
    return status;
  };
  // Each erased customer in a file of their own, several files deep.
  for (int i = 0; i < kErased; ++i) {
    ASSERT_TRUE(write_customer(*store, "erased" + std::to_string(i), 3).ok());
    ASSERT_TRUE(store->Flush().ok());
  }
  std::atomic<bool> stop{false};
  std::atomic<int> batches{0};
  Status writer_status;
  std::thread writer([&] {
    for (int b = 0; !stop.load() && writer_status.ok(); ++b) {
      for (int k = 0; k < 20 && writer_status.ok(); ++k) {
        writer_status = write_customer(*store, "other" + std::to_string(b * 20 + k), 2);
      }
      if (writer_status.ok()) writer_status = store->Flush();
      batches.fetch_add(1);
    }
  });
  for (int i = 0; i < kErased; ++i) {
    auto receipt = store->ForgetCustomer("erased" + std::to_string(i));
    ASSERT_TRUE(receipt.ok()) << receipt.status().ToString();
    // Most through the server's range erasure, every sixth through a whole compaction.
    const Status erased = i % 6 == 5 ? store->Compact() : store->EraseForgotten(*receipt);
    EXPECT_TRUE(erased.ok()) << i << ": " << erased.ToString();
  }
  stop.store(true);
  writer.join();
  ASSERT_TRUE(writer_status.ok()) << writer_status.ToString();
  EXPECT_GE(batches.load(), kErased / 2) << "the writer flushed beside most erasures";
  for (int i = 0; i < kErased; ++i) {
    const std::string customer = "erased" + std::to_string(i);
    EXPECT_EQ(testing::FilesHolding(dir.Sub("db"), email_of(customer)), std::vector<std::string>{})
        << customer;
    EXPECT_EQ(store->FindCustomer(customer).status().code(), StatusCode::kNotFound);
  }
  for (int n = 0; n < batches.load() * 20; n += 97) {
    const std::string customer = "other" + std::to_string(n);
    EXPECT_TRUE(AnyFileHolds(dir.Sub("db"), email_of(customer))) << customer;
  }
}

TEST(Store, ForgottenIdsAreNotStoredAgainUntilAllowed) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  ASSERT_TRUE(store);
  std::vector<EventInput> events = {Purchase("gone-5d1e", "p", 100, "e1"),
                                    Purchase("stays-5d1e", "p", 100, "e2")};
  ASSERT_TRUE(store->AppendEvents(events).ok());
  EXPECT_FALSE(*store->IsForgotten("gone-5d1e"));
  auto receipt = store->ForgetCustomer("gone-5d1e");
  ASSERT_TRUE(receipt.ok());
  EXPECT_TRUE(*store->IsForgotten("gone-5d1e"));
  EXPECT_FALSE(*store->IsForgotten("stays-5d1e"));
  EXPECT_FALSE(*store->IsForgotten("never-5d1e"));

  // An old export again: the forgotten id's events and profile are counted, not stored; the
  // rest of the batch is.
  std::vector<EventInput> again = {Purchase("gone-5d1e", "p", 100, "e1"),
                                   Purchase("gone-5d1e", "q", 200, "e3"),
                                   Purchase("new-5d1e", "q", 200, "e4")};
  // What AppendEvents did with a batch: events forgotten, written, duplicates.
  using Counts = std::array<int64_t, 3>;
  auto append = [&](const std::vector<EventInput>& batch) {
    auto r = store->AppendEvents(batch);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? Counts{r->forgotten, r->written, r->duplicates} : Counts{-1, -1, -1};
  };
  EXPECT_EQ(append(again), (Counts{2, 1, 0}));
  // A skipped event's id is free for a later event of the same batch.
  EXPECT_EQ(append({Purchase("gone-5d1e", "p", 300, "e9"), Purchase("new-5d1e", "p", 300, "e9")}),
            (Counts{1, 1, 0}));
  EXPECT_EQ(store->CustomerHistory(*store->FindCustomer("new-5d1e"))->size(), 2u);
  EXPECT_EQ(store->FindCustomer("gone-5d1e").status().code(), StatusCode::kNotFound);
  std::vector<std::pair<std::string, CustomerProfile>> profiles = {
      WithEmail("gone-5d1e", "gone-5d1e@mail.example"),
      WithEmail("other-5d1e", "other@mail.example")};
  int64_t forgotten = 0;
  auto created = store->UpsertCustomers(profiles, &forgotten);
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(*created, 1);
  EXPECT_EQ(forgotten, 1);
  EXPECT_EQ(store->FindCustomer("gone-5d1e").status().code(), StatusCode::kNotFound);

  // Kept across a reopen, as a keyed hash: after the erasure the id is in no file, mark included.
  store.reset();
  store = OpenOrDie(dir.Sub("db"));
  EXPECT_TRUE(*store->IsForgotten("gone-5d1e"));
  EXPECT_EQ(append(again), (Counts{2, 0, 1}));
  // An id the store never held, marked ahead of its import; one it holds is refused.
  EXPECT_EQ(store->MarkForgotten("new-5d1e").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->MarkForgotten("").code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(store->MarkForgotten("later-5d1e").ok());
  EXPECT_EQ(append({Purchase("later-5d1e", "p", 400, "e5")}), (Counts{1, 0, 0}));
  EXPECT_EQ(store->FindCustomer("later-5d1e").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(store->EraseForgotten(*receipt).ok());
  EXPECT_EQ(testing::FilesHolding(dir.Sub("db"), "gone-5d1e"), std::vector<std::string>{});

  // Allowed again: stored as a new customer, with a new internal id.
  EXPECT_EQ(store->AllowForgottenAgain("stays-5d1e").code(), StatusCode::kNotFound);
  ASSERT_TRUE(store->AllowForgottenAgain("gone-5d1e").ok());
  EXPECT_FALSE(*store->IsForgotten("gone-5d1e"));
  EXPECT_EQ(append(again), (Counts{0, 2, 1}));
  ASSERT_TRUE(store->FindCustomer("gone-5d1e").ok());
  EXPECT_NE(store->FindCustomer("gone-5d1e")->value, receipt->internal_id);
  store.reset();
  auto read_only = OpenOrDie(dir.Sub("db"), StoreOptions{.read_only = true});
  ASSERT_TRUE(read_only);
  EXPECT_TRUE(*read_only->IsForgotten("later-5d1e"));
  EXPECT_FALSE(*read_only->IsForgotten("gone-5d1e"));
  EXPECT_EQ(read_only->AllowForgottenAgain("later-5d1e").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(read_only->MarkForgotten("x-5d1e").code(), StatusCode::kFailedPrecondition);
}

TEST(StoreLedger, DropLetterDeletesAPendingLetterOnly) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.Sub("db"));
  AddCustomers(*store, 3);
  std::vector<LedgerLetter> letters = {Letter(0, "c1", {1}), Letter(1, "c1", {1})};
  ASSERT_TRUE(store->RecordCampaign({"c1", 5, {}}, letters).ok());
  ASSERT_TRUE(store->MarkLetterSent(CustomerId{0}, "c1", 2000).ok());
  EXPECT_EQ(store->DropLetter(CustomerId{0}, "c1").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->DropLetter(CustomerId{2}, "c1").code(), StatusCode::kNotFound);
  ASSERT_TRUE(store->DropLetter(CustomerId{1}, "c1").ok());
  EXPECT_TRUE(store->CustomerLetters(CustomerId{1})->empty());
  ASSERT_EQ(store->CustomerLetters(CustomerId{0})->size(), 1u);
  EXPECT_EQ((*store->CustomerLetters(CustomerId{0}))[0].status, LetterStatus::kSent);
}

TEST(StoreLedger, CampaignSecretIsMadeOnceAndKept) {
  ScratchDir dir;
  std::string secret;
  {
    auto store = OpenOrDie(dir.Sub("db"));
    auto s = store->CampaignSecret();
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->size(), 32u);
    secret = *s;
    EXPECT_EQ(*store->CampaignSecret(), secret);
  }
  StoreOptions ro;
  ro.read_only = true;
  auto store = OpenOrDie(dir.Sub("db"), ro);
  EXPECT_EQ(*store->CampaignSecret(), secret);
  ScratchDir other;
  OpenOrDie(other.Sub("db")).reset();
  EXPECT_EQ(OpenOrDie(other.Sub("db"), ro)->CampaignSecret().status().code(),
            StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace affinity
