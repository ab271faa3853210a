#include "affinity/snapshot.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "affinity/store.h"
#include "test_util.h"

namespace affinity {
namespace {

using testing::ScratchDir;
namespace fs = std::filesystem;

Snapshot Make(int d, float fill) {
  Snapshot s;
  s.user_factors = RowMajorMatrixXf::Constant(3, d, fill);
  s.user_factors(1, 0) = -2.5f;
  s.item_factors = RowMajorMatrixXf::Constant(2, d, fill + 1);
  s.customer_ids = {"alice", "", "carol"};  // a hole, as after forgetting a customer
  s.product_ids = {"mug", "tea"};
  s.manifest = {{"model", "ials"}, {"metrics", {{"recall@20", 0.25}}}};
  s.extra_files["insights.jsonl"] = "{\"customer\":\"alice\"}\n";
  return s;
}

TEST(Snapshot, PublishAndLoadRoundTrip) {
  ScratchDir dir;
  const std::string root = dir.Sub("snapshots");
  EXPECT_EQ(LoadSnapshot(root).status().code(), StatusCode::kNotFound);
  auto v1 = PublishSnapshot(root, Make(4, 0.5f));
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  EXPECT_EQ(*v1, 1);
  auto v2 = PublishSnapshot(root, Make(4, 1.5f));
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(*v2, 2);
  EXPECT_EQ(*ListSnapshots(root), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(testing::ReadFile(root + "/CURRENT"), "v000002\n");

  auto current = LoadSnapshot(root);
  ASSERT_TRUE(current.ok()) << current.status().ToString();
  EXPECT_EQ(current->version, 2);
  EXPECT_EQ(current->user_factors, Make(4, 1.5f).user_factors);
  EXPECT_EQ(current->item_factors, Make(4, 1.5f).item_factors);
  EXPECT_EQ(current->customer_ids, (std::vector<std::string>{"alice", "", "carol"}));
  EXPECT_EQ(current->product_ids, (std::vector<std::string>{"mug", "tea"}));
  EXPECT_EQ(current->manifest["model"], "ials");
  EXPECT_EQ(current->manifest["metrics"]["recall@20"], 0.25);
  EXPECT_EQ(current->manifest["factors"], 4);
  EXPECT_EQ(current->extra_files.at("insights.jsonl"), "{\"customer\":\"alice\"}\n");
  Snapshot bad = Make(2, 1.0f);
  bad.extra_files["../escape"] = "x";
  EXPECT_EQ(PublishSnapshot(root, bad).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*ListSnapshots(root), (std::vector<int64_t>{1, 2}));  // nothing published
  auto old = LoadSnapshot(root, 1);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->user_factors, Make(4, 0.5f).user_factors);
  EXPECT_EQ(LoadSnapshot(root, 7).status().code(), StatusCode::kNotFound);
}

TEST(Snapshot, AudienceModelRoundTrips) {
  ScratchDir dir;
  const std::string root = dir.Sub("snapshots");
  Snapshot s = Make(2, 0.5f);
  // A cold-start map: two mugs and two teas, their factors along the two axes.
  std::vector<ItemAttributes> items(4);
  RowMajorMatrixXf factors(4, 2);
  for (int i = 0; i < 4; ++i) {
    items[i].category = {"Kitchen", i < 2 ? "Mugs" : "Tea"};
    items[i].title = i < 2 ? "enamel mug" : "green tea";
    factors.row(i) << (i < 2 ? 1.0f : 0.0f), (i < 2 ? 0.0f : 1.0f);
  }
  ColdStartModel map;
  ASSERT_TRUE(map.Fit(items, std::vector<int32_t>(4, 5), factors, ColdStartOptions()).ok());
  s.cold_start = map;
  LogisticCalibration c;
  c.features = {"model_score", "log_products"};
  c.weights = {1.25, -0.5};
  c.intercept = -4;
  c.horizon_days = 14;
  c.products = 7;
  c.pairs = 700;
  c.positives = 12;
  s.audience = c;
  s.score_scale = 0.75;
  ASSERT_TRUE(PublishSnapshot(root, s).ok());
  auto loaded = LoadSnapshot(root);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  ASSERT_TRUE(loaded->cold_start);
  EXPECT_EQ(loaded->cold_start->vocabulary(), map.vocabulary());
  for (const auto& item : items) {
    EXPECT_TRUE(loaded->cold_start->Embed(item)->isApprox(*map.Embed(item)));
  }
  ASSERT_TRUE(loaded->audience);
  EXPECT_EQ(loaded->audience->features, c.features);
  EXPECT_EQ(loaded->audience->weights, c.weights);
  EXPECT_EQ(loaded->audience->intercept, -4);
  EXPECT_EQ(loaded->audience->horizon_days, 14);
  EXPECT_EQ(loaded->audience->positives, 12);
  EXPECT_EQ(loaded->score_scale, 0.75);
  EXPECT_TRUE(loaded->extra_files.empty() || !loaded->extra_files.count("cold_start.json"));
  // A snapshot without them loads without them.
  ASSERT_TRUE(PublishSnapshot(root, Make(2, 0.5f)).ok());
  auto plain = LoadSnapshot(root);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->cold_start);
  EXPECT_FALSE(plain->audience);
  // The map's file names are reserved: an extra file may not take them.
  Snapshot wrong = Make(2, 0.5f);
  wrong.extra_files["cold_start.f32"] = "x";
  EXPECT_EQ(PublishSnapshot(root, wrong).status().code(), StatusCode::kInvalidArgument);
}

TEST(Snapshot, CorruptFilesAreDetected) {
  ScratchDir dir;
  const std::string root = dir.Sub("snapshots");
  ASSERT_TRUE(PublishSnapshot(root, Make(3, 1.0f)).ok());
  const std::string path = root + "/v000001/item_factors.f32";
  std::string data = testing::ReadFile(path);
  data[data.size() - 1] ^= 0x40;  // one flipped bit in the last float
  std::ofstream(path, std::ios::binary) << data;
  auto s = LoadSnapshot(root);
  EXPECT_EQ(s.status().code(), StatusCode::kCorruption);
  EXPECT_NE(s.status().message().find("item_factors.f32"), std::string::npos);
  // Extra files are checked too.
  ASSERT_TRUE(PublishSnapshot(root, Make(3, 1.0f)).ok());
  std::ofstream(root + "/v000002/insights.jsonl", std::ios::binary) << "{}\n";
  EXPECT_EQ(LoadSnapshot(root).status().code(), StatusCode::kCorruption);
}

// A publish interrupted before its renames leaves a temporary directory and the old CURRENT:
// loading still gives the previous snapshot, and the next publish cleans up and goes on.
TEST(Snapshot, InterruptedPublishKeepsThePreviousCurrent) {
  ScratchDir dir;
  const std::string root = dir.Sub("snapshots");
  ASSERT_TRUE(PublishSnapshot(root, Make(2, 1.0f)).ok());
  fs::create_directories(root + "/.tmp-v000002");
  std::ofstream(root + "/.tmp-v000002/user_factors.f32") << "half a file";
  auto s = LoadSnapshot(root);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->version, 1);
  EXPECT_EQ(*ListSnapshots(root), (std::vector<int64_t>{1}));
  auto v = PublishSnapshot(root, Make(2, 3.0f));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 2);
  EXPECT_FALSE(fs::exists(root + "/.tmp-v000002"));
  EXPECT_EQ(LoadSnapshot(root)->version, 2);
}

TEST(Snapshot, ForgettingRewritesAPublishedVersionInPlace) {
  ScratchDir dir;
  const std::string root = dir.Sub("snapshots");
  Snapshot made = Make(4, 0.5f);
  made.customer_ids = {"alice", "bob", "carol"};
  made.extra_files["insights.jsonl"] =
      "{\"T\":1,\"customer\":\"alice\",\"stage\":\"core\"}\n"
      "{\"T\":2,\"customer\":\"bob\",\"reasons\":[{\"detail\":\"\\\"customer\\\":\\\"alice\\\"\"}]}"
      "\n"
      "{\"T\":3,\"customer\":\"carol\"}\n";
  ASSERT_TRUE(PublishSnapshot(root, made).ok());
  ASSERT_TRUE(PublishSnapshot(root, Make(4, 1.5f)).ok());  // v2, current

  auto v1 = LoadSnapshot(root, 1);
  ASSERT_TRUE(v1.ok());
  // What an interrupted erasure leaves (the old files, after the exchange): removed too.
  fs::create_directories(root + "/.tmp-rewrite-v000001");
  std::ofstream(root + "/.tmp-rewrite-v000001/customers.ids") << "alice";
  auto found = ForgetInPublishedSnapshot(root, 1, {"alice", "nobody"});
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(*found, (std::vector<std::string>{"alice"}));

  auto again = LoadSnapshot(root, 1);  // checksums match the new files
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->customer_ids, (std::vector<std::string>{"", "bob", "carol"}));
  EXPECT_TRUE(again->user_factors.row(0).isZero());
  EXPECT_EQ(again->user_factors.row(1), made.user_factors.row(1));
  EXPECT_EQ(again->user_factors.row(2), made.user_factors.row(2));
  EXPECT_EQ(again->item_factors, made.item_factors);
  // Only alice's row goes, not bob's, whose text merely mentions her.
  const std::string& rows = again->extra_files.at("insights.jsonl");
  EXPECT_EQ(rows.find("\"customer\":\"alice\""), std::string::npos) << rows;
  EXPECT_NE(rows.find("\"customer\":\"bob\""), std::string::npos) << rows;
  EXPECT_NE(rows.find("\"customer\":\"carol\""), std::string::npos) << rows;
  EXPECT_EQ(again->manifest["forgotten_customers"], 1);
  EXPECT_EQ(again->manifest["model"], "ials");
  EXPECT_EQ(again->created_at, v1->created_at);
  // Nothing of alice is left in the version's other files, and the rest of the root is as it was.
  for (const auto& entry : fs::directory_iterator(root + "/v000001")) {
    if (entry.path().filename() == "insights.jsonl") continue;  // bob's text names her, above
    EXPECT_EQ(testing::ReadFile(entry.path().string()).find("alice"), std::string::npos)
        << entry.path();
  }
  EXPECT_EQ(testing::ReadFile(root + "/CURRENT"), "v000002\n");
  EXPECT_EQ(*ListSnapshots(root), (std::vector<int64_t>{1, 2}));
  for (const auto& entry : fs::directory_iterator(root)) {
    EXPECT_NE(entry.path().filename().string().rfind(".tmp-", 0), 0u) << entry.path();
  }
  // Again: nothing found, nothing written.
  auto twice = ForgetInPublishedSnapshot(root, 1, {"alice"});
  ASSERT_TRUE(twice.ok());
  EXPECT_TRUE(twice->empty());
  EXPECT_EQ(LoadSnapshot(root, 1)->manifest["forgotten_customers"], 1);
  EXPECT_EQ(ForgetInPublishedSnapshot(root, 9, {"bob"}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ForgetInPublishedSnapshot(dir.Sub("none"), 1, {"bob"}).status().code(),
            StatusCode::kNotFound);
  {  // a publish in progress holds the root: refused, not raced
    const int fd = ::open((root + "/LOCK").c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
    EXPECT_EQ(ForgetInPublishedSnapshot(root, 1, {"bob"}).status().code(),
              StatusCode::kFailedPrecondition);
    ::close(fd);
  }
  EXPECT_EQ(LoadSnapshot(root, 1)->customer_ids, (std::vector<std::string>{"", "bob", "carol"}));
}

TEST(Snapshot, ATrainingRunLeavesOutCustomersForgottenWhileItRan) {
  // The run read the ids (its read-only view); a server beside it then forgot bob.
  ScratchDir dir;
  StoreOptions options;
  auto writer = Store::Open(dir.Sub("db"), options);
  ASSERT_TRUE(writer.ok());
  std::vector<EventInput> events;
  for (const char* c : {"alice", "bob", "carol"}) {
    EventInput e;
    e.customer = c;
    e.product = "mug";
    e.time = 100;
    e.quantity = 1;
    e.event_id = std::string("e-") + c;
    events.push_back(e);
  }
  ASSERT_TRUE((*writer)->AppendEvents(events).ok());
  Snapshot s = Make(2, 1.0f);
  for (uint32_t u = 0; u < 3; ++u) s.customer_ids[u] = *(*writer)->CustomerExternalId({u});
  s.extra_files["insights.jsonl"] = "{\"customer\":\"bob\"}\n{\"customer\":\"carol\"}\n";
  options.read_only = true;
  auto before = Store::Open(dir.Sub("db"), options);
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE((*writer)->ForgetCustomer("bob").ok());
  // The view opened before the forget still has bob; one opened after does not.
  Snapshot stale = s;
  EXPECT_EQ(*ForgetGoneCustomers(**before, &stale), 0);
  auto now = Store::Open(dir.Sub("db"), options);
  ASSERT_TRUE(now.ok());
  auto gone = ForgetGoneCustomers(**now, &s);
  ASSERT_TRUE(gone.ok()) << gone.status().ToString();
  EXPECT_EQ(*gone, 1);
  EXPECT_EQ(s.customer_ids, (std::vector<std::string>{"alice", "", "carol"}));
  EXPECT_TRUE(s.user_factors.row(1).isZero());
  EXPECT_EQ(s.extra_files["insights.jsonl"], "{\"customer\":\"carol\"}\n");
}

TEST(Snapshot, ConcurrentPublishIsRefusedAndBadManifestsAreCorruption) {
  ScratchDir dir;
  const std::string root = dir.Sub("snapshots");
  ASSERT_TRUE(PublishSnapshot(root, Make(2, 1.0f)).ok());
  {
    // Another publisher holds the lock.
    int fd = ::open((root + "/LOCK").c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::flock(fd, LOCK_EX), 0);
    EXPECT_EQ(PublishSnapshot(root, Make(2, 2.0f)).status().code(),
              StatusCode::kFailedPrecondition);
    ::close(fd);
  }
  EXPECT_EQ(*PublishSnapshot(root, Make(2, 2.0f)), 2);
  // Manifests of the wrong shape, and odd directory names, never throw.
  std::ofstream(root + "/v000002/manifest.json") << "{\"files\": []}";
  EXPECT_EQ(LoadSnapshot(root).status().code(), StatusCode::kCorruption);
  std::ofstream(root + "/v000002/manifest.json")
      << "{\"files\": {\"user_factors.f32\": {\"crc32\": \"x\", \"bytes\": 1}}}";
  EXPECT_EQ(LoadSnapshot(root).status().code(), StatusCode::kCorruption);
  fs::create_directories(root + "/v99999999999999999999999");
  EXPECT_EQ(*ListSnapshots(root), (std::vector<int64_t>{1, 2}));
  std::ofstream(root + "/CURRENT") << "v99999999999999999999999\n";
  EXPECT_EQ(LoadSnapshot(root).status().code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace affinity
