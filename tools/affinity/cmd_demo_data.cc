#include <cstdio>
#include <memory>

#include "affinity/demo_shop.h"
#include "commands.h"

namespace affinity::cli {
namespace {

struct DemoFlags {
  std::string out;
  DemoShopOptions options;
};

int Run(const DemoFlags& f) {
  auto summary = WriteDemoShop(f.options, f.out);
  if (!summary.ok()) return Fail(summary.status());
  std::printf(
      "demo shop written to %s: %d customers, %d products in %d categories, %d orders, "
      "%d purchase lines\n",
      f.out.c_str(), summary->customers, summary->products, summary->categories, summary->orders,
      summary->purchase_lines);
  std::printf("files: customers.csv products.csv purchases.csv tastes.csv (planted tastes)\n");
  return 0;
}

}  // namespace

Command RegisterDemoData(CLI::App& app) {
  auto flags = std::make_shared<DemoFlags>();
  CLI::App* sub = app.add_subcommand(
      "demo-data",
      "Generate a synthetic shop (customers with planted tastes over a category tree, products, "
      "a year of purchases with seasonality and repeat buying) as CSV files to import.");
  sub->add_option("--out", flags->out, "Output directory")->required();
  DemoShopOptions& o = flags->options;
  sub->add_option("--customers", o.customers, "Number of customers")->capture_default_str();
  sub->add_option("--products", o.products, "Number of products")->capture_default_str();
  sub->add_option("--days", o.days, "Length of the period in days")->capture_default_str();
  sub->add_option("--start", o.start_time, "Start of the period (Unix seconds)")
      ->capture_default_str();
  sub->add_option("--orders-per-customer", o.orders_per_customer, "Mean orders per customer")
      ->capture_default_str();
  sub->add_option("--seed", o.seed, "Random seed (same seed, same files)")->capture_default_str();
  return [flags] { return Run(*flags); };
}

}  // namespace affinity::cli
