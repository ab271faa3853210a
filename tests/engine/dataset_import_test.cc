// End-to-end import of slices of the two real shops in ../shared/data (fixtures in tests/data),
// checked against counts computed independently by tests/data/make_fixtures.py (Python's csv
// module, same documented rules) and stored in tests/data/expected_counts.json.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <tuple>

#include "affinity/import.h"
#include "affinity/time_util.h"
#include "test_util.h"

namespace affinity {
namespace {

using nlohmann::json;
using testing::DataPath;
using testing::ScratchDir;

const json& Expected() {
  static const json* expected =
      new json(json::parse(testing::ReadFile(DataPath("expected_counts.json"))));
  return *expected;
}

struct Totals {
  double quantity = 0;
  double revenue = 0;
};

Totals PurchaseTotals(const Store& store) {
  Totals t;
  EXPECT_TRUE(store
                  .ScanEvents([&](const Event& e) {
                    if (e.type == EventType::kPurchase) {
                      t.quantity += e.quantity;
                      t.revenue += e.quantity * e.unit_price;
                    }
                    return true;
                  })
                  .ok());
  return t;
}

void ExpectStoreMatches(const Store& store, const json& x) {
  auto s = store.ComputeStats();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->customers, x["customers"].get<int64_t>());
  EXPECT_EQ(s->customers_with_events, x["customers"].get<int64_t>());
  EXPECT_EQ(s->products, x["products"].get<int64_t>());
  EXPECT_EQ(s->events, x["events"].get<int64_t>());
  EXPECT_EQ(s->purchases, x["events_by_type"]["purchase"].get<int64_t>());
  EXPECT_EQ(s->returns, x["events_by_type"]["return"].get<int64_t>());
  EXPECT_EQ(FormatTimestamp(*s->first_event), x["first_event"].get<std::string>());
  EXPECT_EQ(FormatTimestamp(*s->last_event), x["last_event"].get<std::string>());
  EXPECT_EQ(s->events_per_customer_p50, x["events_per_customer"]["p50"].get<int64_t>());
  EXPECT_EQ(s->events_per_customer_p90, x["events_per_customer"]["p90"].get<int64_t>());
  EXPECT_EQ(s->events_per_customer_p99, x["events_per_customer"]["p99"].get<int64_t>());
  EXPECT_EQ(s->events_per_customer_max, x["events_per_customer"]["max"].get<int64_t>());
  Totals t = PurchaseTotals(store);
  EXPECT_DOUBLE_EQ(t.quantity, x["quantity"].get<double>());
  EXPECT_NEAR(t.revenue, x["revenue"].get<double>(), 0.006);
}

void ExpectHistoryMatches(const Store& store, const json& history) {
  auto id = store.FindCustomer(history["customer"].get<std::string>());
  ASSERT_TRUE(id.ok());
  auto events = store.CustomerHistory(*id);
  ASSERT_TRUE(events.ok());
  using Row = std::tuple<std::string, std::string, std::string, double>;
  std::vector<Row> got, want;
  for (const auto& e : *events) {
    got.emplace_back(FormatTimestamp(e.time), *store.ProductExternalId(e.product),
                     std::string(EventTypeName(e.type)), e.quantity);
  }
  for (const auto& row : history["events"]) {
    want.emplace_back(row[0].get<std::string>(), row[1].get<std::string>(),
                      row[2].get<std::string>(), row[3].get<double>());
  }
  // The store orders ties in time by event-id hash; compare as sorted multisets, and check that
  // the store's own order is by time.
  for (size_t i = 1; i < got.size(); ++i) EXPECT_LE(std::get<0>(got[i - 1]), std::get<0>(got[i]));
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
}

std::string Trimmed(std::string s) {
  while (!s.empty() && s.back() == ' ') s.pop_back();
  while (!s.empty() && s.front() == ' ') s.erase(0, 1);
  return s;
}

class OnlineRetailSlice : public ::testing::TestWithParam<const char*> {};

TEST_P(OnlineRetailSlice, CountsMatchIndependentComputation) {
  const json& x = Expected()["online_retail_slice"];
  ScratchDir dir;
  auto store = std::move(Store::Open(dir.Sub("db"), {}).value());
  auto reports = ImportPresetFiles(*store, ImportPreset::kOnlineRetail, {DataPath(GetParam())}, {});
  ASSERT_TRUE(reports.ok()) << reports.status().ToString();
  ASSERT_EQ(reports->size(), 1u);
  const ImportReport& r = (*reports)[0];
  EXPECT_EQ(r.rows, x["rows"].get<int64_t>());
  EXPECT_EQ(r.rejected, x["rejected"].get<int64_t>());
  EXPECT_EQ(r.dropped, (x["dropped"].get<std::map<std::string, int64_t>>()));
  EXPECT_EQ(r.events_written, x["events"].get<int64_t>());
  ExpectStoreMatches(*store, x);

  for (const auto& [code, p] : x["samples"]["products"].items()) {
    SCOPED_TRACE(code);
    auto attrs = store->GetProduct(*store->FindProduct(code));
    ASSERT_TRUE(attrs.ok());
    EXPECT_EQ(*attrs->title, Trimmed(p["title"].get<std::string>()));
    EXPECT_DOUBLE_EQ(*attrs->price, p["price"].get<double>());
    EXPECT_EQ(FormatTimestamp(*attrs->created_at), p["created_at"].get<std::string>());
  }
  for (const auto& [id, c] : x["samples"]["customers"].items()) {
    SCOPED_TRACE(id);
    auto cid = store->FindCustomer(id);
    ASSERT_TRUE(cid.ok());
    auto profile = store->GetCustomer(*cid);
    EXPECT_EQ(*profile->country, c["country"].get<std::string>());
    EXPECT_EQ(FormatTimestamp(*profile->created_at), c["created_at"].get<std::string>());
    EXPECT_EQ(static_cast<int64_t>(store->CustomerHistory(*cid)->size()),
              c["events"].get<int64_t>());
  }
  ExpectHistoryMatches(*store, x["samples"]["history"]);

  // Importing the same file again leaves the store unchanged.
  auto before = *store->ComputeStats();
  auto again = ImportPresetFiles(*store, ImportPreset::kOnlineRetail, {DataPath(GetParam())}, {});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0].events_written, 0);
  EXPECT_EQ((*again)[0].duplicate_events, x["events"].get<int64_t>());
  EXPECT_EQ((*again)[0].new_customers, 0);
  EXPECT_EQ((*again)[0].new_products, 0);
  auto after = *store->ComputeStats();
  EXPECT_EQ(after.events, before.events);
  EXPECT_EQ(after.customers, before.customers);
  EXPECT_EQ(after.products, before.products);
}

INSTANTIATE_TEST_SUITE_P(PlainAndGzip, OnlineRetailSlice,
                         ::testing::Values("online_retail_slice.csv",
                                           "online_retail_slice.csv.gz"));

TEST(CompleteJourneySlice, CountsMatchIndependentComputation) {
  const json& x = Expected()["completejourney_slice"];
  ScratchDir dir;
  auto store = std::move(Store::Open(dir.Sub("db"), {}).value());
  auto reports = ImportPresetFiles(*store, ImportPreset::kCompleteJourney,
                                   {DataPath("completejourney_products_slice.csv"),
                                    DataPath("completejourney_transactions_slice.csv")},
                                   {});
  ASSERT_TRUE(reports.ok()) << reports.status().ToString();
  ASSERT_EQ(reports->size(), 2u);
  EXPECT_EQ((*reports)[0].kind, "completejourney-products");
  EXPECT_EQ((*reports)[0].rows, x["rows"]["products"].get<int64_t>());
  EXPECT_EQ((*reports)[1].kind, "completejourney-transactions");
  EXPECT_EQ((*reports)[1].rows, x["rows"]["transactions"].get<int64_t>());
  EXPECT_EQ((*reports)[0].rejected + (*reports)[1].rejected, x["rejected"].get<int64_t>());
  EXPECT_EQ((*reports)[1].dropped, (x["dropped"].get<std::map<std::string, int64_t>>()));
  ExpectStoreMatches(*store, x);

  for (const auto& [code, p] : x["samples"]["products"].items()) {
    SCOPED_TRACE(code);
    auto attrs = store->GetProduct(*store->FindProduct(code));
    ASSERT_TRUE(attrs.ok());
    if (p["title"].is_null()) {
      EXPECT_FALSE(attrs->title.has_value());
    } else {
      EXPECT_EQ(*attrs->title, p["title"].get<std::string>());
    }
    if (p["brand"].is_null()) {
      EXPECT_FALSE(attrs->brand.has_value());
    } else {
      EXPECT_EQ(*attrs->brand, p["brand"].get<std::string>());
    }
    EXPECT_EQ(attrs->category.value_or(std::vector<std::string>{}),
              p["category"].get<std::vector<std::string>>());
    if (p["created_at"].is_null()) {
      EXPECT_FALSE(attrs->created_at.has_value());
    } else {
      EXPECT_EQ(FormatTimestamp(*attrs->created_at), p["created_at"].get<std::string>());
    }
  }
  for (const auto& [id, c] : x["samples"]["customers"].items()) {
    SCOPED_TRACE(id);
    auto cid = store->FindCustomer(id);
    ASSERT_TRUE(cid.ok());
    EXPECT_EQ(FormatTimestamp(*store->GetCustomer(*cid)->created_at),
              c["created_at"].get<std::string>());
    EXPECT_EQ(static_cast<int64_t>(store->CustomerHistory(*cid)->size()),
              c["events"].get<int64_t>());
  }
  ExpectHistoryMatches(*store, x["samples"]["history"]);

  // Files in the other order give the same store.
  ScratchDir dir2;
  auto store2 = std::move(Store::Open(dir2.Sub("db"), {}).value());
  ASSERT_TRUE(ImportPresetFiles(*store2, ImportPreset::kCompleteJourney,
                                {DataPath("completejourney_transactions_slice.csv"),
                                 DataPath("completejourney_products_slice.csv")},
                                {})
                  .ok());
  ExpectStoreMatches(*store2, x);
}

// A category level is one name: the '/' inside one ("FRZN VEGETABLE/VEG DSH") is written '-',
// so that the stored path splits back into the same three levels. Control characters in a level,
// brand or tag reject the row (it had checked the title only).
TEST(CompleteJourneySlice, CategoryLevelsAreNames) {
  ScratchDir dir;
  auto store = std::move(Store::Open(dir.Sub("db"), {}).value());
  const std::string file = dir.Write(
      "products.csv",
      "\"product_id\",\"manufacturer_id\",\"department\",\"brand\",\"product_category\","
      "\"product_type\",\"package_size\"\n"
      "\"1\",\"2\",\"GROCERY\",\"National\",\"FRZN VEGETABLE/VEG DSH\",\"BEANS\",\"16 OZ\"\n"
      "\"2\",\"2\",\"GROCERY\",\"National\",\"FRZN\x01ICE\",\"ICE\",\"NA\"\n"
      "\"3\",\"2\x02\",\"GROCERY\",\"National\",\"FRZN ICE\",\"ICE\",\"NA\"\n");
  auto reports = ImportPresetFiles(*store, ImportPreset::kCompleteJourney, {file}, {});
  ASSERT_TRUE(reports.ok()) << reports.status().ToString();
  ASSERT_EQ(reports->size(), 1u);
  EXPECT_EQ((*reports)[0].accepted, 1);
  EXPECT_EQ((*reports)[0].rejected, 2);
  auto id = store->FindProduct("1");
  ASSERT_TRUE(id.ok());
  auto attrs = store->GetProduct(*id);
  ASSERT_TRUE(attrs.ok());
  const std::vector<std::string> levels{"GROCERY", "FRZN VEGETABLE-VEG DSH", "BEANS"};
  EXPECT_EQ(attrs->category.value_or(std::vector<std::string>{}), levels);
  EXPECT_EQ(SplitCategory(JoinCategory(levels)), levels);
  EXPECT_FALSE(store->FindProduct("2").ok());
  EXPECT_FALSE(store->FindProduct("3").ok());
}

TEST(CompleteJourneySlice, RejectsAFileOfAnotherShop) {
  ScratchDir dir;
  auto store = std::move(Store::Open(dir.Sub("db"), {}).value());
  auto r = ImportPresetFiles(*store, ImportPreset::kCompleteJourney,
                             {DataPath("online_retail_slice.csv")}, {});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  auto r2 = ImportPresetFiles(*store, ImportPreset::kOnlineRetail,
                              {DataPath("completejourney_products_slice.csv")}, {});
  EXPECT_EQ(r2.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->ComputeStats()->events, 0);
}

}  // namespace
}  // namespace affinity
