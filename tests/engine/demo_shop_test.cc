#include "affinity/demo_shop.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace affinity {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kDay = 86400;

// A fresh directory under the system temp dir, removed with its contents on destruction.
class ScopedTempDir {
 public:
  ScopedTempDir() {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("affinity_demo_shop_" + std::string(info ? info->name() : "test") + "_" +
             std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + "_" +
             std::to_string(counter++));
    fs::remove_all(path_);
  }
  ~ScopedTempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const fs::path& path() const { return path_; }
  std::string Sub(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

struct Csv {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

// Reads a CSV written by the generator: no quoting is expected (text fields are promised to hold
// no commas, quotes or newlines), so a quote anywhere or a ragged row fails the test.
Csv ReadCsv(const fs::path& path) {
  Csv csv;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::string line;
  bool first = true;
  while (std::getline(in, line)) {
    EXPECT_EQ(line.find('"'), std::string::npos) << path << ": " << line;
    EXPECT_EQ(line.find('\r'), std::string::npos) << path << ": " << line;
    std::vector<std::string> fields;
    size_t begin = 0;
    while (true) {
      const size_t comma = line.find(',', begin);
      fields.push_back(line.substr(begin, comma - begin));
      if (comma == std::string::npos) break;
      begin = comma + 1;
    }
    if (first) {
      csv.header = std::move(fields);
      first = false;
    } else {
      EXPECT_EQ(fields.size(), csv.header.size()) << path << ": " << line;
      csv.rows.push_back(std::move(fields));
    }
  }
  return csv;
}

int64_t DaysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

// True if `text` has the length of `shape` and matches it character by character, where '#'
// stands for any digit. (std::regex is avoided: GCC 12 warns inside <regex> under sanitizers.)
bool HasShape(std::string_view text, std::string_view shape) {
  if (text.size() != shape.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    if (shape[i] == '#' ? !std::isdigit(static_cast<unsigned char>(text[i]))
                        : text[i] != shape[i]) {
      return false;
    }
  }
  return true;
}

// True if `text` is non-empty and every character is a letter, digit or one of `extra`.
bool IsWordish(std::string_view text, std::string_view extra) {
  if (text.empty()) return false;
  return std::all_of(text.begin(), text.end(), [extra](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || extra.find(c) != std::string_view::npos;
  });
}

bool AllLower(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c));
  });
}

bool AllDigits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c));
  });
}

std::vector<std::string> Split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  size_t begin = 0;
  while (true) {
    const size_t end = text.find(separator, begin);
    parts.push_back(text.substr(begin, end - begin));
    if (end == std::string::npos) return parts;
    begin = end + 1;
  }
}

// "2025-03-04T10:22:00Z" -> Unix seconds; fails the test on anything else.
int64_t ParseTime(const std::string& text) {
  if (!HasShape(text, "####-##-##T##:##:##Z")) {
    ADD_FAILURE() << "bad time: " << text;
    return 0;
  }
  const int month = std::stoi(text.substr(5, 2));
  const int day = std::stoi(text.substr(8, 2));
  const int hour = std::stoi(text.substr(11, 2));
  const int minute = std::stoi(text.substr(14, 2));
  const int second = std::stoi(text.substr(17, 2));
  EXPECT_TRUE(month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour < 24 && minute < 60 &&
              second < 60)
      << text;
  return DaysFromCivil(std::stoll(text.substr(0, 4)), month, day) * kDay + hour * 3600 +
         minute * 60 + second;
}

// "12.99" -> 1299; fails the test unless the text has exactly two decimals.
int64_t ParseCents(const std::string& text) {
  const std::vector<std::string> parts = Split(text, '.');
  if (parts.size() != 2 || !AllDigits(parts[0]) || !HasShape(parts[1], "##")) {
    ADD_FAILURE() << "bad money: " << text;
    return 0;
  }
  return std::stoll(parts[0]) * 100 + std::stoll(parts[1]);
}

// A small shop that still has ~16 products per leaf category: with fewer, active customers own
// everything in their favourite leaves and must re-buy, which blurs the repeat statistics.
DemoShopOptions SmallOptions() {
  DemoShopOptions options;
  options.customers = 500;
  options.products = 1000;
  options.seed = 7;
  return options;
}

// The four files of one generated shop, parsed.
struct Shop {
  DemoShopSummary summary;
  Csv customers;
  Csv products;
  Csv purchases;
  Csv tastes;
};

Shop Generate(const DemoShopOptions& options, const ScopedTempDir& tmp) {
  Shop shop;
  Result<DemoShopSummary> result = WriteDemoShop(options, tmp.path().string());
  EXPECT_TRUE(result.ok()) << result.status().ToString();
  if (!result.ok()) return shop;
  shop.summary = *result;
  shop.customers = ReadCsv(tmp.path() / "customers.csv");
  shop.products = ReadCsv(tmp.path() / "products.csv");
  shop.purchases = ReadCsv(tmp.path() / "purchases.csv");
  shop.tastes = ReadCsv(tmp.path() / "tastes.csv");
  return shop;
}

// Column indices, fixed by the format.
enum { kCustId = 0, kCustEmail, kCustName, kCustCountry, kCustCreated };
enum { kProdId = 0, kProdTitle, kProdCategory, kProdBrand, kProdPrice, kProdCreated };
enum { kPurOrder = 0, kPurLine, kPurCustomer, kPurProduct, kPurQty, kPurPrice, kPurTime, kPurChan };
enum { kTasteCustomer = 0, kTasteCategory, kTasteWeight };

// For each purchase row: whether the same customer bought that product in an earlier order.
std::vector<bool> RebuyFlags(const Csv& purchases) {
  std::set<std::pair<std::string, std::string>> bought;  // (customer, product) before this order
  std::vector<std::pair<std::string, std::string>> pending;
  std::string current_order;
  std::vector<bool> flags;
  for (const auto& row : purchases.rows) {
    if (row[kPurOrder] != current_order) {
      bought.insert(pending.begin(), pending.end());
      pending.clear();
      current_order = row[kPurOrder];
    }
    flags.push_back(bought.count({row[kPurCustomer], row[kPurProduct]}) > 0);
    pending.emplace_back(row[kPurCustomer], row[kPurProduct]);
  }
  return flags;
}

std::string Department(const std::string& category) {
  return category.substr(0, category.find('/'));
}

TEST(DemoShop, WritesExactHeadersAndCountsMatchingSummary) {
  ScopedTempDir tmp;
  const Shop shop = Generate(SmallOptions(), tmp);

  EXPECT_EQ(shop.customers.header,
            (std::vector<std::string>{"customer_id", "email", "name", "country", "created_at"}));
  EXPECT_EQ(shop.products.header, (std::vector<std::string>{"product_id", "title", "category",
                                                            "brand", "price", "created_at"}));
  EXPECT_EQ(shop.purchases.header,
            (std::vector<std::string>{"order_id", "line", "customer_id", "product_id", "quantity",
                                      "unit_price", "time", "channel"}));
  EXPECT_EQ(shop.tastes.header, (std::vector<std::string>{"customer_id", "category", "weight"}));

  EXPECT_EQ(shop.summary.customers, 500);
  EXPECT_EQ(shop.summary.products, 1000);
  EXPECT_EQ(static_cast<int>(shop.customers.rows.size()), shop.summary.customers);
  EXPECT_EQ(static_cast<int>(shop.products.rows.size()), shop.summary.products);
  EXPECT_EQ(static_cast<int>(shop.purchases.rows.size()), shop.summary.purchase_lines);
  std::set<std::string> orders;
  for (const auto& row : shop.purchases.rows) orders.insert(row[kPurOrder]);
  EXPECT_EQ(static_cast<int>(orders.size()), shop.summary.orders);

  // About 6 orders per customer over the year, fewer for late signups and churners.
  EXPECT_GT(shop.summary.orders, 500 * 3);
  EXPECT_LT(shop.summary.orders, 500 * 7);
  EXPECT_GT(shop.summary.purchase_lines, shop.summary.orders);
  EXPECT_LT(shop.summary.purchase_lines, 3 * shop.summary.orders);

  // The products cover every leaf category of the tree (~6 departments x 3-4 x 2-3).
  std::set<std::string> categories;
  for (const auto& row : shop.products.rows) categories.insert(row[kProdCategory]);
  EXPECT_EQ(static_cast<int>(categories.size()), shop.summary.categories);
  EXPECT_GE(shop.summary.categories, 40);
  EXPECT_LE(shop.summary.categories, 70);
}

TEST(DemoShop, FieldsAreWellFormed) {
  ScopedTempDir tmp;
  const DemoShopOptions options = SmallOptions();
  const Shop shop = Generate(options, tmp);
  const int64_t start = options.start_time;
  const int64_t end = start + options.days * kDay;

  const std::set<std::string> countries = {"US", "GB", "DE", "FR", "CA",
                                           "NL", "ES", "IT", "AU", "SE"};
  std::set<std::string> seen_countries;
  int signed_up_in_period = 0;
  int64_t previous_signup = std::numeric_limits<int64_t>::min();
  for (size_t i = 0; i < shop.customers.rows.size(); ++i) {
    const auto& row = shop.customers.rows[i];
    EXPECT_TRUE(HasShape(row[kCustId], "C#####")) << row[kCustId];
    EXPECT_EQ(std::stoi(row[kCustId].substr(1)), static_cast<int>(i + 1));
    // firstname.lastname.N@example.com with N the customer number.
    const std::vector<std::string> email = Split(row[kCustEmail], '@');
    ASSERT_EQ(email.size(), 2u) << row[kCustEmail];
    EXPECT_EQ(email[1], "example.com");
    const std::vector<std::string> local = Split(email[0], '.');
    ASSERT_EQ(local.size(), 3u) << row[kCustEmail];
    EXPECT_TRUE(AllLower(local[0]) && AllLower(local[1]) && AllDigits(local[2])) << row[kCustEmail];
    EXPECT_EQ(local[2], std::to_string(i + 1)) << row[kCustEmail];
    // "First Last": letters and single spaces, capitalised.
    const std::string& name = row[kCustName];
    EXPECT_TRUE(IsWordish(name, " ") && std::isupper(static_cast<unsigned char>(name.front())) &&
                name.find(' ') != std::string::npos && name.find("  ") == std::string::npos &&
                name.back() != ' ')
        << name;
    std::string first_lower = row[kCustName].substr(0, row[kCustName].find(' '));
    std::transform(first_lower.begin(), first_lower.end(), first_lower.begin(), ::tolower);
    EXPECT_EQ(row[kCustEmail].rfind(first_lower + ".", 0), 0u) << row[kCustEmail];
    EXPECT_TRUE(countries.count(row[kCustCountry])) << row[kCustCountry];
    seen_countries.insert(row[kCustCountry]);
    const int64_t created = ParseTime(row[kCustCreated]);
    EXPECT_LT(created, end);
    EXPECT_GE(created, previous_signup) << "customer ids follow signup order";
    previous_signup = created;
    signed_up_in_period += created >= start;
  }
  EXPECT_GE(seen_countries.size(), 5u);
  // About 20% of customers sign up during the period.
  EXPECT_GT(signed_up_in_period, 500 * 10 / 100);
  EXPECT_LT(signed_up_in_period, 500 * 30 / 100);

  std::set<std::string> titles;
  int launched_in_period = 0;
  for (const auto& row : shop.products.rows) {
    EXPECT_TRUE(HasShape(row[kProdId], "P####")) << row[kProdId];
    EXPECT_TRUE(IsWordish(row[kProdTitle], " .&-")) << row[kProdTitle];
    EXPECT_GE(std::count(row[kProdTitle].begin(), row[kProdTitle].end(), ' '), 2)
        << "adjective + material + noun: " << row[kProdTitle];
    titles.insert(row[kProdTitle]);
    const std::vector<std::string> path = Split(row[kProdCategory], '/');
    EXPECT_EQ(path.size(), 3u) << row[kProdCategory];
    for (const std::string& part : path) {
      EXPECT_TRUE(IsWordish(part, " -") && part.front() != ' ' && part.back() != ' ')
          << row[kProdCategory];
    }
    EXPECT_FALSE(row[kProdBrand].empty());
    const int64_t price = ParseCents(row[kProdPrice]);
    EXPECT_GE(price, 99);
    EXPECT_LT(price, 200000);
    const int64_t created = ParseTime(row[kProdCreated]);
    EXPECT_LT(created, end);
    launched_in_period += created >= start;
  }
  EXPECT_EQ(titles.size(), shop.products.rows.size()) << "titles are unique";
  EXPECT_EQ(launched_in_period, static_cast<int>(1000 * options.new_product_share));
}

TEST(DemoShop, PurchasesReferenceExistingRowsInsideThePeriod) {
  ScopedTempDir tmp;
  const DemoShopOptions options = SmallOptions();
  const Shop shop = Generate(options, tmp);
  const int64_t start = options.start_time;
  const int64_t end = start + options.days * kDay;

  std::unordered_map<std::string, int64_t> customer_created;
  for (const auto& row : shop.customers.rows) {
    customer_created[row[kCustId]] = ParseTime(row[kCustCreated]);
  }
  std::unordered_map<std::string, std::pair<int64_t, int64_t>> product_created_price;
  for (const auto& row : shop.products.rows) {
    product_created_price[row[kProdId]] = {ParseTime(row[kProdCreated]),
                                           ParseCents(row[kProdPrice])};
  }

  const std::set<std::string> channels = {"web", "app", "store"};
  std::map<std::string, int> channel_count;
  std::string current_order;
  std::string current_customer;
  std::string current_time;
  std::set<std::string> products_in_order;
  int expected_line = 0;
  int64_t previous_time = 0;
  int previous_order_number = 0;
  int discounted = 0;
  int multi_quantity = 0;
  for (const auto& row : shop.purchases.rows) {
    ASSERT_TRUE(customer_created.count(row[kPurCustomer])) << row[kPurCustomer];
    ASSERT_TRUE(product_created_price.count(row[kPurProduct])) << row[kPurProduct];
    const int64_t t = ParseTime(row[kPurTime]);
    EXPECT_GE(t, start);
    EXPECT_LT(t, end);
    EXPECT_GE(t, customer_created[row[kPurCustomer]]) << "bought before signing up";
    const auto [product_created, price] = product_created_price[row[kPurProduct]];
    EXPECT_GE(t, product_created) << "bought before launch: " << row[kPurProduct];

    if (row[kPurOrder] != current_order) {
      EXPECT_TRUE(HasShape(row[kPurOrder], "O######")) << row[kPurOrder];
      const int number = std::stoi(row[kPurOrder].substr(1));
      EXPECT_EQ(number, previous_order_number + 1) << "order ids are dense and increasing";
      previous_order_number = number;
      EXPECT_GE(t, previous_time) << "order ids follow time";
      previous_time = t;
      current_order = row[kPurOrder];
      current_customer = row[kPurCustomer];
      current_time = row[kPurTime];
      products_in_order.clear();
      expected_line = 1;
      EXPECT_TRUE(channels.count(row[kPurChan])) << row[kPurChan];
      ++channel_count[row[kPurChan]];
    } else {
      EXPECT_EQ(row[kPurCustomer], current_customer) << "one customer per order";
      EXPECT_EQ(row[kPurTime], current_time) << "one time per order";
      ++expected_line;
    }
    EXPECT_EQ(row[kPurLine], std::to_string(expected_line));
    EXPECT_LE(expected_line, 5);
    EXPECT_TRUE(products_in_order.insert(row[kPurProduct]).second)
        << "product twice in " << current_order;

    const int quantity = std::stoi(row[kPurQty]);
    EXPECT_GE(quantity, 1);
    EXPECT_LE(quantity, 6);
    multi_quantity += quantity > 1;
    const int64_t unit = ParseCents(row[kPurPrice]);
    EXPECT_LE(unit, price);
    EXPECT_GE(unit, price * 70 / 100) << "discounts are at most 30%";
    discounted += unit < price;
  }
  const int lines = static_cast<int>(shop.purchases.rows.size());
  EXPECT_EQ(channel_count.size(), 3u);
  EXPECT_GT(channel_count["web"], channel_count["store"]);
  // Quantity is mostly 1; a minority of lines is discounted.
  EXPECT_GT(multi_quantity, lines / 20);
  EXPECT_LT(multi_quantity, lines / 3);
  EXPECT_GT(discounted, lines / 50);
  EXPECT_LT(discounted, lines / 4);
}

TEST(DemoShop, TastesAreWeightsOverTwoToFourLeavesSummingToOne) {
  ScopedTempDir tmp;
  const Shop shop = Generate(SmallOptions(), tmp);

  std::set<std::string> leaves;
  for (const auto& row : shop.products.rows) leaves.insert(row[kProdCategory]);
  std::set<std::string> customers;
  for (const auto& row : shop.customers.rows) customers.insert(row[kCustId]);

  std::map<std::string, std::vector<std::pair<std::string, int>>> tastes;  // units of 1e-4
  for (const auto& row : shop.tastes.rows) {
    EXPECT_TRUE(customers.count(row[kTasteCustomer])) << row[kTasteCustomer];
    EXPECT_TRUE(leaves.count(row[kTasteCategory])) << row[kTasteCategory];
    ASSERT_TRUE(HasShape(row[kTasteWeight], "#.####")) << row[kTasteWeight];
    const int units =
        std::stoi(row[kTasteWeight].substr(0, 1)) * 10000 + std::stoi(row[kTasteWeight].substr(2));
    EXPECT_GT(units, 0);
    tastes[row[kTasteCustomer]].emplace_back(row[kTasteCategory], units);
  }
  EXPECT_EQ(tastes.size(), customers.size()) << "every customer has planted tastes";
  int two_departments = 0;
  for (const auto& [customer, entries] : tastes) {
    EXPECT_GE(entries.size(), 2u) << customer;
    EXPECT_LE(entries.size(), 4u) << customer;
    int total = 0;
    std::set<std::string> distinct;
    std::set<std::string> departments;
    for (const auto& [leaf, units] : entries) {
      total += units;
      distinct.insert(leaf);
      departments.insert(Department(leaf));
    }
    EXPECT_EQ(total, 10000) << customer << " weights must sum to exactly 1";
    EXPECT_EQ(distinct.size(), entries.size()) << customer;
    EXPECT_LE(departments.size(), 2u) << customer;
    two_departments += departments.size() == 2;
  }
  EXPECT_GT(two_departments, 0);
  EXPECT_LT(two_departments, static_cast<int>(tastes.size()) / 2);
}

TEST(DemoShop, PlantedTastesAreVisibleInPurchases) {
  ScopedTempDir tmp;
  const Shop shop = Generate(SmallOptions(), tmp);

  std::unordered_map<std::string, std::string> leaf_of;
  for (const auto& row : shop.products.rows) leaf_of[row[kProdId]] = row[kProdCategory];
  // tastes.csv lists each customer's leaves by decreasing weight.
  std::unordered_map<std::string, std::string> top_leaf;
  std::unordered_map<std::string, std::set<std::string>> taste_leaves;
  for (const auto& row : shop.tastes.rows) {
    top_leaf.emplace(row[kTasteCustomer], row[kTasteCategory]);
    taste_leaves[row[kTasteCustomer]].insert(row[kTasteCategory]);
  }

  const std::vector<bool> rebuy = RebuyFlags(shop.purchases);
  std::unordered_map<std::string, int> lines;
  std::unordered_map<std::string, int> fresh;
  std::unordered_map<std::string, int> fresh_in_top;
  std::unordered_map<std::string, int> fresh_in_tastes;
  for (size_t i = 0; i < shop.purchases.rows.size(); ++i) {
    const auto& row = shop.purchases.rows[i];
    const std::string& customer = row[kPurCustomer];
    ++lines[customer];
    if (rebuy[i]) continue;
    const std::string& leaf = leaf_of[row[kPurProduct]];
    ++fresh[customer];
    fresh_in_top[customer] += leaf == top_leaf[customer];
    fresh_in_tastes[customer] += taste_leaves[customer].count(leaf) > 0;
  }
  double top_share_sum = 0.0;
  double taste_share_sum = 0.0;
  int active = 0;
  for (const auto& [customer, n] : lines) {
    if (n < 10 || fresh[customer] == 0) continue;
    top_share_sum += static_cast<double>(fresh_in_top[customer]) / fresh[customer];
    taste_share_sum += static_cast<double>(fresh_in_tastes[customer]) / fresh[customer];
    ++active;
  }
  ASSERT_GE(active, 30);
  const double top_share = top_share_sum / active;
  const double taste_share = taste_share_sum / active;
  const double uniform_share = 1.0 / shop.summary.categories;
  // The top leaf alone draws a large share of new purchases: many times a uniform leaf.
  EXPECT_GT(top_share, 0.35) << "uniform would be " << uniform_share;
  EXPECT_GT(top_share, 15 * uniform_share);
  // About 90% of non-repeat lines follow the tastes (10% go to a random leaf).
  EXPECT_GT(taste_share, 0.8);
}

TEST(DemoShop, PurchasesPeakInNovemberAndDecember) {
  ScopedTempDir tmp;
  const Shop shop = Generate(SmallOptions(), tmp);  // the default period is calendar 2025

  int feb_mar = 0;
  int jun_aug = 0;
  int sep_oct = 0;
  int nov_dec = 0;
  for (const auto& row : shop.purchases.rows) {
    const int month = std::stoi(row[kPurTime].substr(5, 2));
    feb_mar += month == 2 || month == 3;
    jun_aug += month >= 6 && month <= 8;
    sep_oct += month == 9 || month == 10;
    nov_dec += month >= 11;
  }
  const double feb_mar_daily = feb_mar / 59.0;
  const double jun_aug_daily = jun_aug / 92.0;
  const double sep_oct_daily = sep_oct / 61.0;
  const double nov_dec_daily = nov_dec / 61.0;
  EXPECT_GT(nov_dec_daily, 1.5 * feb_mar_daily);
  EXPECT_GT(nov_dec_daily, 1.4 * sep_oct_daily);
  // A smaller summer bump (partly offset by churn over the year).
  EXPECT_GT(jun_aug_daily, feb_mar_daily);
  EXPECT_LT(jun_aug_daily, nov_dec_daily);
}

TEST(DemoShop, RepeatBuyingFollowsRepeatProbability) {
  auto rebuy_share = [](double probability) {
    ScopedTempDir tmp;
    DemoShopOptions options = SmallOptions();
    options.repeat_probability = probability;
    const Shop shop = Generate(options, tmp);
    const std::vector<bool> flags = RebuyFlags(shop.purchases);
    return static_cast<double>(std::count(flags.begin(), flags.end(), true)) /
           std::max<size_t>(flags.size(), 1);
  };
  const double none = rebuy_share(0.0);
  const double configured = rebuy_share(0.25);
  const double high = rebuy_share(0.6);
  // With no explicit repeats, re-buys only happen by chance (same tastes, popular products).
  EXPECT_LT(none, 0.12);
  // Repeat lines need an earlier order, so the share lands near, a bit below, the probability,
  // plus the chance re-buys.
  EXPECT_GT(configured, 0.15);
  EXPECT_LT(configured, 0.35);
  EXPECT_GT(configured, none + 0.10);
  EXPECT_GT(high, configured + 0.15);
}

TEST(DemoShop, NewProductsSellAfterLaunch) {
  ScopedTempDir tmp;
  const DemoShopOptions options = SmallOptions();
  const Shop shop = Generate(options, tmp);
  std::unordered_set<std::string> new_products;
  for (const auto& row : shop.products.rows) {
    if (ParseTime(row[kProdCreated]) >= options.start_time) new_products.insert(row[kProdId]);
  }
  ASSERT_FALSE(new_products.empty());
  std::unordered_set<std::string> sold;
  for (const auto& row : shop.purchases.rows) {
    if (new_products.count(row[kPurProduct])) sold.insert(row[kPurProduct]);
  }
  EXPECT_GT(sold.size(), new_products.size() / 3);
}

TEST(DemoShop, SameSeedGivesByteIdenticalFiles) {
  ScopedTempDir tmp;
  const DemoShopOptions options = SmallOptions();
  ASSERT_TRUE(WriteDemoShop(options, tmp.Sub("a")).ok());
  ASSERT_TRUE(WriteDemoShop(options, tmp.Sub("b")).ok());
  for (const char* file : {"customers.csv", "products.csv", "purchases.csv", "tastes.csv"}) {
    const std::string a = ReadFile(tmp.path() / "a" / file);
    EXPECT_FALSE(a.empty()) << file;
    EXPECT_EQ(a, ReadFile(tmp.path() / "b" / file)) << file;
  }
}

TEST(DemoShop, DifferentSeedGivesDifferentFiles) {
  ScopedTempDir tmp;
  DemoShopOptions options = SmallOptions();
  ASSERT_TRUE(WriteDemoShop(options, tmp.Sub("a")).ok());
  options.seed += 1;
  ASSERT_TRUE(WriteDemoShop(options, tmp.Sub("b")).ok());
  for (const char* file : {"customers.csv", "products.csv", "purchases.csv", "tastes.csv"}) {
    EXPECT_NE(ReadFile(tmp.path() / "a" / file), ReadFile(tmp.path() / "b" / file)) << file;
  }
}

TEST(DemoShop, OverwritesExistingFiles) {
  ScopedTempDir tmp;
  DemoShopOptions options = SmallOptions();
  const std::string dir = tmp.Sub("nested/out");  // parents are created too
  ASSERT_TRUE(WriteDemoShop(options, dir).ok());
  {
    std::ofstream junk(fs::path(dir) / "purchases.csv", std::ios::app);
    junk << "junk that must disappear\n";
  }
  options.seed = 99;
  ASSERT_TRUE(WriteDemoShop(options, dir).ok());
  ASSERT_TRUE(WriteDemoShop(options, tmp.Sub("fresh")).ok());
  for (const char* file : {"customers.csv", "products.csv", "purchases.csv", "tastes.csv"}) {
    EXPECT_EQ(ReadFile(fs::path(dir) / file), ReadFile(tmp.path() / "fresh" / file)) << file;
  }
}

TEST(DemoShop, ValidateAcceptsDefaultsAndRejectsOutOfRangeFields) {
  EXPECT_TRUE(DemoShopOptions().Validate().ok());

  struct Case {
    const char* field;
    void (*mutate)(DemoShopOptions&);
  };
  const Case cases[] = {
      {"customers", [](DemoShopOptions& o) { o.customers = 0; }},
      {"customers", [](DemoShopOptions& o) { o.customers = -5; }},
      {"products", [](DemoShopOptions& o) { o.products = 0; }},
      {"days", [](DemoShopOptions& o) { o.days = 0; }},
      {"days", [](DemoShopOptions& o) { o.days = -1; }},
      {"start_time", [](DemoShopOptions& o) { o.start_time = -1; }},
      {"orders_per_customer", [](DemoShopOptions& o) { o.orders_per_customer = -1.0; }},
      {"orders_per_customer",
       [](DemoShopOptions& o) {
         o.orders_per_customer = std::numeric_limits<double>::quiet_NaN();
       }},
      {"repeat_probability", [](DemoShopOptions& o) { o.repeat_probability = -0.01; }},
      {"repeat_probability", [](DemoShopOptions& o) { o.repeat_probability = 1.01; }},
      {"repeat_probability",
       [](DemoShopOptions& o) { o.repeat_probability = std::numeric_limits<double>::quiet_NaN(); }},
      {"new_product_share", [](DemoShopOptions& o) { o.new_product_share = 1.0; }},
      {"new_product_share", [](DemoShopOptions& o) { o.new_product_share = -0.1; }},
  };
  for (const Case& c : cases) {
    DemoShopOptions options;
    c.mutate(options);
    const Status status = options.Validate();
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << c.field;
    EXPECT_EQ(status.field(), c.field) << status.ToString();
    EXPECT_NE(status.message().find(c.field), std::string::npos) << status.ToString();
  }

  // The edges of the ranges are valid.
  DemoShopOptions edges;
  edges.customers = 1;
  edges.products = 1;
  edges.days = 1;
  edges.repeat_probability = 1.0;
  edges.new_product_share = 0.0;
  edges.orders_per_customer = 0.0;
  EXPECT_TRUE(edges.Validate().ok()) << edges.Validate().ToString();
}

TEST(DemoShop, InvalidOptionsFailBeforeTouchingTheFilesystem) {
  ScopedTempDir tmp;
  DemoShopOptions options = SmallOptions();
  options.days = 0;
  const Result<DemoShopSummary> result = WriteDemoShop(options, tmp.Sub("never"));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().field(), "days");
  EXPECT_FALSE(fs::exists(tmp.Sub("never")));
}

TEST(DemoShop, TinyShopsStillWork) {
  ScopedTempDir tmp;
  DemoShopOptions options;
  options.customers = 3;
  options.products = 1;
  options.days = 1;
  options.orders_per_customer = 50;
  options.repeat_probability = 1.0;
  const Shop shop = Generate(options, tmp);
  EXPECT_EQ(shop.customers.rows.size(), 3u);
  EXPECT_EQ(shop.products.rows.size(), 1u);
  for (const auto& row : shop.purchases.rows) {
    EXPECT_EQ(row[kPurProduct], "P0001");
    EXPECT_EQ(row[kPurLine], "1") << "a one-product shop has one-line orders";
  }
}

TEST(DemoShop, UnwritableDirGivesIOErrorNamingThePath) {
  ScopedTempDir tmp;
  fs::create_directories(tmp.path());
  const fs::path blocker = tmp.path() / "not_a_dir";
  std::ofstream(blocker) << "a regular file";
  // A directory cannot be created under a regular file, even by root.
  const std::string dir = (blocker / "shop").string();
  const Result<DemoShopSummary> result = WriteDemoShop(SmallOptions(), dir);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kIOError);
  EXPECT_NE(result.status().message().find(dir), std::string::npos) << result.status().ToString();

  // The directory path itself being a regular file fails the same way.
  const Result<DemoShopSummary> on_file = WriteDemoShop(SmallOptions(), blocker.string());
  ASSERT_FALSE(on_file.ok());
  EXPECT_EQ(on_file.status().code(), StatusCode::kIOError);
  EXPECT_NE(on_file.status().message().find(blocker.string()), std::string::npos);
}

}  // namespace
}  // namespace affinity
