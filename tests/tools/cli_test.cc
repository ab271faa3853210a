// The `affinity` binary, run as a user would: exit codes, --help, JSON output.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace affinity {
namespace {

using testing::DataPath;
using testing::ScratchDir;

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

RunResult RunCli(const std::string& args) {
  std::string command = std::string(AFFINITY_CLI_PATH) + " " + args + " 2>&1";
  RunResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) result.output.append(buf.data(), n);
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

nlohmann::json JsonOf(const RunResult& r) {
  auto start = r.output.find('{');
  EXPECT_NE(start, std::string::npos) << r.output;
  return nlohmann::json::parse(r.output.substr(start));
}

TEST(Cli, HelpOnEverySubcommandAndVersion) {
  for (const char* sub : {"", "import ", "stats ", "insights ", "demo-data "}) {
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

}  // namespace
}  // namespace affinity
