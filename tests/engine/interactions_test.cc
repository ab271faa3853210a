#include "affinity/interactions.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "affinity/store.h"
#include "affinity/time_split.h"
#include "test_util.h"

namespace affinity {
namespace {

using ::affinity::testing::ScratchDir;

EventInput Ev(EventType type, std::string customer, std::string product, UnixSeconds t,
              double quantity, std::string event_id) {
  EventInput e;
  e.customer = std::move(customer);
  e.product = std::move(product);
  e.type = type;
  e.time = t;
  e.quantity = quantity;
  e.unit_price = 1.0;
  e.channel = "web";
  e.event_id = std::move(event_id);
  return e;
}

EventInput Buy(std::string c, std::string p, UnixSeconds t, double q, std::string id) {
  return Ev(EventType::kPurchase, std::move(c), std::move(p), t, q, std::move(id));
}
EventInput Ret(std::string c, std::string p, UnixSeconds t, double q, std::string id) {
  return Ev(EventType::kReturn, std::move(c), std::move(p), t, q, std::move(id));
}

// Entries by external ids: {customer, product} -> weight.
using Entries = std::map<std::pair<std::string, std::string>, float>;

// A store with five customers and five products:
//   alice: mug 2 @100 + mug 3 @200 (repeated purchases), tea 1 @150 returned @300 (fully),
//          a view of pot @120 and a cart of cup @130 (ignored)
//   bob:   mug 1 @-50 (before the epoch), pot 4 @1000 minus a return of 1 @1100,
//          a return of 2 cups @1200 that he never bought
//   carol: cup 0.5 @500, tea 2 @2000
//   erin:  only a view of mug @100
//   dave:  a profile, no events;  spoon: attributes, no events
class InteractionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::Open(dir_.Sub("db"), StoreOptions{});
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    // Appended in two batches, not in time order: the store sorts by (customer, time).
    std::vector<EventInput> first = {
        Buy("alice", "mug", 200, 3, "e2"),
        Ev(EventType::kView, "alice", "pot", 120, 1, "e5"),
        Ev(EventType::kCart, "alice", "cup", 130, 1, "e6"),
        Buy("bob", "pot", 1000, 4, "e7"),
        Ret("alice", "tea", 300, 1, "e4"),
        Buy("alice", "mug", 100, 2, "e1"),
        Ev(EventType::kView, "erin", "mug", 100, 1, "e13"),
    };
    std::vector<EventInput> second = {
        Buy("alice", "tea", 150, 1, "e3"),    Ret("bob", "pot", 1100, 1, "e8"),
        Buy("bob", "mug", -50, 1, "e9"),      Ret("bob", "cup", 1200, 2, "e10"),
        Buy("carol", "cup", 500, 0.5, "e11"), Buy("carol", "tea", 2000, 2, "e12"),
        Buy("alice", "mug", 200, 3, "e2"),  // duplicate event id: not counted twice
    };
    auto r1 = store_->AppendEvents(first);
    ASSERT_TRUE(r1.ok()) << r1.status().ToString();
    auto r2 = store_->AppendEvents(second);
    ASSERT_TRUE(r2.ok()) << r2.status().ToString();
    ASSERT_EQ(r2->duplicates, 1);
    std::vector<std::pair<std::string, CustomerProfile>> dave = {{"dave", CustomerProfile{}}};
    ASSERT_TRUE(store_->UpsertCustomers(dave).ok());
    std::vector<std::pair<std::string, ProductAttributes>> spoon = {{"spoon", ProductAttributes{}}};
    ASSERT_TRUE(store_->UpsertProducts(spoon).ok());
  }

  CsrMatrix Read(const InteractionOptions& options) {
    auto m = ReadPurchaseMatrix(*store_, options);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? std::move(m).value() : CsrMatrix{};
  }

  // Every stored entry, by external ids; also checks the CSR invariants.
  Entries ToEntries(const CsrMatrix& m) {
    Entries out;
    EXPECT_EQ(m.indptr.size(), static_cast<size_t>(m.rows + 1));
    for (int64_t r = 0; r < m.rows; ++r) {
      for (int64_t k = m.RowBegin(r); k < m.RowEnd(r); ++k) {
        if (k > m.RowBegin(r)) {
          EXPECT_LT(m.indices[k - 1], m.indices[k]);
        }
        auto customer = store_->CustomerExternalId(CustomerId{static_cast<uint32_t>(r)});
        auto product = store_->ProductExternalId(ProductId{static_cast<uint32_t>(m.indices[k])});
        EXPECT_TRUE(customer.ok() && product.ok());
        if (customer.ok() && product.ok()) out[{*customer, *product}] = m.values[k];
      }
    }
    return out;
  }

  float At(const CsrMatrix& m, const std::string& customer, const std::string& product) {
    auto c = store_->FindCustomer(customer);
    auto p = store_->FindProduct(product);
    EXPECT_TRUE(c.ok() && p.ok()) << customer << " " << product;
    if (!c.ok() || !p.ok()) return -1;
    return m.At(c->value, static_cast<int32_t>(p->value));
  }

  ScratchDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(InteractionsTest, ShapeIsTheIdLimits) {
  ASSERT_EQ(store_->customer_id_limit(), 5u);  // alice, bob, erin, carol, dave
  ASSERT_EQ(store_->product_id_limit(), 5u);   // mug, pot, cup, tea, spoon
  CsrMatrix m = Read({});
  EXPECT_EQ(m.rows, 5);
  EXPECT_EQ(m.cols, 5);
  EXPECT_EQ(m.indptr.size(), 6u);
}

TEST_F(InteractionsTest, SumsPurchasesAndSubtractsReturns) {
  CsrMatrix m = Read({});
  Entries want = {
      {{"alice", "mug"}, 5.0f},  // 2 + 3; tea 1 - 1 = 0 is left out; view and cart ignored
      {{"bob", "mug"}, 1.0f},   {{"bob", "pot"}, 3.0f},  // 4 - 1; cups -2 left out
      {{"carol", "cup"}, 0.5f}, {{"carol", "tea"}, 2.0f},
  };
  EXPECT_EQ(ToEntries(m), want);
  EXPECT_EQ(m.nnz(), 5);
  EXPECT_EQ(At(m, "alice", "tea"), 0.0f);
  EXPECT_EQ(At(m, "alice", "pot"), 0.0f);
  EXPECT_EQ(At(m, "bob", "cup"), 0.0f);
  // Customers with only views, or no events at all, have empty rows.
  for (const char* name : {"erin", "dave"}) {
    auto id = store_->FindCustomer(name);
    ASSERT_TRUE(id.ok());
    EXPECT_EQ(m.RowBegin(id->value), m.RowEnd(id->value)) << name;
  }
}

TEST_F(InteractionsTest, WithoutSubtractingReturns) {
  InteractionOptions options;
  options.subtract_returns = false;
  Entries want = {
      {{"alice", "mug"}, 5.0f}, {{"alice", "tea"}, 1.0f}, {{"bob", "mug"}, 1.0f},
      {{"bob", "pot"}, 4.0f},   {{"carol", "cup"}, 0.5f}, {{"carol", "tea"}, 2.0f},
  };
  EXPECT_EQ(ToEntries(Read(options)), want);
}

TEST_F(InteractionsTest, WindowIsFromInclusiveToExclusive) {
  InteractionOptions options;
  options.from = 100;  // alice's first mug at exactly 100 counts
  options.to = 1100;   // bob's pot return at exactly 1100 does not
  Entries want = {
      {{"alice", "mug"}, 5.0f},  // tea 1 @150 and its return @300 both inside: 0
      {{"bob", "pot"}, 4.0f},    // mug @-50 before the window, returns after it
      {{"carol", "cup"}, 0.5f},  // tea @2000 after the window
  };
  CsrMatrix m = Read(options);
  EXPECT_EQ(m.rows, 5);  // the shape does not depend on the window
  EXPECT_EQ(m.cols, 5);
  EXPECT_EQ(ToEntries(m), want);
}

TEST_F(InteractionsTest, WindowWithOnlyFrom) {
  InteractionOptions options;
  options.from = 101;
  Entries want = {
      {{"alice", "mug"}, 3.0f},  // only the purchase @200
      {{"bob", "pot"}, 3.0f},
      {{"carol", "cup"}, 0.5f},
      {{"carol", "tea"}, 2.0f},
  };
  EXPECT_EQ(ToEntries(Read(options)), want);
}

TEST_F(InteractionsTest, WindowWithOnlyTo) {
  InteractionOptions options;
  options.to = 0;
  EXPECT_EQ(ToEntries(Read(options)), (Entries{{{"bob", "mug"}, 1.0f}}));
  options.to = 151;  // alice's tea bought @150, returned @300 (outside): counts
  Entries want = {{{"alice", "mug"}, 2.0f}, {{"alice", "tea"}, 1.0f}, {{"bob", "mug"}, 1.0f}};
  EXPECT_EQ(ToEntries(Read(options)), want);
}

TEST_F(InteractionsTest, EmptyWindow) {
  InteractionOptions options;
  options.from = 600;
  options.to = 600;
  CsrMatrix m = Read(options);
  EXPECT_EQ(m.rows, 5);
  EXPECT_EQ(m.cols, 5);
  EXPECT_EQ(m.nnz(), 0);
}

TEST(ReadPurchaseMatrix, EmptyStore) {
  ScratchDir dir;
  auto store = Store::Open(dir.Sub("db"), StoreOptions{});
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto m = ReadPurchaseMatrix(**store, InteractionOptions{});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->rows, 0);
  EXPECT_EQ(m->cols, 0);
  EXPECT_EQ(m->indptr, (std::vector<int64_t>{0}));
  EXPECT_EQ(m->nnz(), 0);
}

TEST(ReadPurchaseMatrix, ReturnBeforePurchaseStillCancels) {
  ScratchDir dir;
  auto store = Store::Open(dir.Sub("db"), StoreOptions{});
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::vector<EventInput> events = {
      Ret("x", "a", 10, 2, "r1"),  Buy("x", "a", 20, 3, "b1"),  // 3 - 2 = 1
      Ret("x", "b", 10, 1, "r2"),  Buy("x", "b", 20, 1, "b2"),  // 0: left out
      Buy("y", "b", 5, 1.5, "b3"), Buy("y", "b", 6, 1.5, "b4"),
  };
  ASSERT_TRUE((*store)->AppendEvents(events).ok());
  auto m = ReadPurchaseMatrix(**store, InteractionOptions{});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  // x = customer 0, y = 1; a = product 0, b = 1.
  EXPECT_EQ(m->indptr, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(m->indices, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(m->values, (std::vector<float>{1.0f, 3.0f}));
}

// The tuning split of a time split is the same protocol one horizon earlier, inside the training
// period: it never holds out a test-period purchase, a repeat, or a customer with no history.
TEST(TimeSplit, ValidationIsTheSameProtocolOneHorizonEarlier) {
  ScratchDir dir;
  auto store = Store::Open(dir.Sub("db"), StoreOptions{});
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  constexpr UnixSeconds kDay = 86400;
  std::vector<EventInput> events = {
      Buy("x", "a", 1 * kDay, 1, "1"),  Buy("x", "b", 12 * kDay, 1, "2"),  // b: validation
      Buy("x", "c", 25 * kDay, 1, "3"),                                    // c: test period
      Buy("y", "a", 2 * kDay, 1, "4"),  Buy("y", "a", 15 * kDay, 1, "5"),  // a again: a repeat
      Buy("y", "d", 16 * kDay, 1, "6"),                                    // d: validation
      Buy("z", "e", 11 * kDay, 1, "7"),  // z has no purchase before day 10
  };
  ASSERT_TRUE((*store)->AppendEvents(events).ok());
  TimeSplitOptions test;
  test.cutoff = 20 * kDay;
  test.horizon_days = 10;
  auto split = MakeTimeValidationSplit(**store, test);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  // Ids follow first appearance: x y z = 0 1 2; a b c d e = 0 1 2 3 4.
  EXPECT_EQ(split->fit.rows, 3);
  EXPECT_EQ(split->fit.cols, 5);
  EXPECT_EQ(split->fit.indptr, (std::vector<int64_t>{0, 1, 2, 2}));  // x: a, y: a
  EXPECT_EQ(split->fit.indices, (std::vector<int32_t>{0, 0}));
  EXPECT_EQ(split->held.rows, 3);
  EXPECT_EQ(split->held.indptr, (std::vector<int64_t>{0, 1, 2, 2}));  // x: b, y: d
  EXPECT_EQ(split->held.indices, (std::vector<int32_t>{1, 3}));
  EXPECT_NE(split->description.find("10 days before"), std::string::npos) << split->description;
  // The test split itself holds out only c, which the validation never saw.
  auto measured = MakeTimeSplit(**store, test);
  ASSERT_TRUE(measured.ok());
  EXPECT_EQ(measured->test.indices, (std::vector<int32_t>{2}));
  // A cutoff with no history one horizon before it has no validation split.
  test.cutoff = 5 * kDay;
  EXPECT_EQ(MakeTimeValidationSplit(**store, test).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace affinity
