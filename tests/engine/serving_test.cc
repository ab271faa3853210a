#include "affinity/serving.h"

#include <gtest/gtest.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "affinity/json_writer.h"
#include "planted_shop.h"
#include "test_util.h"

namespace affinity {
namespace {

using testing::PlantedId;

class ServingEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::OpenPlantedEngine(dir_, &store_, &engine_);
    ASSERT_TRUE(engine_);
  }

  // The first customer of the audience `r` asks for, given the email address `email`: whom the
  // forgetting tests forget.
  std::string AudienceMemberWithEmail(const AudienceRequest& r, const std::string& email) {
    auto audience = engine_->Audience(r);
    EXPECT_TRUE(audience.ok() && !audience->customers.empty());
    if (!audience.ok() || audience->customers.empty()) return "";
    const std::string customer = audience->customers[0].customer;
    CustomerProfile mail;
    mail.email = email;
    EXPECT_TRUE(engine_->UpsertCustomer(customer, mail).ok());
    return customer;
  }

  testing::ScratchDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<ServingEngine> engine_;
};

TEST(ServingOptions, ValidateNamesTheBadField) {
  EXPECT_TRUE(ServingOptions().Validate().ok());
  auto field = [](auto set) {
    ServingOptions o;
    set(o);
    return o.Validate().field();
  };
  EXPECT_EQ(field([](ServingOptions& o) { o.max_k = 0; }), "max_k");
  EXPECT_EQ(field([](ServingOptions& o) { o.audience_candidates = 0; }), "audience_candidates");
  EXPECT_EQ(field([](ServingOptions& o) { o.dense_key_products = 0; }), "dense_key_products");
  EXPECT_EQ(field([](ServingOptions& o) { o.prior_buyers = -1; }), "prior_buyers");
}

// The audience document: its members are written in one piece when their ids need no escape, and
// member by member through JsonWriter otherwise; both give the text the general writer gives.
TEST(AudienceResultJsonText, WritesEveryMemberAsTheGeneralWriterDoes) {
  AudienceResult r;
  r.model_version = 3;
  r.product_vector = "attributes";
  r.calibrated = true;
  r.horizon_days = 30;
  r.expected_buyers = 0.75;
  r.candidates = 12;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  r.customers = {{"c1", -6.25f, 0.5, "purchased", "p9"},
                 {"c2", 1e-7f, 0.125, "stated_interest", "Toys/Games"},
                 {"c3", nan, std::nullopt, "", ""},
                 {"c\"4", 2.5f, 0.25, "purchased", "p\\5"},  // escaped: general path
                 {"c5", 0.5f, std::nullopt, "stated_interest", "Caf\xc3\xa9"},  // idem
                 // In one piece again, after the general path; non-finite numbers are null.
                 {"c6", std::numeric_limits<float>::infinity(),
                  std::numeric_limits<double>::quiet_NaN(), "purchased", "p6"}};
  // The general writer, member by member (what AudienceResultJsonText wrote before its fast path).
  JsonWriter w;
  const std::string product = "p1";
  w.BeginObject().Key("product").String(product).Key("model_version").Int(3);
  w.Key("product_vector").String("attributes").Key("calibrated").Bool(true);
  w.Key("horizon_days").Number(30.0).Key("expected_buyers").Number(0.75);
  w.Key("candidates").Int(12).Key("customers").BeginArray();
  for (const AudienceMember& m : r.customers) {
    w.BeginObject().Key("customer").String(m.customer).Key("score").Number(m.score);
    w.Key("probability");
    m.probability ? w.Number(*m.probability) : w.Null();
    w.Key("reason");
    if (m.reason_kind == "purchased") {
      w.BeginObject().Key("kind").String("purchased").Key("product").String(m.reason);
      w.Key("text").String("because you bought " + m.reason).EndObject();
    } else if (m.reason_kind == "stated_interest") {
      w.BeginObject().Key("kind").String("stated_interest").Key("category").String(m.reason);
      w.Key("text").String("you told us you like " + m.reason).EndObject();
    } else {
      w.Null();
    }
    w.EndObject();
  }
  const std::string expected = w.EndArray().EndObject().Take();
  const std::string text = AudienceResultJsonText(r, &product);
  EXPECT_EQ(text, expected);
  const nlohmann::json j = nlohmann::json::parse(text);
  ASSERT_EQ(j["customers"].size(), 6u);
  EXPECT_EQ(j["customers"][0]["reason"]["text"], "because you bought p9");
  EXPECT_EQ(j["customers"][1]["reason"]["category"], "Toys/Games");
  EXPECT_TRUE(j["customers"][2]["score"].is_null());
  EXPECT_TRUE(j["customers"][2]["reason"].is_null());
  EXPECT_EQ(j["customers"][3]["customer"], "c\"4");
  EXPECT_EQ(j["customers"][1]["score"].get<float>(), 1e-7f);
  EXPECT_TRUE(j["customers"][5]["score"].is_null());
  EXPECT_TRUE(j["customers"][5]["probability"].is_null());
  EXPECT_EQ(j["customers"][5]["reason"]["product"], "p6");
}

TEST_F(ServingEngineTest, RecommendsTheCustomersSideWithReasonsFromTheirPurchases) {
  for (int i : {0, 7, 29}) {
    RecommendRequest r;
    r.customer = PlantedId('a', i);
    r.k = 5;
    auto result = engine_->Recommend(r);
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(result->source, "model");
    ASSERT_EQ(result->items.size(), 5u);
    const std::vector<int> basket = testing::PlantedBasket(i);
    for (const auto& item : result->items) {
      EXPECT_EQ(item.product[0], 'k') << item.product;  // the kitchen side
      const int n = std::stoi(item.product.substr(1));
      EXPECT_EQ(std::count(basket.begin(), basket.end(), n), 0) << "already bought";
      // The reason is one of the customer's own purchases.
      ASSERT_FALSE(item.because.empty());
      EXPECT_EQ(std::count(basket.begin(), basket.end(), std::stoi(item.because.substr(1))), 1);
    }
  }
}

TEST_F(ServingEngineTest, CategoryFilterAndUnknownIds) {
  RecommendRequest r;
  r.customer = PlantedId('b', 3);
  r.category = "Sports/Running/Shirts";
  r.k = 20;
  auto result = engine_->Recommend(r);
  ASSERT_TRUE(result.ok());
  ASSERT_FALSE(result->items.empty());
  for (const auto& item : result->items) EXPECT_GE(std::stoi(item.product.substr(1)), 10);
  r.customer = "nobody";
  EXPECT_EQ(engine_->Recommend(r).status().code(), StatusCode::kNotFound);
  r.customer = PlantedId('b', 3);
  r.k = 0;
  EXPECT_EQ(engine_->Recommend(r).status().field(), "k");
}

TEST_F(ServingEngineTest, FoldInIsVisibleAtOnceAndMovesTheCustomer) {
  // b05 (running side) buys three kitchen products: the other kitchen products move up for them
  // at once, and the bought ones leave the list.
  RecommendRequest r;
  r.customer = PlantedId('b', 5);
  r.k = 40;
  r.exclude_purchased = false;
  auto mean_kitchen = [](const RecommendResult& res, const std::vector<std::string>& skip) {
    double sum = 0;
    int n = 0;
    for (const auto& item : res.items) {
      if (item.product[0] != 'k' ||
          std::find(skip.begin(), skip.end(), item.product) != skip.end()) {
        continue;
      }
      sum += item.score;
      ++n;
    }
    return n > 0 ? sum / n : -1e9;
  };
  const std::vector<std::string> bought = {"k03", "k07", "k11"};
  auto before = engine_->Recommend(r);
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->source, "model");
  std::vector<EventInput> events;
  for (const auto& p : bought) {
    EventInput e;
    e.customer = PlantedId('b', 5);
    e.product = p;
    e.time = testing::kPlantedStart + 20 * 86400;
    e.event_id = "fold-" + p;
    events.push_back(e);
  }
  auto added = engine_->AddEvents(events);
  ASSERT_TRUE(added.ok());
  EXPECT_EQ(added->stored.written, 3);
  EXPECT_EQ(added->folded_in, 1);
  auto after = engine_->Recommend(r);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->source, "fold_in");
  EXPECT_GT(mean_kitchen(*after, bought), mean_kitchen(*before, bought) + 0.02);
  r.exclude_purchased = true;
  auto excluded = engine_->Recommend(r);
  ASSERT_TRUE(excluded.ok());
  for (const auto& item : excluded->items) {
    EXPECT_EQ(std::find(bought.begin(), bought.end(), item.product), bought.end());
  }
  EXPECT_EQ(engine_->fold_ins(), 1);
}

// The online fold-in of an unchanged customer reproduces their trained vector.
TEST_F(ServingEngineTest, FoldInOfAnUnchangedCustomerMatchesTraining) {
  RecommendRequest r;
  r.customer = PlantedId('a', 8);
  r.k = 40;
  r.exclude_purchased = false;
  auto before = engine_->Recommend(r);
  ASSERT_TRUE(before.ok());
  // A view is stored but does not change the purchase row: the fold-in re-solves the same row.
  EventInput view;
  view.customer = PlantedId('a', 8);
  view.product = "k01";
  view.type = EventType::kView;
  view.time = testing::kPlantedStart + 25 * 86400;
  view.event_id = "view-1";
  ASSERT_TRUE(engine_->AddEvents({&view, 1}).ok());
  auto after = engine_->Recommend(r);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->source, "fold_in");
  ASSERT_EQ(after->items.size(), before->items.size());
  for (const auto& b : before->items) {
    for (const auto& a : after->items) {
      if (a.product == b.product) {
        EXPECT_NEAR(a.score, b.score, 0.02) << a.product;
      }
    }
  }
}

TEST_F(ServingEngineTest, AudienceIsTheSideThatHasNotBoughtAndHonoursOptOuts) {
  AudienceRequest r;
  r.product = "k04";
  r.limit = 10;
  auto audience = engine_->Audience(r);
  ASSERT_TRUE(audience.ok()) << audience.status().ToString();
  ASSERT_EQ(audience->customers.size(), 10u);
  for (const auto& m : audience->customers) {
    EXPECT_EQ(m.customer[0], 'a') << m.customer;
    const std::vector<int> basket = testing::PlantedBasket(std::stoi(m.customer.substr(1)));
    EXPECT_EQ(std::count(basket.begin(), basket.end(), 4), 0) << m.customer << " bought it";
  }
  const std::string top = audience->customers[0].customer;
  CustomerProfile p;
  p.opted_out = true;
  ASSERT_TRUE(engine_->UpsertCustomer(top, p).ok());
  auto again = engine_->Audience(r);
  ASSERT_TRUE(again.ok());
  for (const auto& m : again->customers) EXPECT_NE(m.customer, top);
  r.product = "nothing";
  EXPECT_EQ(engine_->Audience(r).status().code(), StatusCode::kNotFound);
}

TEST_F(ServingEngineTest, AnOptOutCoversEveryAccountAtItsAddress) {
  // As campaigns count it: an opt-out is the person's, whichever of their accounts it was made on.
  AudienceRequest r;
  r.product = "k04";
  r.limit = 40;
  auto listed = [&](const std::string& id) {
    auto a = engine_->Audience(r);
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    if (!a.ok()) return false;
    for (const auto& m : a->customers) {
      if (m.customer == id) return true;
    }
    return false;
  };
  auto audience = engine_->Audience(r);
  ASSERT_TRUE(audience.ok());
  const std::string top = audience->customers[0].customer;
  CustomerProfile p;
  p.email = "Pat@Mail.example";
  ASSERT_TRUE(engine_->UpsertCustomer(top, p).ok());
  ASSERT_TRUE(listed(top));
  // A second account of the same person (the address in other letter case) opts out.
  CustomerProfile other;
  other.email = "pat@mail.EXAMPLE";
  other.opted_out = true;
  ASSERT_TRUE(engine_->UpsertCustomer("pat-second-account", other).ok());
  EXPECT_FALSE(listed(top));
  // Back in: listed again.
  other.opted_out = false;
  ASSERT_TRUE(engine_->UpsertCustomer("pat-second-account", other).ok());
  EXPECT_TRUE(listed(top));
  // Opted out at another address: this one is not covered.
  other.opted_out = true;
  other.email = "someone-else@mail.example";
  ASSERT_TRUE(engine_->UpsertCustomer("pat-second-account", other).ok());
  EXPECT_TRUE(listed(top));
  // Moved onto the address while opted out: covered again; and the address's own account
  // moving away leaves the opt-out behind it.
  other.email = "PAT@mail.example";
  ASSERT_TRUE(engine_->UpsertCustomer("pat-second-account", other).ok());
  EXPECT_FALSE(listed(top));
  p.email = "pat.new@mail.example";
  ASSERT_TRUE(engine_->UpsertCustomer(top, p).ok());
  EXPECT_TRUE(listed(top));
  p.email = "pat@mail.example";
  ASSERT_TRUE(engine_->UpsertCustomer(top, p).ok());
  EXPECT_FALSE(listed(top));
  // A restart reads the same from the store.
  engine_.reset();
  auto reopened = ServingEngine::Open(store_.get(), dir_.Sub("snaps"), ServingOptions{});
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  engine_ = std::move(*reopened);
  EXPECT_FALSE(listed(top));
  // The account that opted out is forgotten, and its opt-out with it (the store keeps no trace
  // of it, so a campaign planned now would not see it either).
  ASSERT_TRUE(engine_->ForgetCustomer("pat-second-account").ok());
  EXPECT_TRUE(listed(top));
}

TEST_F(ServingEngineTest, AnErasureCutShortByAStopIsDoneAtTheNextStart) {
  // A customer forgotten, then the engine gone before its erasure ran (a stop or a crash right
  // after the DELETE was answered): deleted, but still in the table files.
  AudienceRequest r;
  r.product = "k04";
  r.limit = 30;
  const std::string victim = AudienceMemberWithEmail(r, "cut-short-7a3f@mail.example");
  ASSERT_FALSE(victim.empty());
  engine_.reset();
  ASSERT_TRUE(store_->Compact().ok());
  ASSERT_EQ(*store_->ErasuresPending(), 0);
  ASSERT_TRUE(store_->ForgetCustomer(victim).ok());  // as the engine does, without its erasure
  EXPECT_EQ(*store_->ErasuresPending(), 1);
  store_.reset();
  auto store = Store::Open(dir_.Sub("db"), StoreOptions());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  store_ = std::move(*store);
  ASSERT_EQ(*store_->ErasuresPending(), 1) << "kept with the delete";
  ASSERT_FALSE(testing::FilesHolding(dir_.Sub("db"), "cut-short-7a3f").empty());
  {  // an engine for a short run leaves it
    auto brief = ServingEngine::Open(store_.get(), dir_.Sub("snaps"), ServingOptions{});
    ASSERT_TRUE(brief.ok()) << brief.status().ToString();
    EXPECT_EQ((*brief)->WaitForErasures(), 0);
    EXPECT_EQ(*store_->ErasuresPending(), 1);
  }
  ServingOptions server;
  server.finish_erasures_at_start = true;
  auto reopened = ServingEngine::Open(store_.get(), dir_.Sub("snaps"), server);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  engine_ = std::move(*reopened);
  EXPECT_EQ(engine_->WaitForErasures(), 0);
  EXPECT_EQ(*store_->ErasuresPending(), 0);
  EXPECT_EQ(testing::FilesHolding(dir_.Sub("db"), "cut-short-7a3f"), std::vector<std::string>{});
  auto after = engine_->Audience(r);
  ASSERT_TRUE(after.ok());
  for (const auto& m : after->customers) EXPECT_NE(m.customer, victim);
}

TEST_F(ServingEngineTest, ForgetRemovesTheCustomerFromStoreAndAnswers) {
  AudienceRequest r;
  r.product = "k04";
  r.limit = 30;
  const std::string victim = AudienceMemberWithEmail(r, "victim-5e1d@mail.example");
  ASSERT_FALSE(victim.empty());
  ASSERT_TRUE(store_->Compact().ok());  // the address in the table files, as after a while
  auto receipt = engine_->ForgetCustomer(victim);
  ASSERT_TRUE(receipt.ok()) << receipt.status().ToString();
  // Then out of the store's files, in the background.
  EXPECT_EQ(engine_->WaitForErasures(), 0);
  EXPECT_EQ(testing::FilesHolding(dir_.Sub("db"), "victim-5e1d"), std::vector<std::string>{});
  EXPECT_EQ(*store_->ErasuresPending(), 0);
  EXPECT_EQ(receipt->store.events, 6);
  EXPECT_TRUE(receipt->store.profile);
  EXPECT_TRUE(receipt->had_vector);
  EXPECT_EQ(store_->FindCustomer(victim).status().code(), StatusCode::kNotFound);
  auto history = store_->CustomerHistory(CustomerId{receipt->store.internal_id});
  ASSERT_TRUE(history.ok());
  EXPECT_TRUE(history->empty());
  auto after = engine_->Audience(r);
  ASSERT_TRUE(after.ok());
  for (const auto& m : after->customers) EXPECT_NE(m.customer, victim);
  RecommendRequest rr;
  rr.customer = victim;
  EXPECT_EQ(engine_->Recommend(rr).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(engine_->ForgetCustomer(victim).status().code(), StatusCode::kNotFound);
  // A restarted server on the same (older) snapshot does not bring them back.
  auto restarted = ServingEngine::Open(store_.get(), dir_.Sub("snaps"), ServingOptions());
  ASSERT_TRUE(restarted.ok());
  auto again = (*restarted)->Audience(r);
  ASSERT_TRUE(again.ok());
  for (const auto& m : again->customers) EXPECT_NE(m.customer, victim);
  // The next snapshot does not contain them.
  ASSERT_EQ(testing::TrainPlantedSnapshot(*store_, dir_.Sub("snaps")), 2);
  auto snapshot = LoadSnapshot(dir_.Sub("snaps"));
  ASSERT_TRUE(snapshot.ok());
  EXPECT_EQ(std::count(snapshot->customer_ids.begin(), snapshot->customer_ids.end(), victim), 0);
  EXPECT_EQ(snapshot->user_factors.row(receipt->store.internal_id).squaredNorm(), 0.0f);
  // The same external id's events and profile are not stored again (a re-import of an old export
  // must not bring the customer back)...
  EventInput comeback;
  comeback.customer = victim;
  comeback.product = "k04";
  comeback.time = 1'700'000'000;
  comeback.event_id = "comeback-1";
  auto refused = engine_->AddEvents({&comeback, 1});
  ASSERT_TRUE(refused.ok()) << refused.status().ToString();
  EXPECT_EQ(refused->stored.written, 0);
  EXPECT_EQ(refused->stored.forgotten, 1);
  EXPECT_EQ(store_->FindCustomer(victim).status().code(), StatusCode::kNotFound);
  CustomerProfile profile;
  profile.email = "back@example.com";
  auto upserted = engine_->UpsertCustomer(victim, profile);
  EXPECT_EQ(upserted.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(upserted.status().field(), "customer");
  EXPECT_EQ(store_->FindCustomer(victim).status().code(), StatusCode::kNotFound);
  // ...until allowed again: then buying again makes a new customer (a new internal id), whom the
  // running engine finds although its snapshot still lists the id under the forgotten row.
  ASSERT_TRUE(store_->AllowForgottenAgain(victim).ok());
  auto added = engine_->AddEvents({&comeback, 1});
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  EXPECT_EQ(added->stored.written, 1);
  ASSERT_TRUE(store_->FindCustomer(victim).ok());
  EXPECT_NE(store_->FindCustomer(victim)->value, receipt->store.internal_id);
  rr.exclude_purchased = true;
  auto back = engine_->Recommend(rr);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->source, "fold_in");
  for (const auto& item : back->items) EXPECT_NE(item.product, "k04");
}

TEST_F(ServingEngineTest, ReloadSwapsAndKeepsFoldedInCustomers) {
  EventInput e;
  e.customer = "newcomer";
  e.product = "r02";
  e.time = testing::kPlantedStart + 21 * 86400;
  e.event_id = "n-1";
  ASSERT_TRUE(engine_->AddEvents({&e, 1}).ok());
  auto unchanged = engine_->Reload();  // nothing newer
  ASSERT_TRUE(unchanged.ok());
  EXPECT_EQ(*unchanged, 1);
  ASSERT_EQ(testing::TrainPlantedSnapshot(*store_, dir_.Sub("snaps"), /*seed=*/9), 2);
  auto v = engine_->Reload();
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(*v, 2);
  EXPECT_EQ(engine_->Info().version, 2);
  RecommendRequest r;
  r.customer = "newcomer";
  r.k = 3;
  auto result = engine_->Recommend(r);
  ASSERT_TRUE(result.ok());
  // The newcomer is in the new snapshot too, or re-solved on it: running products either way.
  EXPECT_NE(result->source, "popular");
  for (const auto& item : result->items) EXPECT_EQ(item.product[0], 'r');
}

TEST_F(ServingEngineTest, CustomersWithoutAVectorGetPopularProducts) {
  CustomerProfile p;
  ASSERT_TRUE(engine_->UpsertCustomer("fresh", p).ok());
  RecommendRequest r;
  r.customer = "fresh";
  r.k = 4;
  auto result = engine_->Recommend(r);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->source, "popular");
  EXPECT_EQ(result->items.size(), 4u);
  for (const auto& item : result->items) EXPECT_TRUE(item.because.empty());
}

// The popular products (the answer for a customer without a vector) are counted at each refresh:
// forgetting their buyers is a change that the next refresh takes in, as purchases are.
TEST_F(ServingEngineTest, ForgottenBuyersLeaveThePopularProductsAtTheNextRefresh) {
  ProductAttributes hot;
  hot.title = "Hot thing";
  ASSERT_TRUE(engine_->UpsertProduct("hot", hot).ok());
  std::vector<EventInput> events;
  for (int i = 0; i < 15; ++i) {  // every planted product has fewer buyers
    EventInput e;
    e.customer = "fan" + std::to_string(i);
    e.product = "hot";
    e.time = testing::kPlantedStart + 86400;
    e.unit_price = 1;
    e.event_id = "hot/" + std::to_string(i);
    events.push_back(std::move(e));
  }
  auto added = engine_->AddEvents(events);
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  ASSERT_TRUE(engine_->RefreshCandidates());
  ASSERT_TRUE(engine_->UpsertCustomer("fresh", CustomerProfile()).ok());
  RecommendRequest r;
  r.customer = "fresh";
  r.k = 4;
  auto before = engine_->Recommend(r);
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  ASSERT_EQ(before->source, "popular");
  ASSERT_FALSE(before->items.empty());
  EXPECT_EQ(before->items[0].product, "hot");
  EXPECT_EQ(before->items[0].score, 15);

  for (int i = 0; i < 15; ++i) {
    ASSERT_TRUE(engine_->ForgetCustomer("fan" + std::to_string(i)).ok());
  }
  EXPECT_TRUE(engine_->RefreshCandidates()) << "forgetting changed what the popular list counts";
  EXPECT_FALSE(engine_->RefreshCandidates()) << "nothing since";
  auto after = engine_->Recommend(r);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->items.size(), 4u);
  for (const auto& item : after->items) EXPECT_NE(item.product, "hot");
}

TEST_F(ServingEngineTest, InsightsNeedTheFitThenReflectNewEvents) {
  EXPECT_EQ(engine_->Insight("a01").status().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(engine_->RefitInsights().ok());
  auto before = engine_->Insight("a01");
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EventInput e;
  e.customer = "a01";
  e.product = "k19";
  e.time = testing::kPlantedStart + 40 * 86400;
  e.unit_price = 50;
  e.event_id = "late-1";
  ASSERT_TRUE(engine_->AddEvents({&e, 1}).ok());
  auto after = engine_->Insight("a01");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->purchase_days, before->purchase_days + 1);
  EXPECT_GT(after->monetary, before->monetary);
  EXPECT_EQ(engine_->Insight("nobody").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace affinity
