#include "affinity/import.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include "test_util.h"

namespace affinity {
namespace {

using testing::ScratchDir;

struct Fixture {
  ScratchDir dir;
  std::unique_ptr<Store> store;
  Fixture() { store = std::move(Store::Open(dir.Sub("db"), {}).value()); }

  Result<ImportReport> Import(const std::string& name, const std::string& content,
                              ImportOptions options = {}) {
    return ImportFile(*store, dir.Write(name, content), options);
  }
  int64_t Events() { return store->ComputeStats()->events; }
};

ImportOptions Purchases(std::map<std::string, std::string> columns = {}) {
  ImportOptions o;
  o.kind = ImportKind::kPurchases;
  o.columns = std::move(columns);
  return o;
}

TEST(Import, PurchasesWithColumnMapping) {
  Fixture f;
  auto r =
      f.Import("ratings.csv",
               "userId,movieId,rating,timestamp\n"
               "1,31,2.5,1260759144\n"
               "1,1029,3.0,1260759179\n"
               "2,31,4.0,2011-12-09T12:50:00Z\n",
               Purchases({{"customer", "userId"}, {"product", "movieId"}, {"time", "timestamp"}}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->rows, 3);
  EXPECT_EQ(r->accepted, 3);
  EXPECT_EQ(r->events_written, 3);
  EXPECT_EQ(r->new_customers, 2);
  EXPECT_EQ(r->new_products, 2);
  auto history = f.store->CustomerHistory(*f.store->FindCustomer("1"));
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[0].time, 1260759144);
  EXPECT_EQ((*history)[0].quantity, 1.0);                             // default
  EXPECT_EQ((*history)[0].event_id, "row:1|31|1260759144|purchase");  // derived from content
  EXPECT_EQ(f.store->CustomerHistory(*f.store->FindCustomer("2"))->at(0).time, 1323435000);
}

TEST(Import, ReimportingTheSameFileChangesNothing) {
  Fixture f;
  std::string csv =
      "order_id,customer,product,time,quantity,price\n"
      "O1,c1,p1,2025-01-01,2,9.5\n"
      "O1,c1,p2,2025-01-01,1,3\n"
      "O2,c2,p1,2025-01-02,1,9.5\n";
  auto options = Purchases({{"invoice", "order_id"}});
  auto first = f.Import("orders.csv", csv, options);
  ASSERT_TRUE(first.ok());
  auto before = *f.store->ComputeStats();
  auto second = f.Import("orders.csv", csv, options);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->events_written, 0);
  EXPECT_EQ(second->duplicate_events, 3);
  auto after = *f.store->ComputeStats();
  EXPECT_EQ(after.events, before.events);
  EXPECT_EQ(after.customers, before.customers);
  EXPECT_EQ(after.products, before.products);
  EXPECT_EQ(f.store->customer_id_limit(), 2u);
  // Event ids derive from invoice + position within the invoice.
  auto h = f.store->CustomerHistory(*f.store->FindCustomer("c1"));
  std::set<std::string> ids = {(*h)[0].event_id, (*h)[1].event_id};
  EXPECT_EQ(ids, (std::set<std::string>{"inv:O1:1", "inv:O1:2"}));
  EXPECT_DOUBLE_EQ((*h)[0].unit_price + (*h)[1].unit_price, 12.5);
}

TEST(Import, GzipFileReadsLikeThePlainOne) {
  Fixture f;
  std::string csv = "customer,product,time,event_id\nc1,p1,2025-01-01,a\nc2,p2,2025-01-02,b\n";
  std::string gz_path = f.dir.Sub("events.csv.gz");
  gzFile gz = gzopen(gz_path.c_str(), "wb");
  ASSERT_NE(gz, nullptr);
  gzwrite(gz, csv.data(), static_cast<unsigned>(csv.size()));
  gzclose(gz);
  auto r = ImportFile(*f.store, gz_path, Purchases());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->events_written, 2);
  auto again = f.Import("events.csv", csv);
  EXPECT_EQ(again->duplicate_events, 2);
}

TEST(Import, JsonLines) {
  Fixture f;
  auto r = f.Import(
      "events.jsonl",
      "{\"user\": \"u1\", \"item\": 42, \"ts\": 1700000000, \"qty\": 3}\n"
      "\n"
      "{\"user\": \"u2\", \"item\": \"x\", \"ts\": \"2025-01-01T00:00:00Z\"}\n"
      "{not json}\n"
      "[1, 2]\n",
      Purchases({{"customer", "user"}, {"product", "item"}, {"time", "ts"}, {"quantity", "qty"}}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->rows, 4);
  EXPECT_EQ(r->accepted, 2);
  EXPECT_EQ(r->rejected, 2);
  ASSERT_EQ(r->errors.size(), 2u);
  EXPECT_EQ(r->errors[0].line, 4);
  EXPECT_EQ(r->errors[0].reason, "not valid JSON");
  EXPECT_EQ(r->errors[1].line, 5);
  EXPECT_EQ(f.store->CustomerHistory(*f.store->FindCustomer("u1"))->at(0).quantity, 3.0);
  EXPECT_TRUE(f.store->FindProduct("42").ok());
}

// Every row-level validation error: reported with its line and reason, the row skipped.
TEST(Import, BadRowsAreReportedWithLineAndReason) {
  Fixture f;
  auto r = f.Import("bad.csv",
                    "customer,product,time,quantity,price,type,channel\n"
                    "c1,p1,2025-01-01,1,1,purchase,web\n"     // 2 ok
                    ",p1,2025-01-01,1,1,purchase,web\n"       // 3 empty customer
                    "c1,,2025-01-01,1,1,purchase,web\n"       // 4 empty product
                    "c1,p1,,1,1,purchase,web\n"               // 5 empty time
                    "c1,p1,2025-13-01,1,1,purchase,web\n"     // 6 bad time
                    "c1,p1,2025-01-01,0,1,purchase,web\n"     // 7 quantity 0
                    "c1,p1,2025-01-01,abc,1,purchase,web\n"   // 8 quantity not a number
                    "c1,p1,2025-01-01,1,-2,purchase,web\n"    // 9 negative price
                    "c1,p1,2025-01-01,1,1,refund,web\n"       // 10 unknown type
                    "c1,p1,2025-01-01,1,1\n"                  // 11 too few fields
                    "c1,\"p1,2025-01-01,1,1,purchase,web\n",  // 12 unterminated quote
                    Purchases());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->rows, 11);
  EXPECT_EQ(r->accepted, 1);
  EXPECT_EQ(r->rejected, 10);
  ASSERT_EQ(r->errors.size(), 10u);
  std::vector<std::pair<int64_t, std::string>> expected = {
      {3, "customer is empty"},
      {4, "product is empty"},
      {5, "time is empty"},
      {6, "time: cannot parse time '2025-13-01'"},
      {7, "quantity must be > 0"},
      {8, "quantity 'abc' is not a number"},
      {9, "price must be >= 0"},
      {10, "unknown event type 'refund'"},
      {11, "expected 7 fields, found 5"},
      {12, "unterminated quoted field"},
  };
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(r->errors[i].line, expected[i].first) << i;
    EXPECT_EQ(r->errors[i].reason.rfind(expected[i].second, 0), 0u)
        << "line " << expected[i].first << ": " << r->errors[i].reason;
    EXPECT_EQ(r->errors[i].ToString().rfind(f.dir.Sub("bad.csv") + ":", 0), 0u);
  }
  EXPECT_EQ(f.Events(), 1);
}

TEST(Import, StrictStopsAtTheFirstBadRowAndWritesNothing) {
  Fixture f;
  std::string csv = "customer,product,time\n";
  for (int i = 0; i < 100; ++i) csv += "c" + std::to_string(i) + ",p,2025-01-01\n";
  csv += "c,p,yesterday\n";  // line 102
  csv += "c,p,also bad\n";
  ImportOptions options = Purchases();
  options.strict = true;
  options.batch_size = 10;  // the good rows would span many batches
  auto r = f.Import("strict.csv", csv, options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("strict.csv:102: time: cannot parse time 'yesterday'"),
            std::string::npos)
      << r.status().message();
  EXPECT_EQ(f.Events(), 0);
  EXPECT_EQ(f.store->customer_id_limit(), 0u);
  // The same file without --strict imports the good rows.
  options.strict = false;
  auto lenient = f.Import("strict.csv", csv, options);
  ASSERT_TRUE(lenient.ok());
  EXPECT_EQ(lenient->rejected, 2);
  EXPECT_EQ(f.Events(), 100);
}

TEST(Import, DryRunWritesNothing) {
  Fixture f;
  ImportOptions options = Purchases();
  options.dry_run = true;
  auto r = f.Import("e.csv", "customer,product,time\nc,p,2025-01-01\n", options);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->accepted, 1);
  EXPECT_EQ(r->events_written, 0);
  EXPECT_EQ(f.Events(), 0);
  EXPECT_EQ(f.store->customer_id_limit(), 0u);
}

TEST(Import, FileLevelErrors) {
  Fixture f;
  // A required field whose column is absent names the field.
  auto missing = f.Import("m.csv", "user,product,time\nc,p,2025-01-01\n", Purchases());
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(missing.status().field(), "customer");
  // A mapped optional column that is absent is an error too.
  auto mapped = f.Import("m.csv", "customer,product,time\nc,p,2025-01-01\n",
                         Purchases({{"quantity", "qty"}}));
  EXPECT_EQ(mapped.status().field(), "quantity");
  // A field the kind does not have.
  auto unknown = f.Import("m.csv", "customer,product,time\n", Purchases({{"colour", "x"}}));
  EXPECT_EQ(unknown.status().field(), "columns");
  // Unreadable file.
  auto io = ImportFile(*f.store, f.dir.Sub("nope.csv"), Purchases());
  EXPECT_EQ(io.status().code(), StatusCode::kIOError);
  // Empty file.
  EXPECT_EQ(f.Import("empty.csv", "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f.Events(), 0);
}

TEST(Import, ColumnMappingSyntax) {
  auto ok = ParseColumnMapping(" customer = userId , product=movieId");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->at("customer"), "userId");
  EXPECT_EQ(ok->at("product"), "movieId");
  EXPECT_TRUE(ParseColumnMapping("")->empty());
  for (const char* bad : {"customer", "customer=", "=userId", "a=b,a=c"}) {
    auto r = ParseColumnMapping(bad);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(r.status().field(), "columns") << bad;
  }
  EXPECT_EQ(ParseImportKind("orders").status().field(), "kind");
  EXPECT_EQ(ParseImportPreset("movielens").status().field(), "preset");
}

TEST(Import, ProductsAndCustomers) {
  Fixture f;
  ImportOptions products;
  products.kind = ImportKind::kProducts;
  products.columns = {{"product", "sku"}};
  auto p = f.Import("products.csv",
                    "sku,title,category,brand,price,tags,created_at,available\n"
                    "P1,Speckled Stoneware Mug,Home / Kitchen/Mugs,Hearth,12.50,gift;ceramic,"
                    "2025-01-05,yes\n"
                    "P2,Bad Price,Home,Hearth,-1,,,\n"
                    "P3,Bad Flag,Home,Hearth,1,,,maybe\n",
                    products);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->accepted, 1);
  EXPECT_EQ(p->rejected, 2);
  auto attrs = f.store->GetProduct(*f.store->FindProduct("P1"));
  ASSERT_TRUE(attrs.ok());
  EXPECT_EQ(*attrs->title, "Speckled Stoneware Mug");
  EXPECT_EQ(*attrs->category, (std::vector<std::string>{"Home", "Kitchen", "Mugs"}));
  EXPECT_EQ(*attrs->tags, (std::vector<std::string>{"gift", "ceramic"}));
  EXPECT_EQ(*attrs->price, 12.5);
  EXPECT_TRUE(*attrs->available);
  EXPECT_EQ(*attrs->created_at, 1736035200);

  // Descriptions: a quoted field may run over lines; another control character rejects the row
  // (its line named); a longer one than 8 KiB is cut at a character boundary.
  auto d = f.Import("described.csv",
                    "product,description\n"
                    "P1,\"Stoneware.\nDishwasher safe.\"\n"
                    "P4,\"bell\a\"\n"
                    "P5," +
                        std::string(8191, 'x') + "\xc3\xa9x\n",
                    ImportOptions{.kind = ImportKind::kProducts});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->accepted, 2);
  ASSERT_EQ(d->rejected, 1);
  EXPECT_NE(d->errors[0].reason.find("description"), std::string::npos) << d->errors[0].reason;
  EXPECT_EQ(*f.store->GetProduct(*f.store->FindProduct("P5"))->description, std::string(8191, 'x'))
      << "cut before the two-byte character that would end past 8,192 bytes";
  attrs = f.store->GetProduct(*f.store->FindProduct("P1"));
  EXPECT_EQ(*attrs->description, "Stoneware.\nDishwasher safe.");
  EXPECT_EQ(*attrs->title, "Speckled Stoneware Mug");  // kept: the update merges

  ImportOptions customers;
  customers.kind = ImportKind::kCustomers;
  auto c = f.Import("customers.jsonl",
                    "{\"customer\":\"C1\",\"email\":\"ann.lee@example.com\",\"name\":\"Ann Lee\","
                    "\"opted_out\":false,\"interests\":[\"Home/Kitchen\",\"Garden\"]}\n"
                    "{\"customer\":\"C2\",\"email\":\"not-an-address\"}\n"
                    "{\"customer\":\"C3\",\"name\":\"Eve\\r\\nBcc: x@evil.com\"}\n",
                    customers);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->accepted, 1);
  EXPECT_EQ(c->rejected, 2);
  EXPECT_NE(c->errors[0].reason.find("is not a valid address"), std::string::npos);
  EXPECT_NE(c->errors[1].reason.find("control characters"), std::string::npos);
  auto profile = f.store->GetCustomer(*f.store->FindCustomer("C1"));
  EXPECT_EQ(*profile->name, "Ann Lee");
  EXPECT_FALSE(*profile->opted_out);
  EXPECT_EQ(*profile->interests, (std::vector<std::string>{"Home/Kitchen", "Garden"}));
  EXPECT_FALSE(f.store->FindCustomer("C2").ok());
}

TEST(Import, ProgressIsReportedAndEnds) {
  Fixture f;
  std::string csv = "customer,product,time\n";
  for (int i = 0; i < 20000; ++i) csv += "c" + std::to_string(i % 50) + ",p,1700000000\n";
  ImportOptions options = Purchases();
  std::vector<ImportProgress> seen;
  options.on_progress = [&](const ImportProgress& p) { seen.push_back(p); };
  ASSERT_TRUE(f.Import("p.csv", csv, options).ok());
  ASSERT_FALSE(seen.empty());
  EXPECT_TRUE(seen.back().done);
  EXPECT_EQ(seen.back().rows, 20000);
  EXPECT_DOUBLE_EQ(seen.back().fraction, 1.0);
}

}  // namespace
}  // namespace affinity
