// The `affinity` binary, run as a user would: exit codes, --help, JSON output.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "affinity/store.h"
#include "test_util.h"

namespace affinity {
namespace {

using testing::DataPath;
using testing::ScratchDir;

using RunResult = testing::CliRun;
using testing::RunCli;

// The JSON document printed by --json: from the first line that is exactly "{" (progress lines on
// stderr, merged into the output, may hold JSON fragments of their own).
nlohmann::json JsonOf(const RunResult& r) {
  size_t start = r.output.rfind("{\n", 0) == 0 ? 0 : r.output.find("\n{\n");
  EXPECT_NE(start, std::string::npos) << r.output;
  if (start == std::string::npos) return nullptr;
  return nlohmann::json::parse(r.output.substr(start));
}

TEST(Cli, HelpOnEverySubcommandAndVersion) {
  for (const char* sub : {"", "import ", "stats ", "insights ", "train ", "evaluate ", "demo-data ",
                          "audience ", "campaign ", "serve ", "forget "}) {
    RunResult r = RunCli(std::string(sub) + "--help");
    EXPECT_EQ(r.exit_code, 0) << sub << r.output;
    EXPECT_NE(r.output.find("Usage"), std::string::npos) << sub;
  }
  RunResult v = RunCli("--version");
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.output.rfind("affinity ", 0), 0u) << v.output;
  EXPECT_EQ(RunCli("").exit_code, 2);                    // a subcommand is required
  EXPECT_EQ(RunCli("frobnicate").exit_code, 2);          // unknown subcommand
  EXPECT_EQ(RunCli("import --db /tmp/x").exit_code, 2);  // no files
  EXPECT_NE(RunCli("serve --help").output.find("--refresh-candidates"), std::string::npos);
  RunResult negative =
      RunCli("serve --db /nonexistent --snapshots /nonexistent --refresh-candidates -1");
  EXPECT_EQ(negative.exit_code, 2) << negative.output;  // refused before the store is opened
  EXPECT_NE(negative.output.find("refresh-candidates"), std::string::npos) << negative.output;
  RunResult both = RunCli(
      "serve --db /nonexistent --snapshots /nonexistent --private-reads "
      "--public-customer-reads");
  EXPECT_EQ(both.exit_code, 2) << both.output;
  EXPECT_NE(both.output.find("contradict"), std::string::npos) << both.output;
}

TEST(Cli, StrictImportOfABadFileExitsTwoWithTheLine) {
  ScratchDir dir;
  std::string file = dir.Write("bad.csv", "customer,product,time\nc,p,2025-01-01\nc,p,soon\n");
  RunResult r = RunCli("import --quiet --strict --db " + dir.Sub("db") + " " + file);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("bad.csv:3: time: cannot parse time 'soon'"), std::string::npos)
      << r.output;
  // Nothing was written.
  RunResult stats = RunCli("stats --json --db " + dir.Sub("db"));
  ASSERT_EQ(stats.exit_code, 0) << stats.output;
  EXPECT_EQ(JsonOf(stats)["events"], 0);
  // Without --strict the good row is imported, the bad one reported, and the exit code is 0.
  RunResult lenient = RunCli("import --quiet --json --db " + dir.Sub("db") + " " + file);
  EXPECT_EQ(lenient.exit_code, 0) << lenient.output;
  auto report = JsonOf(lenient)["files"][0];
  EXPECT_EQ(report["rejected"], 1);
  EXPECT_EQ(report["errors"][0]["line"], 3);
  EXPECT_EQ(JsonOf(RunCli("stats --json --db " + dir.Sub("db")))["events"], 1);
}

TEST(Cli, InvalidUtf8IsARowErrorNotACrash) {
  ScratchDir dir;
  std::string file = dir.Write("latin1.csv",
                               "customer,product,time,quantity\nM\xfcller,p,2025-01-01,1\n"
                               "c2,p,2025-01-02,1\xbd\nc3,p,2025-01-03,1\n");
  RunResult r = RunCli("import -q --json --db " + dir.Sub("db") + " " + file);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto report = JsonOf(r)["files"][0];
  EXPECT_EQ(report["rejected"], 2);
  EXPECT_EQ(report["events_written"], 1);
  EXPECT_NE(report["errors"][0]["reason"].get<std::string>().find("not valid UTF-8"),
            std::string::npos);
}

TEST(Cli, UsageErrorsExitTwo) {
  ScratchDir dir;
  std::string file = dir.Write("e.csv", "customer,product,time\nc,p,2025-01-01\n");
  EXPECT_EQ(RunCli("import --db " + dir.Sub("db") + " --kind orders " + file).exit_code, 2);
  EXPECT_EQ(RunCli("import --db " + dir.Sub("db") + " --columns nonsense " + file).exit_code, 2);
  EXPECT_EQ(RunCli("import --db " + dir.Sub("db") + " --preset movielens " + file).exit_code, 2);
  EXPECT_EQ(
      RunCli("import --db " + dir.Sub("db") + " --preset online-retail --kind products " + file)
          .exit_code,
      2);
  // Missing input file: a runtime error, exit 1.
  EXPECT_EQ(RunCli("import --db " + dir.Sub("db") + " " + dir.Sub("absent.csv")).exit_code, 1);
  // Stats on a directory that holds no store.
  EXPECT_EQ(RunCli("stats --db " + dir.Sub("nothing-here")).exit_code, 1);
}

TEST(Cli, DemoShopImportsAndReportsStats) {
  ScratchDir dir;
  std::string out = dir.Sub("demo");
  std::string db = dir.Sub("db");
  RunResult gen = RunCli("demo-data --customers 300 --products 120 --out " + out);
  ASSERT_EQ(gen.exit_code, 0) << gen.output;
  ASSERT_EQ(RunCli("import --quiet --db " + db +
                   " --kind customers --columns customer=customer_id " + out + "/customers.csv")
                .exit_code,
            0);
  ASSERT_EQ(RunCli("import --quiet --db " + db + " --kind products --columns product=product_id " +
                   out + "/products.csv")
                .exit_code,
            0);
  RunResult purchases =
      RunCli("import --quiet --json --db " + db +
             " --kind purchases --columns customer=customer_id,product=product_id,invoice=order_id,"
             "price=unit_price " +
             out + "/purchases.csv");
  ASSERT_EQ(purchases.exit_code, 0) << purchases.output;
  auto report = JsonOf(purchases)["files"][0];
  EXPECT_EQ(report["rejected"], 0);
  EXPECT_GT(report["events_written"].get<int64_t>(), 0);
  EXPECT_EQ(report["events_written"], report["rows"]);
  auto stats = JsonOf(RunCli("stats --json --db " + db));
  EXPECT_EQ(stats["customers"], 300);
  EXPECT_EQ(stats["products"], 120);
  EXPECT_EQ(stats["events"], report["events_written"]);
  EXPECT_TRUE(stats["first_event"].is_string());
  EXPECT_TRUE(stats["last_event"].is_string());
}

TEST(Cli, PresetImportOfTheRealSlice) {
  ScratchDir dir;
  RunResult r = RunCli("import --quiet --json --db " + dir.Sub("db") + " --preset online-retail " +
                       DataPath("online_retail_slice.csv.gz"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto stats = JsonOf(RunCli("stats --json --db " + dir.Sub("db")));
  EXPECT_EQ(stats["customers"], 16);
  EXPECT_EQ(stats["events"], 206);
}

TEST(Cli, InsightsOnCdnowGivesTheDocumentedJson) {
  std::string cdnow = std::string(AFFINITY_SHARED_DATA_DIR) + "/cdnow/CDNOW_sample.txt";
  if (!std::ifstream(cdnow)) GTEST_SKIP() << "no " << cdnow;
  ScratchDir dir;
  ASSERT_EQ(RunCli("import --quiet --db " + dir.Sub("db") + " --preset cdnow " + cdnow).exit_code,
            0);
  RunResult r = RunCli("insights --db " + dir.Sub("db") +
                       " --calibration-end 1997-09-30 --time-unit weeks --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = JsonOf(r);
  EXPECT_NEAR(j["bgnbd"]["r"].get<double>(), 0.243, 0.01 * 0.243);
  EXPECT_NEAR(j["bgnbd"]["alpha"].get<double>(), 4.414, 0.01 * 4.414);
  EXPECT_NEAR(j["bgnbd"]["a"].get<double>(), 0.793, 0.01 * 0.793);
  EXPECT_NEAR(j["bgnbd"]["b"].get<double>(), 2.426, 0.01 * 2.426);
  EXPECT_NEAR(j["gamma_gamma"]["p"].get<double>(), 6.25, 0.01 * 6.25);
  EXPECT_NEAR(j["gamma_gamma"]["q"].get<double>(), 3.74, 0.01 * 3.74);
  EXPECT_NEAR(j["gamma_gamma"]["gamma"].get<double>(), 15.44, 0.01 * 15.44);
  int64_t staged = 0;
  for (const auto& [stage, n] : j["stages"].items()) staged += n.get<int64_t>();
  EXPECT_EQ(staged, 2357);
  EXPECT_GE(j["core_customers"]["share_of_value"].get<double>(), 0.8);
  EXPECT_GT(j["core_customers"]["count"].get<int64_t>(), 0);
  EXPECT_GT(j["core_customers"]["share_of_customers"].get<double>(), 0);
  ASSERT_EQ(j["customers"].size(), 2357u);
  EXPECT_TRUE(j["customers"][0].contains("p_alive"));
  EXPECT_TRUE(j["customers"][0].contains("stage"));
  // Rows to a file for large shops: the JSON names the file.
  std::string rows = dir.Sub("rows.jsonl");
  auto k = JsonOf(RunCli("insights --db " + dir.Sub("db") +
                         " --calibration-end 1997-09-30 --json --customers-out " + rows));
  EXPECT_EQ(k["customers"], rows);
  EXPECT_EQ(std::count(std::istreambuf_iterator<char>(std::ifstream(rows).rdbuf()), {}, '\n'),
            2357);
  // One customer.
  auto one = JsonOf(
      RunCli("insights --db " + dir.Sub("db") + " --calibration-end 1997-09-30 --customer 00004"));
  EXPECT_EQ(one["customer"], "00004");
  // Bad input.
  EXPECT_EQ(RunCli("insights --db " + dir.Sub("db") + " --calibration-end someday").exit_code, 2);
  EXPECT_EQ(RunCli("insights --db " + dir.Sub("db") + " --time-unit months").exit_code, 2);
  EXPECT_EQ(RunCli("insights --db " + dir.Sub("db") + " --customer nobody").exit_code, 1);
  EXPECT_EQ(RunCli("insights --db " + dir.Sub("absent")).exit_code, 1);
}

TEST(Cli, EvaluateLightGcnSliceGivesTheDocumentedJson) {
  RunResult r =
      RunCli("evaluate --protocol lightgcn --train " + DataPath("gowalla_train_slice.txt") +
             " --test " + DataPath("gowalla_test_slice.txt") +
             " --factors 16 --iterations 4 --tune-seconds 5 --json -q");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = JsonOf(r);
  EXPECT_EQ(j["protocol"]["name"], "lightgcn");
  for (const char* key :
       {"recall@10", "recall@20", "ndcg@10", "ndcg@20", "hitrate@20", "coverage@20"}) {
    EXPECT_TRUE(j["metrics"].contains(key)) << key;
    for (const char* b : {"popularity", "item_knn", "repeat", "ials"}) {
      EXPECT_TRUE(j["baselines"][b].contains(key)) << b << " " << key;
    }
  }
  EXPECT_TRUE(j["baselines"]["ease"].contains("skipped"));  // 40k item ids: above EASE's limit
  EXPECT_EQ(j["options"]["factors"], 16);
  EXPECT_TRUE(j["tuning"]["chosen"].contains("unobserved_weight"));
  EXPECT_TRUE(j["train_seconds"].is_number());
  EXPECT_EQ(j["loss_per_epoch"].size(), 4u);
  // Explicit weights switch tuning off.
  auto fixed = JsonOf(RunCli(
      "evaluate --protocol lightgcn --train " + DataPath("gowalla_train_slice.txt") + " --test " +
      DataPath("gowalla_test_slice.txt") +
      " --factors 8 --iterations 2 --unobserved-weight 0.3 --baselines popularity --json -q"));
  EXPECT_TRUE(fixed["tuning"].is_null());
  EXPECT_EQ(fixed["options"]["unobserved_weight"], 0.3);
  // Errors.
  EXPECT_EQ(RunCli("evaluate --protocol nonsense").exit_code, 2);
  EXPECT_EQ(RunCli("evaluate --protocol lightgcn --train " + DataPath("gowalla_train_slice.txt"))
                .exit_code,
            2);
  EXPECT_EQ(
      RunCli("evaluate --protocol time-split --db /nonexistent --cutoff 2011-01-01").exit_code, 1);
  EXPECT_EQ(RunCli("evaluate --protocol lightgcn --train x --test y --factors 0").exit_code, 2);
}

TEST(Cli, ForgetErasesCustomersFromTheStoreAndEverySnapshot) {
  ScratchDir dir;
  std::string out = dir.Sub("demo"), db = dir.Sub("db"), snaps = dir.Sub("snapshots");
  ASSERT_EQ(RunCli("demo-data --customers 200 --products 80 --out " + out).exit_code, 0);
  for (const std::string kind :
       {"customers --columns customer=customer_id", "products --columns product=product_id",
        "purchases --columns customer=customer_id,product=product_id,"
        "invoice=order_id,price=unit_price"}) {
    const std::string file = kind.substr(0, kind.find(' '));
    ASSERT_EQ(RunCli("import -q --db " + db + " --kind " + kind + " " + out + "/" + file + ".csv")
                  .exit_code,
              0);
  }
  const std::string train =
      "train -q --db " + db + " --snapshots " + snaps + " --factors 8 --iterations 2 --no-tune";
  ASSERT_EQ(RunCli(train).exit_code, 0);
  ASSERT_EQ(RunCli(train).exit_code, 0);
  // C00001 is in the demo shop with an email address and purchases.
  const std::string customers = testing::ReadFile(out + "/customers.csv");
  const size_t line = customers.find("\nC00001,");
  ASSERT_NE(line, std::string::npos);
  const std::string email = customers.substr(line + 8, customers.find(',', line + 8) - line - 8);
  ASSERT_NE(email.find('@'), std::string::npos) << email;
  for (const char* v : {"/v000001/", "/v000002/"}) {
    ASSERT_NE(testing::ReadFile(snaps + v + "insights.jsonl").find("\"C00001\""),
              std::string::npos);
  }
  const auto stats_before = JsonOf(RunCli("stats --json --db " + db));

  // Usage and bad input: exit 2, the bad line named; nothing is forgotten.
  EXPECT_EQ(RunCli("forget --customer C00001").exit_code, 2);  // neither --db nor --snapshots
  EXPECT_EQ(RunCli("forget --db " + db).exit_code, 2);         // nobody to forget
  RunResult mistyped = RunCli("forget --snapshots " + dir.Sub("snapshtos") + " --customer C00001");
  EXPECT_EQ(mistyped.exit_code, 2) << mistyped.output;  // not "found in no snapshot"
  EXPECT_NE(mistyped.output.find("snapshtos"), std::string::npos) << mistyped.output;
  EXPECT_EQ(RunCli("forget --db " + db + " --customer \"$(printf 'C\\001')\"").exit_code, 2);
  const std::string bad = dir.Write("bad.txt",
                                    "C00002\nC\x01"
                                    "3\n");
  RunResult refused = RunCli("forget --db " + db + " --customers-file " + bad);
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_NE(refused.output.find("bad.txt:2"), std::string::npos) << refused.output;
  {  // a store held by another process (a server): a clear error, exit 1
    auto held = Store::Open(db, StoreOptions{});
    ASSERT_TRUE(held.ok());
    RunResult locked = RunCli("forget --db " + db + " --customer C00001");
    EXPECT_EQ(locked.exit_code, 1) << locked.output;
    EXPECT_NE(locked.output.find("DELETE /v1/customers/{id}"), std::string::npos) << locked.output;
  }
  EXPECT_EQ(JsonOf(RunCli("stats --json --db " + db))["customers"], stats_before["customers"]);

  const std::string ids = dir.Write("ids.txt", "C00001\r\n\n  nobody-here  \nC00001\n");
  RunResult forgot =
      RunCli("forget --json --db " + db + " --snapshots " + snaps + " --customers-file " + ids, "",
             /*keep_stderr=*/false);
  ASSERT_EQ(forgot.exit_code, 0) << forgot.output;
  const auto report = nlohmann::json::parse(forgot.output);
  ASSERT_EQ(report["customers"].size(), 2u);  // each id once
  EXPECT_EQ(report["customers"][0]["customer"], "C00001");
  EXPECT_EQ(report["customers"][0]["store"]["forgotten"], true);
  EXPECT_GT(report["customers"][0]["store"]["events"].get<int64_t>(), 0);
  EXPECT_EQ(report["customers"][0]["snapshots"], nlohmann::json::array({1, 2}));
  EXPECT_EQ(report["customers"][1]["customer"], "nobody-here");
  EXPECT_EQ(report["customers"][1]["store"]["forgotten"], false);
  EXPECT_EQ(report["customers"][1]["store"]["why"], "not in the store; marked forgotten");
  EXPECT_TRUE(report["customers"][1]["snapshots"].empty());
  EXPECT_EQ(report["compacted"], true);
  EXPECT_EQ(report["snapshots_rewritten"], nlohmann::json::array({1, 2}));
  EXPECT_EQ(report["snapshots_scanned"], 2);
  EXPECT_TRUE(report["snapshots_failed"].empty());

  const auto stats_after = JsonOf(RunCli("stats --json --db " + db));
  EXPECT_EQ(stats_after["customers"].get<int64_t>(), stats_before["customers"].get<int64_t>() - 1);
  EXPECT_EQ(stats_after["events"].get<int64_t>(),
            stats_before["events"].get<int64_t>() -
                report["customers"][0]["store"]["events"].get<int64_t>());
  // Erased, not only deleted: neither the store's files nor the snapshots' hold them.
  for (const std::string& root : {db, snaps}) {
    EXPECT_EQ(testing::FilesHolding(root, email), std::vector<std::string>{}) << root;
    EXPECT_EQ(testing::FilesHolding(root, "C00001"), std::vector<std::string>{}) << root;
  }
  // The rewritten snapshots load and serve.
  RunResult audience = RunCli(
      "audience --json --db " + db + " --snapshots " + snaps + " --product P0001 --limit 500", "",
      /*keep_stderr=*/false);
  ASSERT_EQ(audience.exit_code, 0) << audience.output;
  EXPECT_EQ(audience.output.find("C00001"), std::string::npos);
  EXPECT_GT(nlohmann::json::parse(audience.output)["customers"].size(), 0u);

  // A customer forgotten while a training run works (a server beside it, here the test hook at
  // the last moment before the run checks the store) is not in what it publishes.
  RunResult during = RunCli(train + " --json", "AFFINITY_TRAIN_TEST_FORGET=C00002",
                            /*keep_stderr=*/false);
  ASSERT_EQ(during.exit_code, 0) << during.output;
  const auto trained = nlohmann::json::parse(during.output);
  EXPECT_EQ(trained["forgotten_while_training"], 1);
  const std::string v3 = snaps + "/v000003/";
  EXPECT_EQ(trained["version"], 3);
  EXPECT_EQ(testing::ReadFile(v3 + "customers.ids").find("C00002"), std::string::npos);
  EXPECT_EQ(testing::ReadFile(v3 + "insights.jsonl").find("\"C00002\""), std::string::npos);
  EXPECT_NE(testing::ReadFile(v3 + "insights.jsonl").find("\"C00003\""), std::string::npos);
}

// A forgotten customer stays out of the store when an old export is imported again, until
// `forget --allow-again`; nothing of the id is kept in the clear meanwhile.
TEST(Cli, ForgottenCustomersStayOutOfReimportsUntilAllowedAgain) {
  ScratchDir dir;
  std::string out = dir.Sub("demo"), db = dir.Sub("db");
  ASSERT_EQ(RunCli("demo-data --customers 120 --products 40 --out " + out).exit_code, 0);
  const std::string customers_import = "import --json -q --db " + db +
                                       " --kind customers --columns customer=customer_id " + out +
                                       "/customers.csv";
  const std::string purchases_import = "import --json -q --db " + db +
                                       " --kind purchases --columns customer=customer_id,"
                                       "product=product_id,invoice=order_id,price=unit_price " +
                                       out + "/purchases.csv";
  ASSERT_EQ(RunCli(customers_import).exit_code, 0);
  ASSERT_EQ(RunCli(purchases_import).exit_code, 0);
  const auto before = JsonOf(RunCli("stats --json --db " + db));
  const std::string csv = testing::ReadFile(out + "/customers.csv");
  const size_t line = csv.find("\nC00001,");
  ASSERT_NE(line, std::string::npos);
  const std::string email = csv.substr(line + 8, csv.find(',', line + 8) - line - 8);

  const auto forgot = JsonOf(RunCli("forget --json -q --db " + db + " --customer C00001"));
  const int64_t events = forgot["customers"][0]["store"]["events"].get<int64_t>();
  ASSERT_GT(events, 0);
  // Forgetting again: known as forgotten before, not as a stranger.
  const auto again = JsonOf(RunCli("forget --json -q --db " + db + " --customer C00001"));
  EXPECT_EQ(again["customers"][0]["store"]["why"], "forgotten before");

  // The same files imported again: the forgotten customer's rows are counted, not stored.
  const auto profiles = JsonOf(RunCli(customers_import))["files"][0];
  EXPECT_EQ(profiles["forgotten_profiles"], 1);
  EXPECT_EQ(profiles["new_customers"], 0);
  const auto purchases = JsonOf(RunCli(purchases_import))["files"][0];
  EXPECT_EQ(purchases["forgotten_events"].get<int64_t>(), events);
  EXPECT_EQ(purchases["events_written"], 0);
  EXPECT_EQ(JsonOf(RunCli("stats --json --db " + db))["customers"].get<int64_t>(),
            before["customers"].get<int64_t>() - 1);
  // (Every `forget --db` compacts the store, this one the records the imports just wrote.)
  ASSERT_EQ(RunCli("forget -q --db " + db + " --customer C00001").exit_code, 0);
  EXPECT_EQ(testing::FilesHolding(db, email), std::vector<std::string>{});
  EXPECT_EQ(testing::FilesHolding(db, "C00001"), std::vector<std::string>{});

  // Allowed again: a second time finds nothing to allow; the next import brings them back.
  EXPECT_EQ(RunCli("forget --allow-again --db " + db + " --customer C00001 --snapshots " +
                   dir.Sub("snapshots"))
                .exit_code,
            2);
  const auto allowed =
      JsonOf(RunCli("forget --json --allow-again --db " + db + " --customer C00001"));
  EXPECT_EQ(allowed["allowed_again"], 1);
  const auto twice =
      JsonOf(RunCli("forget --json --allow-again --db " + db + " --customer C00001"));
  EXPECT_EQ(twice["allowed_again"], 0);
  EXPECT_EQ(twice["customers"][0]["why"], "not a forgotten id");
  const auto back = JsonOf(RunCli(purchases_import))["files"][0];
  EXPECT_EQ(back["events_written"].get<int64_t>(), events);
  EXPECT_EQ(back["forgotten_events"], 0);
}

TEST(Cli, TrainPublishesSnapshotsAndEvaluateTimeSplitRuns) {
  ScratchDir dir;
  std::string out = dir.Sub("demo"), db = dir.Sub("db"), snaps = dir.Sub("snapshots");
  ASSERT_EQ(RunCli("demo-data --customers 400 --products 150 --out " + out).exit_code, 0);
  ASSERT_EQ(RunCli("import -q --db " + db + " --kind products --columns product=product_id " + out +
                   "/products.csv")
                .exit_code,
            0);
  ASSERT_EQ(RunCli("import -q --db " + db +
                   " --kind purchases --columns customer=customer_id,product=product_id,"
                   "invoice=order_id,price=unit_price " +
                   out + "/purchases.csv")
                .exit_code,
            0);
  RunResult t = RunCli("train -q --json --db " + db + " --snapshots " + snaps +
                       " --factors 16 --iterations 3");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  EXPECT_EQ(JsonOf(t)["version"], 1);
  EXPECT_EQ(JsonOf(RunCli("train -q --json --db " + db + " --snapshots " + snaps +
                          " --factors 16 --iterations 3"))["version"],
            2);
  EXPECT_EQ(testing::ReadFile(snaps + "/CURRENT"), "v000002\n");
  auto manifest = nlohmann::json::parse(testing::ReadFile(snaps + "/v000002/manifest.json"));
  EXPECT_EQ(manifest["factors"], 16);
  EXPECT_EQ(manifest["loss_per_epoch"].size(), 3u);
  // α₀ and λ were tuned on the last 30 days of the store (the default horizon), and the choice
  // is what was trained.
  const nlohmann::json& tuning = manifest["tuning"];
  ASSERT_TRUE(tuning.is_object()) << manifest.dump();
  EXPECT_NE(tuning["validation"].get<std::string>().find("30 days before"), std::string::npos);
  EXPECT_EQ(tuning["trials"].size(), 5u);  // the default grid
  EXPECT_EQ(tuning["chosen"]["unobserved_weight"], manifest["options"]["unobserved_weight"]);
  // Set by hand, they are not tuned.
  RunResult fixed = RunCli("train -q --json --db " + db + " --snapshots " + snaps +
                           " --factors 16 --iterations 3 --regularization 0.02");
  ASSERT_EQ(fixed.exit_code, 0) << fixed.output;
  EXPECT_TRUE(JsonOf(fixed)["tuning"].is_null());
  EXPECT_EQ(JsonOf(fixed)["options"]["regularization"], 0.02);
  // The retrain also recomputes the customer insights.
  EXPECT_TRUE(manifest["insights"]["stages"].is_object());
  EXPECT_TRUE(manifest["files"].contains("insights.jsonl"));
  std::string rows = testing::ReadFile(snaps + "/v000002/insights.jsonl");
  EXPECT_NE(rows.find("\"p_alive\""), std::string::npos);
  EXPECT_EQ(RunCli("train --db " + db + " --snapshots " + snaps + " --half-life-days -1").exit_code,
            2);
  EXPECT_EQ(RunCli("train --snapshots " + snaps).exit_code, 2);  // neither --db nor --train

  RunResult e =
      RunCli("evaluate -q --json --protocol time-split --db " + db +
             " --cutoff 2025-11-01 --horizon-days 30 --factors 16 --iterations 4 --tune-seconds 5");
  ASSERT_EQ(e.exit_code, 0) << e.output;
  auto j = JsonOf(e);
  EXPECT_EQ(j["protocol"]["name"], "time-split");
  // Tuned on the 30 days before the cutoff, not on a random holdout.
  EXPECT_NE(j["tuning"]["validation"].get<std::string>().find("30 days before 2025-11-01"),
            std::string::npos)
      << j["tuning"].dump();
  EXPECT_GT(j["data"]["test_users"].get<int64_t>(), 0);
  // Planted tastes: the model finds them, popularity does not.
  EXPECT_GT(j["metrics"]["recall@20"].get<double>(),
            j["baselines"]["popularity"]["recall@20"].get<double>());

  // The retrain also fits the audience model: the cold-start map and the calibration.
  EXPECT_TRUE(manifest["files"].contains("cold_start.json"));
  ASSERT_TRUE(manifest["audience"].is_object()) << manifest.dump();
  EXPECT_EQ(manifest["audience"]["features"].size(), 8u);
  // The newest product (ids follow launch order) as the audience of a launch.
  RunResult a =
      RunCli("audience --json --db " + db + " --snapshots " + snaps + " --product P0150 --limit 5");
  ASSERT_EQ(a.exit_code, 0) << a.output;
  auto audience = JsonOf(a);
  EXPECT_EQ(audience["product"], "P0150");
  EXPECT_EQ(audience["calibrated"], true);
  ASSERT_EQ(audience["customers"].size(), 5u);
  for (const auto& m : audience["customers"]) {
    EXPECT_GT(m["probability"].get<double>(), 0.0);
    EXPECT_LT(m["probability"].get<double>(), 1.0);
  }
  EXPECT_EQ(RunCli("audience --db " + db + " --snapshots " + snaps + " --product nope").exit_code,
            1);
  EXPECT_EQ(RunCli("audience --db " + db + " --snapshots " + snaps + " --product P0150 --limit 0")
                .exit_code,
            2);
  // Scoring every customer instead of the candidates: the same best customer on this small shop.
  auto everyone = JsonOf(RunCli("audience --json --db " + db + " --snapshots " + snaps +
                                " --product P0150 --limit 5 --candidates 100000"));
  ASSERT_EQ(everyone["customers"].size(), 5u);
  EXPECT_EQ(everyone["customers"][0]["customer"], audience["customers"][0]["customer"]);
  EXPECT_GE(everyone["candidates"].get<int64_t>(), audience["candidates"].get<int64_t>());

  RunResult n = RunCli("evaluate -q --json --protocol new-products --db " + db +
                       " --cutoff 2025-09-01 --factors 16 --iterations 4 --per-launch");
  ASSERT_EQ(n.exit_code, 0) << n.output;
  auto np = JsonOf(n);
  for (const char* key : {"recall@100", "ndcg@100", "auc", "ece", "predicted_buyers",
                          "observed_buyers", "new_products"}) {
    EXPECT_TRUE(np["metrics"].contains(key)) << key;
  }
  for (const char* baseline : {"category_affinity", "most_active"}) {
    for (const char* key : {"recall@100", "ndcg@100", "auc"}) {
      EXPECT_TRUE(np["baselines"][baseline].contains(key)) << baseline << key;
    }
  }
  EXPECT_GT(np["metrics"]["new_products"].get<int64_t>(), 0);
  // --per-launch: one row per new product, adding up to the totals.
  ASSERT_EQ(np["launches"].size(), np["metrics"]["new_products"].get<size_t>());
  double predicted = 0;
  int64_t observed = 0;
  for (const auto& l : np["launches"]) {
    EXPECT_FALSE(l["product"].get<std::string>().empty());
    predicted += l["predicted_buyers"].get<double>();
    observed += l["observed_buyers"].get<int64_t>();
  }
  EXPECT_NEAR(predicted, np["metrics"]["predicted_buyers"].get<double>(), 1e-6 * predicted + 1e-9);
  EXPECT_EQ(observed, np["metrics"]["observed_buyers"].get<int64_t>());
  EXPECT_EQ(RunCli("evaluate --protocol new-products --db " + db).exit_code, 2);  // no cutoff
}

}  // namespace
}  // namespace affinity
