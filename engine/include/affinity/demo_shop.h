// Synthetic shop for demos and tests: customers with planted tastes over a category tree,
// products with title/brand/price, and a year of purchases with seasonality and repeat buying.
//
// The generator is deterministic: the same options give byte-identical files whichever compiler
// or optimisation level builds it (the random distributions are implemented on
// std::mt19937_64's raw output, not taken from <random>, and every draw is its own statement;
// checked with GCC 12 -O1 / -O3 -march=native and Clang 14 on x86-64 glibc). Only a libm whose
// exp/log/cos/sin/pow differ in the last bit could, rarely, change a draw.
//
// Thread safety: WriteDemoShop keeps no global state; concurrent calls are safe as long as they
// write to different directories.
//
// File formats: UTF-8, comma-separated, '\n' line ends, one header row. Text fields never
// contain commas, quotes or newlines (they would be quoted per RFC 4180 if they did). Times are
// ISO 8601 UTC ("2025-03-04T10:22:00Z"), money has exactly 2 decimals, categories are 3-level
// leaf paths ("Home/Kitchen/Mugs"), ids are zero-padded to one width per file (at least
// C00001, P0001, O000001) and increase with created_at (customers, products) or time (orders).
//
//   customers.csv  customer_id,email,name,country,created_at
//     C00001,olivia.smith.1@example.com,Olivia Smith,US,2023-05-17T08:12:44Z
//   products.csv   product_id,title,category,brand,price,created_at
//     P0001,Speckled Stoneware Mug,Home/Kitchen/Mugs,Hearthly,14.99,2024-02-01T09:13:16Z
//   purchases.csv  order_id,line,customer_id,product_id,quantity,unit_price,time,channel
//     O000001,1,C00042,P0007,1,14.99,2025-01-01T00:03:10Z,web
//     Lines are numbered 1..n (n <= 5) within an order; an order has one customer, one time
//     and one channel (web, app or store) and never holds the same product twice. unit_price is
//     the product's price, or 10-30% below it on discounted lines.
//   tastes.csv     customer_id,category,weight
//     C00001,Home/Kitchen/Mugs,0.6200
//     The planted truth: each customer's taste weights over 2-4 leaf categories of 1-2
//     departments, by decreasing weight (4 decimals, summing to exactly 1 per customer).
//     Non-repeat purchases follow these weights, modulated by each leaf's own season, except
//     10% that go to a uniformly random leaf.
#pragma once

#include <cstdint>
#include <string>

#include "affinity/status.h"

namespace affinity {

// Size and behaviour of the generated shop. Plain value; Validate() before use (WriteDemoShop
// does it for you).
struct DemoShopOptions {
  // Number of customers, in [1, 10'000'000]. Default 5000. Run time and file sizes grow linearly.
  int customers = 5000;
  // Number of products, in [1, 1'000'000], spread over the 62 leaf categories. Default 1500
  // (about 24 per leaf). Below ~15 per leaf, active customers run out of unbought products in
  // their favourite leaves and re-buy more often than repeat_probability alone would give.
  int products = 1500;
  // First second of the purchase period, Unix seconds UTC, in [0, 4102444800) (before 2100).
  // Default 1735689600 = 2025-01-01T00:00:00Z. Seasonality follows the calendar, so a period
  // that starts mid-year simply sees the Nov-Dec peak earlier in the file.
  int64_t start_time = 1735689600;
  // Length of the purchase period in days, in [1, 3660]. Default 365. Purchases fall in
  // [start_time, start_time + days * 86400).
  int days = 365;
  // Expected orders over the whole period of a customer active for all of it, averaged over
  // customers; in [0, 1000], and customers * orders_per_customer <= 1e8. Default 6. Individual
  // activity is gamma-distributed (shape 1.5), so many customers order once or never and a few
  // order a lot; customers who sign up during the period or churn place proportionally fewer
  // orders. Each order holds 1-5 lines.
  double orders_per_customer = 6.0;
  // Chance, in [0, 1], that a basket line re-buys a product the customer bought in an earlier
  // order (when there is one). Default 0.25. Other lines go to products the customer has not
  // bought yet (while their tastes offer some), so the share of re-buy lines tracks this value,
  // a bit below it because first orders have nothing to repeat. Higher values make the data
  // easier for "buy it again" models and harder for discovery models.
  double repeat_probability = 0.25;
  // Share of products launched during the period (created_at inside it), in [0, 1). Default
  // 0.15. The rest launch in the three years before start_time. New products are only bought
  // after launch, which makes them the cold-start cases.
  double new_product_share = 0.15;
  // Seed of the random generator. Default 42. Same options (seed included) => same files.
  uint64_t seed = 42;

  // Returns OK, or InvalidArgument whose field() names the first out-of-range field
  // ("customers", "products", "start_time", "days", "orders_per_customer",
  // "repeat_probability", "new_product_share"). NaN is out of range.
  [[nodiscard]] Status Validate() const;
};

// Row counts of a generated shop.
struct DemoShopSummary {
  int customers = 0;       // rows in customers.csv
  int products = 0;        // rows in products.csv
  int orders = 0;          // distinct order_id values in purchases.csv
  int purchase_lines = 0;  // rows in purchases.csv
  int categories = 0;      // leaf categories in the built-in category tree (62)
};

// Generates the shop described by `options` and writes customers.csv, products.csv,
// purchases.csv and tastes.csv (formats above) into `dir`, creating the directory and its parents
// if missing and overwriting existing files of those names. Same options => byte-identical files.
// Fails with InvalidArgument (from options.Validate()) before touching the filesystem, or IOError
// naming the path that could not be created or written; after an IOError some files may be
// partially written.
[[nodiscard]] Result<DemoShopSummary> WriteDemoShop(const DemoShopOptions& options,
                                                    const std::string& dir);

}  // namespace affinity
