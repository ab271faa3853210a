#include "purchase_lists.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <vector>

namespace affinity {
namespace {

std::vector<uint32_t> ProductsOf(const PurchaseLists& lists, uint32_t customer) {
  auto span = lists.Products(customer);
  return {span.begin(), span.end()};
}

std::vector<UnixSeconds> TimesOf(const PurchaseLists& lists, uint32_t customer) {
  auto span = lists.Times(customer);
  return {span.begin(), span.end()};
}

TEST(PurchaseLists, AddKeepsProductsDistinctAndBothListsAscending) {
  PurchaseLists lists;
  EXPECT_EQ(lists.size(), 0u);
  EXPECT_TRUE(lists.Products(7).empty()) << "an id past the end reads as no purchases";
  lists.Add(3, 40, 1'000);
  lists.Add(3, 10, 3'000);
  lists.Add(3, 40, 2'000);  // bought again: one product, two times
  lists.Add(3, 25, 500);
  EXPECT_EQ(lists.size(), 4u);
  EXPECT_EQ(ProductsOf(lists, 3), (std::vector<uint32_t>{10, 25, 40}));
  EXPECT_EQ(TimesOf(lists, 3), (std::vector<UnixSeconds>{500, 1'000, 2'000, 3'000}));
  EXPECT_TRUE(lists.Products(0).empty());
  EXPECT_EQ(lists.Record(0), nullptr);
  EXPECT_NE(lists.Record(3), nullptr);
  lists.Clear(3);
  EXPECT_TRUE(lists.Products(3).empty());
  EXPECT_TRUE(lists.Times(3).empty());
  EXPECT_EQ(lists.size(), 4u) << "a cleared id stays valid";
  lists.Clear(99);  // past the end: nothing to do
  EXPECT_EQ(lists.size(), 4u);
}

TEST(PurchaseLists, SetReplacesAndEmptyFrees) {
  PurchaseLists lists;
  lists.Resize(2);
  const std::vector<uint32_t> products = {1, 2, 3};  // an odd count: the times are padded to 8
  const std::vector<UnixSeconds> times = {-5, 7, 7, 1LL << 40};
  lists.Set(1, products, times);
  EXPECT_EQ(ProductsOf(lists, 1), products);
  EXPECT_EQ(TimesOf(lists, 1), times);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(lists.Times(1).data()) % alignof(UnixSeconds), 0u);
  lists.Set(5, products, {});  // grows
  EXPECT_EQ(lists.size(), 6u);
  EXPECT_EQ(ProductsOf(lists, 5), products);
  EXPECT_TRUE(lists.Times(5).empty());
  lists.Set(1, {}, {});
  EXPECT_EQ(lists.Record(1), nullptr);
  lists.Resize(3);
  EXPECT_EQ(lists.size(), 3u);
  EXPECT_TRUE(lists.Products(5).empty());
}

// Random purchases against a plain model: a set of products and a sorted list of times each.
TEST(PurchaseLists, MatchesAPlainModelOverRandomPurchases) {
  std::mt19937 rng(11);
  PurchaseLists lists;
  std::map<uint32_t, std::set<uint32_t>> products;
  std::map<uint32_t, std::vector<UnixSeconds>> times;
  for (int i = 0; i < 20'000; ++i) {
    const uint32_t customer = rng() % 200;
    if (rng() % 50 == 0) {
      lists.Clear(customer);
      products.erase(customer);
      times.erase(customer);
      continue;
    }
    const uint32_t product = rng() % 300;
    const UnixSeconds time = static_cast<UnixSeconds>(rng() % 100'000);
    lists.Add(customer, product, time);
    products[customer].insert(product);
    auto& t = times[customer];
    t.insert(std::upper_bound(t.begin(), t.end(), time), time);
  }
  for (uint32_t customer = 0; customer < 200; ++customer) {
    const auto& want = products[customer];
    EXPECT_EQ(ProductsOf(lists, customer), std::vector<uint32_t>(want.begin(), want.end()))
        << customer;
    EXPECT_EQ(TimesOf(lists, customer), times[customer]) << customer;
  }
}

}  // namespace
}  // namespace affinity
