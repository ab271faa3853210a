// End-to-end: the real HttpServer on a loopback port, a planted store and snapshot, and
// cpp-httplib clients calling every route and error path.
#include "affinity/server/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "affinity/email.h"
#include "launch_shop.h"
#include "planted_shop.h"
#include "test_util.h"

namespace affinity {
namespace {

using nlohmann::json;

constexpr char kAdminKey[] = "admin-key-0123456789";
constexpr char kWriteKey[] = "write-key-0123456789";
constexpr char kReadKey[] = "read-key-01234567890";

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::OpenPlantedEngine(dir_, &store_, &engine_);
    ASSERT_TRUE(engine_);
    ASSERT_TRUE(engine_->RefitInsights().ok());
  }

  // Starts the server with `options`; with the three test keys unless it names keys, or
  // `no_keys`.
  void Start(HttpServerOptions options = {}, bool no_keys = false) {
    options.port = 0;
    if (options.keys.empty() && !no_keys) {
      options.keys = {
          {kAdminKey, Role::kAdmin}, {kWriteKey, Role::kWrite}, {kReadKey, Role::kRead}};
    }
    server_ = std::make_unique<HttpServer>(engine_.get(), options);
    ASSERT_TRUE(server_->Bind().ok());
    thread_ = std::thread([this] { EXPECT_TRUE(server_->Serve().ok()); });
  }

  void TearDown() override {
    if (server_) server_->Stop();
    if (thread_.joinable()) thread_.join();
  }

  httplib::Client Client(const char* key = nullptr) {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(10, 0);
    if (key) c.set_bearer_token_auth(key);
    return c;
  }

  // Sends `head` on a fresh connection and returns what the server answers within 5 s (until it
  // has sent a complete header block and the body its Content-Length announces).
  std::string RawExchange(const std::string& head) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server_->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      return "connect failed";
    }
    timeval timeout{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
    std::string answer;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      answer.append(buf, static_cast<size_t>(n));
      const size_t end = answer.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      const size_t cl = answer.find("Content-Length: ");
      const size_t length = cl == std::string::npos ? 0 : std::stoul(answer.substr(cl + 16));
      if (answer.size() >= end + 4 + length) break;
    }
    ::close(fd);
    return answer;
  }

  static json Body(const httplib::Result& r) {
    return json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  }

  // Checks the error shape and returns the field.
  static std::string ErrorField(const httplib::Result& r, int status) {
    EXPECT_TRUE(r) << "no response";
    if (!r) return "";
    EXPECT_EQ(r->status, status) << r->body;
    json j = Body(r);
    EXPECT_TRUE(j.contains("error")) << r->body;
    if (!j.contains("error")) return "";
    EXPECT_TRUE(j["error"]["code"].is_string());
    EXPECT_TRUE(j["error"]["message"].is_string());
    return j["error"].value("field", "");
  }

  testing::ScratchDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<ServingEngine> engine_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

TEST_F(HttpServerTest, HealthModelAndMetrics) {
  Start();
  auto c = Client(kReadKey);
  auto health = c.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto model = c.Get("/v1/model");
  ASSERT_TRUE(model);
  json m = Body(model);
  EXPECT_EQ(m["version"], 1);
  EXPECT_EQ(m["factors"], 8);
  EXPECT_EQ(m["indexes"]["items"]["kind"], "exact");
  EXPECT_EQ(m["indexes"]["customers"]["size"], 60);
  ASSERT_TRUE(c.Get("/v1/customers/a01/recommendations"));
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find(
                "affinity_http_requests_total{route=\"recommendations\",status=\"200\"} 1"),
            std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("affinity_http_requests_total{route=\"healthz\",status=\"200\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics->body.find("affinity_model_version 1"), std::string::npos);
  EXPECT_NE(metrics->body.find("affinity_index_size{index=\"customers\",kind=\"exact\"} 60"),
            std::string::npos);
}

TEST_F(HttpServerTest, RecommendationsWithReasonsAndTheirErrors) {
  Start();
  auto c = Client(kReadKey);
  auto r = c.Get("/v1/customers/a03/recommendations?k=4");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = Body(r);
  EXPECT_EQ(j["source"], "model");
  ASSERT_EQ(j["items"].size(), 4u);
  const std::vector<int> basket = testing::PlantedBasket(3);
  for (const auto& item : j["items"]) {
    const std::string p = item["product"];
    EXPECT_EQ(p[0], 'k');
    EXPECT_EQ(std::count(basket.begin(), basket.end(), std::stoi(p.substr(1))), 0);
    EXPECT_EQ(item["reason"]["kind"], "purchased");
    const std::string because = item["reason"]["product"];
    EXPECT_EQ(std::count(basket.begin(), basket.end(), std::stoi(because.substr(1))), 1);
  }
  auto cat = c.Get("/v1/customers/a03/recommendations?k=20&category=Home/Kitchen/Pans");
  ASSERT_TRUE(cat);
  const json cat_body = Body(cat);  // (a range-for over a temporary's member would dangle)
  for (const auto& item : cat_body["items"]) {
    EXPECT_GE(std::stoi(item["product"].get<std::string>().substr(1)), 10);
  }
  // Huge k is capped at max_k, not an error; negative, non-numeric k are 400 naming "k".
  auto huge = c.Get("/v1/customers/a03/recommendations?k=1000");
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->status, 200);
  EXPECT_EQ(ErrorField(c.Get("/v1/customers/a03/recommendations?k=-1"), 400), "k");
  EXPECT_EQ(ErrorField(c.Get("/v1/customers/a03/recommendations?k=abc"), 400), "k");
  EXPECT_EQ(ErrorField(c.Get("/v1/customers/a03/recommendations?k=99999999999"), 400), "k");
  EXPECT_EQ(ErrorField(c.Get("/v1/customers/a03/recommendations?exclude_purchased=maybe"), 400),
            "exclude_purchased");
  ErrorField(c.Get("/v1/customers/nobody/recommendations"), 404);
  // Odd bytes in an id: a control character, invalid UTF-8.
  EXPECT_EQ(ErrorField(c.Get("/v1/customers/a%0103/recommendations"), 400), "id");
  EXPECT_EQ(ErrorField(c.Get("/v1/customers/%ff%fe/recommendations"), 400), "id");
  ErrorField(c.Get("/v1/no/such/route"), 404);
}

TEST_F(HttpServerTest, PurchaseThenRecommend) {
  Start();
  auto c = Client(kReadKey);
  auto score_of = [](const json& j, const std::string& p) {
    for (const auto& item : j["items"]) {
      if (item["product"] == p) return item["score"].get<double>();
    }
    return -1e9;
  };
  // b07 has only running products; find the kitchen product most similar to k05.
  auto similar = c.Get("/v1/products/k05/similar?k=3");
  ASSERT_TRUE(similar);
  ASSERT_EQ(similar->status, 200) << similar->body;
  const std::string neighbour = Body(similar)["items"][0]["product"];
  EXPECT_EQ(neighbour[0], 'k');
  auto before = Body(c.Get("/v1/customers/b07/recommendations?k=40&exclude_purchased=false"));
  auto w = Client(kWriteKey);
  auto post = w.Post("/v1/events",
                     R"({"events":[{"customer":"b07","product":"k05","time":"2025-02-01T10:00:00Z",
                         "quantity":2,"unit_price":12.5,"channel":"app","event_id":"e-1"}]})",
                     "application/json");
  ASSERT_TRUE(post);
  ASSERT_EQ(post->status, 200) << post->body;
  EXPECT_EQ(Body(post)["stored"], 1);
  EXPECT_EQ(Body(post)["folded_in"], 1);
  // The very next request sees it: k05 is gone when excluding purchases, and its neighbour
  // scores higher than before.
  auto after = Body(c.Get("/v1/customers/b07/recommendations?k=40"));
  EXPECT_EQ(after["source"], "fold_in");
  EXPECT_EQ(score_of(after, "k05"), -1e9);
  EXPECT_GT(score_of(after, neighbour), score_of(before, neighbour));
  // The same event again is a duplicate, not a second purchase.
  auto again = w.Post("/v1/events", R"([{"customer":"b07","product":"k05","event_id":"e-1"}])",
                      "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(Body(again)["duplicates"], 1);
  EXPECT_EQ(Body(again)["stored"], 0);
}

TEST_F(HttpServerTest, EventBatchErrorsAreNamedByIndex) {
  HttpServerOptions o;
  o.max_batch = 3;
  o.max_body_bytes = 4096;
  Start(o);
  auto w = Client(kWriteKey);
  auto mixed = w.Post("/v1/events",
                      R"({"events":[{"customer":"a01","product":"k01","event_id":"m-1"},
                                    {"customer":"a01","product":"k02","quantity":"two"},
                                    {"customer":"a01","product":"k03","quantity":-1}]})",
                      "application/json");
  ASSERT_TRUE(mixed);
  EXPECT_EQ(mixed->status, 200);
  json j = Body(mixed);
  EXPECT_EQ(j["stored"], 1);
  ASSERT_EQ(j["errors"].size(), 2u);
  EXPECT_EQ(j["errors"][0]["index"], 1);
  EXPECT_EQ(j["errors"][0]["field"], "events[1].quantity");
  EXPECT_EQ(j["errors"][1]["index"], 2);
  EXPECT_EQ(j["errors"][1]["field"], "events[2].quantity");
  auto future = w.Post("/v1/events", R"([{"customer":"a01","product":"k01","time":1735689600000}])",
                       "application/json");
  ASSERT_TRUE(future);
  EXPECT_EQ(future->status, 422);
  EXPECT_EQ(Body(future)["errors"][0]["field"], "events[0].time");
  auto all_bad = w.Post("/v1/events", R"([{"product":"k01"}, 5])", "application/json");
  ASSERT_TRUE(all_bad);
  EXPECT_EQ(all_bad->status, 422);
  EXPECT_EQ(Body(all_bad)["errors"][0]["field"], "events[0].customer");
  EXPECT_EQ(ErrorField(w.Post("/v1/events", "{not json", "application/json"), 400), "body");
  EXPECT_EQ(ErrorField(w.Post("/v1/events", R"({"events": 3})", "application/json"), 400),
            "events");
  EXPECT_EQ(ErrorField(w.Post("/v1/events", R"({"evnts": []})", "application/json"), 400),
            "events");
  auto unknown =
      w.Post("/v1/events", R"([{"customer":"a","product":"b","color":1}])", "application/json");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 422);
  EXPECT_EQ(Body(unknown)["errors"][0]["field"], "events[0].color");
  ErrorField(w.Post("/v1/events", "[{},{},{},{}]", "application/json"), 413);
  // A body over the limit is read and discarded, then refused.
  ErrorField(w.Post("/v1/events", std::string(8192, ' ') + "[]", "application/json"), 413);
  // A chunked body is refused from the headers alone, before any body byte is sent. (A raw
  // socket: a client that sends the body races the server's close and may see a reset.)
  const std::string auth = std::string("Authorization: Bearer ") + kWriteKey + "\r\n";
  const std::string chunked = RawExchange("POST /v1/events HTTP/1.1\r\nHost: t\r\n" + auth +
                                          "Transfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(chunked.substr(0, 12), "HTTP/1.1 411") << chunked;
  EXPECT_NE(chunked.find("\"field\":\"Transfer-Encoding\""), std::string::npos) << chunked;
}

TEST_F(HttpServerTest, AuthRolesAndPersonalFields) {
  Start();
  const char* body = R"([{"customer":"a01","product":"k01","event_id":"auth-1"}])";
  EXPECT_EQ(ErrorField(Client().Post("/v1/events", body, "application/json"), 401),
            "Authorization");
  ErrorField(Client(kReadKey).Post("/v1/events", body, "application/json"), 403);
  EXPECT_EQ(
      ErrorField(Client("wrong-key-0123456789").Post("/v1/events", body, "application/json"), 401),
      "Authorization");
  auto ok = Client(kWriteKey).Post("/v1/events", body, "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  ErrorField(Client(kWriteKey).Post("/v1/admin/reload", "", "application/json"), 403);
  auto reload = Client(kAdminKey).Post("/v1/admin/reload", "", "application/json");
  ASSERT_TRUE(reload);
  EXPECT_EQ(reload->status, 200) << reload->body;
  // Personal fields only for the admin key.
  json read = Body(Client(kReadKey).Get("/v1/customers/a01"));
  EXPECT_EQ(read["id"], "a01");
  EXPECT_FALSE(read.contains("email"));
  EXPECT_FALSE(read.contains("name"));
  json admin = Body(Client(kAdminKey).Get("/v1/customers/a01"));
  EXPECT_EQ(admin["email"], "a01@example.com");
  // A malformed Authorization header is 401 even on an open route.
  httplib::Headers basic = {{"Authorization", "Basic abc"}};
  ErrorField(Client().Get("/v1/customers/a01", basic), 401);
}

// The routes that answer with what the shop knows of its customers, and the catalog's.
const char* const kCustomerReads[] = {"/v1/customers/a01/recommendations",
                                      "/v1/products/k04/audience?limit=5", "/v1/customers/a01",
                                      "/v1/customers/a01/interests", "/v1/customers/a01/insights"};
const char* const kCatalogReads[] = {"/v1/products/k04/similar", "/v1/products/k04", "/v1/model",
                                     "/metrics"};

TEST_F(HttpServerTest, CustomerDataNeedsAKeyByDefault) {
  Start();
  for (const char* path : kCustomerReads) {
    EXPECT_EQ(ErrorField(Client().Get(path), 401), "Authorization") << path;
    auto r = Client(kReadKey).Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 200) << path << " " << r->body;
  }
  EXPECT_EQ(ErrorField(Client().Post("/v1/audience", R"({"product":{"category":"Home"}})",
                                     "application/json"),
                       401),
            "Authorization");
  for (const char* path : kCatalogReads) {
    auto r = Client().Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 200) << path << " " << r->body;
  }
}

TEST_F(HttpServerTest, PublicCustomerReadsOpenThemToEveryone) {
  HttpServerOptions o;
  o.public_customer_reads = true;
  Start(o);
  for (const char* path : kCustomerReads) {
    auto r = Client().Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 200) << path << " " << r->body;
    // Personal fields stay the admin key's.
    if (std::string(path) == "/v1/customers/a01") {
      EXPECT_FALSE(Body(r).contains("email"));
    }
  }
  o.private_reads = true;
  EXPECT_EQ(o.Validate().field(), "public_customer_reads");
}

TEST_F(HttpServerTest, WithoutKeysCustomerReadsAndWritesAreRefused) {
  Start({}, /*no_keys=*/true);
  ErrorField(Client().Get("/v1/customers/a01/recommendations"), 403);
  ErrorField(Client().Post("/v1/events", R"({"events":[]})", "application/json"), 403);
  auto similar = Client().Get("/v1/products/k04/similar");
  ASSERT_TRUE(similar);
  EXPECT_EQ(similar->status, 200);
}

TEST_F(HttpServerTest, PrivateReadsNeedAKeyForTheCatalogToo) {
  HttpServerOptions o;
  o.keys = {{kReadKey, Role::kRead}};
  o.private_reads = true;
  Start(o);
  for (const char* path : kCatalogReads) {
    EXPECT_EQ(ErrorField(Client().Get(path), 401), "Authorization") << path;
    auto r = Client(kReadKey).Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 200) << path << " " << r->body;
  }
  auto health = Client().Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST_F(HttpServerTest, CustomersAndProductsCrudAndForget) {
  Start();
  auto w = Client(kWriteKey);
  auto a = Client(kAdminKey);
  auto created = w.Put("/v1/customers/zed", R"({"email":"zed@example.com","country":"NL"})",
                       "application/json");
  ASSERT_TRUE(created);
  EXPECT_EQ(created->status, 201);
  auto updated = w.Put("/v1/customers/zed", R"({"opted_out":true})", "application/json");
  ASSERT_TRUE(updated);
  EXPECT_EQ(updated->status, 200);
  json zed = Body(a.Get("/v1/customers/zed"));
  EXPECT_EQ(zed["email"], "zed@example.com");
  EXPECT_EQ(zed["opted_out"], true);
  EXPECT_EQ(
      ErrorField(w.Put("/v1/customers/zed", R"({"opted_out":"yes"})", "application/json"), 400),
      "opted_out");
  EXPECT_EQ(ErrorField(w.Put("/v1/customers/zed", R"([1])", "application/json"), 400), "body");

  auto product = w.Put("/v1/products/mug-9",
                       R"({"title":"Blue mug","category":"Home/Kitchen/Mugs","price":9.5,
                           "tags":["blue"]})",
                       "application/json");
  ASSERT_TRUE(product);
  EXPECT_EQ(product->status, 201);
  json p = Body(Client().Get("/v1/products/mug-9"));
  EXPECT_EQ(p["category"], "Home/Kitchen/Mugs");
  EXPECT_EQ(p["price"], 9.5);
  EXPECT_EQ(ErrorField(w.Put("/v1/products/mug-9", R"({"price":-1})", "application/json"), 400),
            "price");
  // Levels one by one: a '/' in one would make another path of the stored one.
  EXPECT_EQ(ErrorField(w.Put("/v1/products/mug-9", R"({"category":["Home","Kitchen/Mugs"]})",
                             "application/json"),
                       400),
            "category");
  EXPECT_EQ(
      ErrorField(w.Put("/v1/products/mug-9", R"({"category":["Home",""]})", "application/json"),
                 400),
      "category");
  EXPECT_EQ(Body(Client().Get("/v1/products/mug-9"))["category"], "Home/Kitchen/Mugs")
      << "refused, nothing changed";
  auto levels =
      w.Put("/v1/products/mug-10", R"({"category":["Home","Kitchen","Mugs"]})", "application/json");
  ASSERT_TRUE(levels);
  EXPECT_EQ(levels->status, 201);
  EXPECT_EQ(Body(Client().Get("/v1/products/mug-10"))["category"], "Home/Kitchen/Mugs");
  ErrorField(Client().Get("/v1/products/none"), 404);
  // Not in the model yet: similar and audience say so (409), not 500.
  ErrorField(Client().Get("/v1/products/mug-9/similar"), 409);

  // Forget: a receipt, then gone everywhere.
  auto audience = Body(Client(kReadKey).Get("/v1/products/k04/audience?limit=5"));
  const std::string victim = audience["customers"][0]["customer"];
  ErrorField(w.Delete("/v1/customers/" + victim), 403);
  // A snapshot published and not loaded holds the customer too: the receipt names it.
  ASSERT_EQ(testing::TrainPlantedSnapshot(*store_, dir_.Sub("snaps"), 2), 2);
  auto receipt = a.Delete("/v1/customers/" + victim);
  ASSERT_TRUE(receipt);
  ASSERT_EQ(receipt->status, 200) << receipt->body;
  EXPECT_EQ(Body(receipt)["removed"]["events"], 6);
  EXPECT_EQ(Body(receipt)["newest_snapshot"], 2);
  EXPECT_EQ(Body(receipt)["erasure"].get<std::string>().rfind("queued", 0), 0u);
  EXPECT_EQ(Body(Client().Get("/v1/model"))["version"], 1);
  ErrorField(Client(kReadKey).Get("/v1/customers/" + victim), 404);
  ErrorField(Client(kReadKey).Get("/v1/customers/" + victim + "/recommendations"), 404);
  const json after = Body(Client(kReadKey).Get("/v1/products/k04/audience?limit=60"));
  for (const auto& m : after["customers"]) {
    EXPECT_NE(m["customer"], victim);
  }
  ErrorField(a.Delete("/v1/customers/" + victim), 404);
  // Not stored again: their events are counted as forgotten, their profile refused (409).
  auto events = w.Post("/v1/events",
                       R"([{"customer":")" + victim +
                           R"(","product":"k04","event_id":"after-forget-1"},
                           {"customer":"zed","product":"k04","event_id":"after-forget-2"}])",
                       "application/json");
  ASSERT_TRUE(events);
  ASSERT_EQ(events->status, 200) << events->body;
  EXPECT_EQ(Body(events)["stored"], 1);
  EXPECT_EQ(Body(events)["forgotten"], 1);
  EXPECT_EQ(
      ErrorField(w.Put("/v1/customers/" + victim, R"({"country":"NL"})", "application/json"), 409),
      "customer");
  EXPECT_EQ(ErrorField(w.Put("/v1/customers/" + victim + "/interests",
                             R"({"interests":["Sports"]})", "application/json"),
                       409),
            "customer");
  ErrorField(Client(kReadKey).Get("/v1/customers/" + victim), 404);
}

TEST_F(HttpServerTest, AudienceExcludesBuyersAndOptOuts) {
  Start();
  auto c = Client(kReadKey);
  json j = Body(c.Get("/v1/products/r02/audience?limit=100"));
  ASSERT_FALSE(j["customers"].empty());
  for (const auto& m : j["customers"]) {
    const std::string id = m["customer"];
    if (id[0] == 'b') {
      const auto basket = testing::PlantedBasket(std::stoi(id.substr(1)), 'b');
      EXPECT_EQ(std::count(basket.begin(), basket.end(), 2), 0) << id;
    }
  }
  // The best 5 are the running side.
  for (size_t i = 0; i < 5; ++i)
    EXPECT_EQ(j["customers"][i]["customer"].get<std::string>()[0], 'b');
  const std::string top = j["customers"][0]["customer"];
  auto opt_out =
      Client(kWriteKey).Put("/v1/customers/" + top, R"({"opted_out":true})", "application/json");
  ASSERT_TRUE(opt_out);
  const json after = Body(c.Get("/v1/products/r02/audience?limit=100"));
  for (const auto& m : after["customers"]) {
    EXPECT_NE(m["customer"], top);
  }
  // min_score cuts the list; bad parameters are 400 naming them.
  const double cut = j["customers"][2]["score"];
  json few = Body(c.Get("/v1/products/r02/audience?limit=100&min_score=" + std::to_string(cut)));
  EXPECT_LE(few["customers"].size(), 3u);
  EXPECT_EQ(ErrorField(c.Get("/v1/products/r02/audience?limit=0"), 400), "limit");
  EXPECT_EQ(ErrorField(c.Get("/v1/products/r02/audience?min_score=x"), 400), "min_score");
}

TEST_F(HttpServerTest, InterestsRoutes) {
  Start();
  auto c = Client(kReadKey);
  const json learned = Body(c.Get("/v1/customers/a00/interests"));
  ASSERT_FALSE(learned["interests"].empty()) << learned.dump();
  EXPECT_EQ(learned["interests"][0]["category"], "Home");
  EXPECT_EQ(learned["interests"][0]["source"], "learned");
  EXPECT_EQ(learned["interests"][0]["level"], 1);

  auto w = Client(kWriteKey);
  auto put = w.Put("/v1/customers/a00/interests", R"({"interests":["Sports / Running"]})",
                   "application/json");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 200) << put->body;
  EXPECT_EQ(Body(put)["stated"], json::array({"Sports/Running"}));
  const json both = Body(c.Get("/v1/customers/a00/interests"));
  EXPECT_EQ(both["interests"].back()["category"], "Sports/Running");
  EXPECT_EQ(both["interests"].back()["source"], "stated");
  // A new customer with stated interests only: created, and recommended from them.
  auto created = w.Put("/v1/customers/newbie/interests", R"({"interests":["Sports/Running"]})",
                       "application/json");
  ASSERT_TRUE(created);
  EXPECT_EQ(created->status, 201);
  const json recs = Body(c.Get("/v1/customers/newbie/recommendations?k=3"));
  EXPECT_EQ(recs["source"], "interests");
  for (const auto& item : recs["items"]) {
    EXPECT_EQ(item["product"].get<std::string>()[0], 'r') << item.dump();
  }

  EXPECT_EQ(
      ErrorField(
          w.Put("/v1/customers/a00/interests", R"({"interests":"Home"})", "application/json"), 400),
      "interests");
  EXPECT_EQ(ErrorField(w.Put("/v1/customers/a00/interests", R"({"interests":[" / "]})",
                             "application/json"),
                       400),
            "interests");
  EXPECT_EQ(
      ErrorField(w.Put("/v1/customers/a00/interests", R"({"likes":[]})", "application/json"), 400),
      "likes");
  ErrorField(Client().Put("/v1/customers/a00/interests", R"({"interests":[]})", "application/json"),
             401);
  ErrorField(Client(kReadKey).Put("/v1/customers/a00/interests", R"({"interests":[]})",
                                  "application/json"),
             403);
  ErrorField(c.Get("/v1/customers/nobody/interests"), 404);
}

// Stated interests and category levels are checked and normalized on every way in, so that
// they name the categories a product's path, a stated interest and a category filter name.
TEST_F(HttpServerTest, InterestsAndCategoryLevelsAreNormalizedOnEveryWayIn) {
  Start();
  auto w = Client(kWriteKey);
  auto r = Client(kReadKey);
  // PUT /v1/customers/{id} with interests, as PUT .../interests: an empty path or a control
  // character is refused before anything is stored.
  EXPECT_EQ(
      ErrorField(w.Put("/v1/customers/zz", R"({"interests":[" / "]})", "application/json"), 400),
      "interests");
  EXPECT_EQ(
      ErrorField(w.Put("/v1/customers/zz", R"({"interests":["a\u0001b"]})", "application/json"),
                 400),
      "interests");
  ErrorField(r.Get("/v1/customers/zz"), 404);
  auto created = w.Put("/v1/customers/zz", R"({"interests":["Home / Kitchen","Home/Kitchen"]})",
                       "application/json");
  ASSERT_TRUE(created);
  EXPECT_EQ(created->status, 201) << created->body;
  EXPECT_EQ(Body(r.Get("/v1/customers/zz"))["interests"], json::array({"Home/Kitchen"}));
  const json interests = Body(r.Get("/v1/customers/zz/interests"));
  ASSERT_EQ(interests["interests"].size(), 1u) << interests.dump();
  EXPECT_EQ(interests["interests"][0]["category"], "Home/Kitchen");

  // A product's levels given one by one are trimmed as a path's are; a blank one is refused.
  auto levels =
      w.Put("/v1/products/mug-11", R"({"category":[" Home ","Kitchen  "]})", "application/json");
  ASSERT_TRUE(levels);
  EXPECT_EQ(levels->status, 201) << levels->body;
  EXPECT_EQ(Body(Client().Get("/v1/products/mug-11"))["category"], "Home/Kitchen");
  // Absent or null, the category is kept (a build of this change wrote an empty one).
  for (const char* body : {R"({"available":false})", R"({"category":null,"price":3})"}) {
    auto kept = w.Put("/v1/products/mug-11", body, "application/json");
    ASSERT_TRUE(kept);
    EXPECT_EQ(kept->status, 200) << kept->body;
    EXPECT_EQ(Body(Client().Get("/v1/products/mug-11"))["category"], "Home/Kitchen") << body;
  }
  EXPECT_EQ(
      ErrorField(w.Put("/v1/products/mug-11", R"({"category":["Home","  "]})", "application/json"),
                 400),
      "category");

  // A description: stored as given (line breaks and tabs allowed), kept by an update without
  // one; another control character or more than 8 KiB is refused, naming the field.
  auto described =
      w.Put("/v1/products/mug-11", json({{"description", "Enamel.\n\tDishwasher safe."}}).dump(),
            "application/json");
  ASSERT_TRUE(described);
  EXPECT_EQ(described->status, 200) << described->body;
  auto kept = w.Put("/v1/products/mug-11", R"({"price":4})", "application/json");
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->status, 200) << kept->body;
  EXPECT_EQ(Body(Client().Get("/v1/products/mug-11"))["description"],
            "Enamel.\n\tDishwasher safe.");
  EXPECT_EQ(
      ErrorField(w.Put("/v1/products/mug-11", R"({"description":"a\u0001b"})", "application/json"),
                 400),
      "description");
  EXPECT_EQ(
      ErrorField(w.Put("/v1/products/mug-11",
                       json({{"description", std::string(8193, 'x')}}).dump(), "application/json"),
                 400),
      "description");
  EXPECT_EQ(Body(Client().Get("/v1/products/mug-11"))["description"],
            "Enamel.\n\tDishwasher safe.");
}

TEST_F(HttpServerTest, UnsubscribeWithTheLettersTokenOptsOut) {
  Start();
  auto c = Client();  // no key: the token is the authority
  const std::string secret = *store_->CampaignSecret();
  const std::string token = UnsubscribeToken(secret, "a01");
  // A token for another customer, a made-up one, or none at all changes nothing.
  EXPECT_EQ(
      ErrorField(c.Post("/v1/unsubscribe", json({{"customer", "a02"}, {"token", token}}).dump(),
                        "application/json"),
                 403),
      "token");
  EXPECT_EQ(
      ErrorField(c.Post("/v1/unsubscribe", R"({"customer":"a01","token":"x"})", "application/json"),
                 403),
      "token");
  EXPECT_EQ(ErrorField(c.Post("/v1/unsubscribe", R"({"customer":"a01"})", "application/json"), 400),
            "token");
  EXPECT_FALSE(store_->GetCustomer(*store_->FindCustomer("a02"))->opted_out.value_or(false));
  // RFC 8058 one-click: the parameters in the URL, a form body.
  auto r = c.Post("/v1/unsubscribe?customer=a01&token=" + token, "List-Unsubscribe=One-Click",
                  "application/x-www-form-urlencoded");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Body(r)["opted_out"], true);
  EXPECT_TRUE(store_->GetCustomer(*store_->FindCustomer("a01"))->opted_out.value_or(false));
  // The audience no longer lists them.
  const json audience = Body(Client(kReadKey).Get("/v1/products/k02/audience?limit=100"));
  ASSERT_FALSE(audience["customers"].empty());
  for (const auto& m : audience["customers"]) EXPECT_NE(m["customer"], "a01");
  // Again, as a JSON body: still 200 (idempotent).
  r = c.Post("/v1/unsubscribe", json({{"customer", "a01"}, {"token", token}}).dump(),
             "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

TEST_F(HttpServerTest, WhatIfAudienceNeedsAColdStartMap) {
  Start();
  // The planted snapshot was trained without the audience model: nothing places a described
  // product.
  auto r = Client(kReadKey).Post("/v1/audience", R"({"product":{"category":"Home/Kitchen/Mugs"}})",
                                 "application/json");
  ErrorField(r, 409);
  EXPECT_EQ(
      ErrorField(Client(kReadKey).Post("/v1/audience", R"({"limit":3})", "application/json"), 400),
      "product");
  EXPECT_EQ(
      ErrorField(Client(kReadKey).Post("/v1/audience", R"({"product":null})", "application/json"),
                 400),
      "product");
  EXPECT_EQ(ErrorField(Client(kReadKey).Post("/v1/audience", R"({"product":{"price":-1}})",
                                             "application/json"),
                       400),
            "product.price");
}

// The same server on a shop with launches and a snapshot with the audience model.
class HttpLaunchTest : public HttpServerTest {
 protected:
  void SetUp() override {
    testing::OpenLaunchEngine(dir_, &store_, &engine_);
    ASSERT_TRUE(engine_);
  }
};

TEST_F(HttpLaunchTest, CalibratedAudiencesOfNewAndDescribedProducts) {
  Start();
  auto w = Client(kWriteKey);
  auto put = w.Put("/v1/products/kx9",
                   R"({"title":"Enamel mug deluxe","category":"Home/Kitchen/Mugs","price":14})",
                   "application/json");
  ASSERT_TRUE(put);
  ASSERT_EQ(put->status, 201) << put->body;
  auto c = Client(kReadKey);
  const json j = Body(c.Get("/v1/products/kx9/audience?limit=10&horizon_days=20"));
  ASSERT_EQ(j["customers"].size(), 10u) << j.dump();
  EXPECT_EQ(j["product"], "kx9");
  EXPECT_EQ(j["product_vector"], "attributes");
  EXPECT_EQ(j["calibrated"], true);
  EXPECT_EQ(j["horizon_days"], 20.0);
  double sum = 0;
  for (const auto& m : j["customers"]) {
    EXPECT_EQ(m["customer"].get<std::string>()[0], 'a') << m.dump();
    ASSERT_TRUE(m["probability"].is_number()) << m.dump();
    sum += m["probability"].get<double>();
    EXPECT_EQ(m["reason"]["kind"], "purchased");
    EXPECT_EQ(m["reason"]["text"],
              "because you bought " + m["reason"]["product"].get<std::string>());
  }
  EXPECT_NEAR(j["expected_buyers"].get<double>(), sum, 1e-6);
  // min_probability cuts the list below the given probability.
  const double third = j["customers"][2]["probability"];
  const json few =
      Body(c.Get("/v1/products/kx9/audience?limit=10&horizon_days=20&min_probability=" +
                 std::to_string(third)));
  EXPECT_LE(few["customers"].size(), 3u);
  EXPECT_GE(few["customers"].size(), 2u);  // the third's probability, printed to 6 digits
  EXPECT_EQ(ErrorField(c.Get("/v1/products/kx9/audience?horizon_days=0"), 400), "horizon_days");
  EXPECT_EQ(ErrorField(c.Get("/v1/products/kx9/audience?min_score=1e300"), 400), "min_score");
  EXPECT_EQ(ErrorField(c.Get("/v1/products/kx9/audience?min_probability=high"), 400),
            "min_probability");

  // What-if: a running shoe nobody stocks yet. Nothing is stored.
  auto what_if = c.Post(
      "/v1/audience",
      R"({"product":{"title":"Trail shoe pro","category":["Sports","Running","Shoes"]},"limit":5})",
      "application/json");
  ASSERT_TRUE(what_if);
  ASSERT_EQ(what_if->status, 200) << what_if->body;
  const json k = Body(what_if);
  ASSERT_EQ(k["customers"].size(), 5u);
  for (const auto& m : k["customers"]) {
    EXPECT_EQ(m["customer"].get<std::string>()[0], 'b') << m.dump();
  }
  EXPECT_EQ(store_->product_id_limit(), 71u);  // 70 and kx9
  EXPECT_EQ(
      ErrorField(c.Post("/v1/audience", R"({"product":{},"limit":0})", "application/json"), 400),
      "limit");
}

TEST_F(HttpServerTest, InsightsRoute) {
  Start();
  auto r = Client(kReadKey).Get("/v1/customers/a02/insights");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = Body(r);
  EXPECT_EQ(j["customer"], "a02");
  EXPECT_TRUE(j.contains("stage"));
  EXPECT_TRUE(j.contains("p_alive"));
  EXPECT_TRUE(j.contains("clv"));
  ErrorField(Client(kReadKey).Get("/v1/customers/nobody/insights"), 404);
}

// Requests keep succeeding while snapshots are published and swapped in underneath them.
TEST_F(HttpServerTest, HotSwapUnderConcurrentRequests) {
  Start();
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      auto c = Client(kReadKey);
      for (int i = 0; !stop.load(); ++i) {
        const std::string path =
            i % 2 == 0
                ? "/v1/customers/" + testing::PlantedId('a', (i + t) % 30) + "/recommendations?k=5"
                : "/v1/products/k0" + std::to_string(i % 10) + "/audience?limit=5";
        auto r = c.Get(path);
        if (r && r->status == 200 && Body(r)["model_version"].is_number()) {
          ++ok;
        } else {
          ++failed;
        }
      }
    });
  }
  auto admin = Client(kAdminKey);
  for (int v = 2; v <= 4; ++v) {
    ASSERT_EQ(testing::TrainPlantedSnapshot(*store_, dir_.Sub("snaps"), static_cast<uint64_t>(v)),
              v);
    auto r = admin.Post("/v1/admin/reload", "", "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(Body(r)["version"], v);
  }
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(ok.load(), 20);
  EXPECT_EQ(Body(Client().Get("/v1/model"))["version"], 4);
}

// With one worker and no queue, a second connection is refused with 503 while the first holds
// the worker, instead of waiting.
TEST_F(HttpServerTest, FullPoolAnswers503) {
  HttpServerOptions o;
  o.threads = 1;
  o.max_queued = 0;
  o.keep_alive_timeout_s = 5;
  Start(o);
  httplib::Client holder("127.0.0.1", server_->port());
  holder.set_keep_alive(true);
  auto first = holder.Get("/healthz");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  auto second = Client().Get("/healthz");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 503);
  EXPECT_EQ(Body(second)["error"]["code"], "overloaded");
  holder.stop();
  EXPECT_NE(server_->MetricsText().find("affinity_http_shed_total 1"), std::string::npos);
}

// docs/openapi.yaml documents exactly the routes the server registers (method and path).
TEST(OpenApi, DocumentsEveryRoute) {
  const std::string source =
      testing::ReadFile(std::string(AFFINITY_SOURCE_DIR) + "/server/src/http_server.cc");
  const std::string spec =
      testing::ReadFile(std::string(AFFINITY_SOURCE_DIR) + "/docs/openapi.yaml");
  ASSERT_FALSE(source.empty());
  ASSERT_FALSE(spec.empty());
  // Routes: Add("GET", "/healthz", ...) or Add("GET", R"(/v1/customers/([^/]+))", ...).
  // (Plain string scanning: GCC 12 warns inside std::regex under the sanitizers.)
  auto replace_all = [](std::string text, const std::string& from, const std::string& to) {
    for (size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos)) {
      text.replace(pos, from.size(), to);
      pos += to.size();
    }
    return text;
  };
  std::set<std::string> registered;
  for (size_t pos = source.find("Add(\""); pos != std::string::npos;
       pos = source.find("Add(\"", pos + 1)) {
    const size_t method_end = source.find('"', pos + 5);
    std::string method = source.substr(pos + 5, method_end - pos - 5);
    size_t start = source.find('"', method_end + 1);
    std::string path;
    if (source[start - 1] == 'R') {  // R"(...)"
      const size_t end = source.find(")\"", start + 2);
      path = source.substr(start + 2, end - start - 2);
    } else {
      const size_t end = source.find('"', start + 1);
      path = source.substr(start + 1, end - start - 1);
    }
    std::transform(method.begin(), method.end(), method.begin(), ::tolower);
    registered.insert(method + " " + replace_all(path, "([^/]+)", "{}"));
  }
  // Spec: "  /path:" lines under "paths:", then "    get:" lines under them.
  auto normalize = [](const std::string& path) {
    std::string out;
    for (size_t i = 0; i < path.size(); ++i) {
      if (path[i] == '{') {
        out += "{}";
        i = path.find('}', i);
      } else {
        out += path[i];
      }
    }
    return out;
  };
  std::set<std::string> documented;
  std::string current;
  std::istringstream lines(spec);
  bool in_paths = false;
  for (std::string line; std::getline(lines, line);) {
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
    if (line == "paths:") {
      in_paths = true;
      continue;
    }
    if (!line.empty() && line[0] != ' ' && line[0] != '#') in_paths = false;
    if (!in_paths || line.empty() || line.back() != ':') continue;
    if (line.rfind("  /", 0) == 0) {
      current = normalize(line.substr(2, line.size() - 3));
    } else {
      for (const char* method : {"get", "put", "post", "delete"}) {
        if (line == std::string("    ") + method + ":") documented.insert(method + (" " + current));
      }
    }
  }
  EXPECT_GE(registered.size(), 14u);
  EXPECT_EQ(registered, documented);
}

TEST(ApiKeyFile, RolesCommentsAndErrors) {
  testing::ScratchDir dir;
  auto keys = ReadApiKeyFile(dir.Write("keys",
                                       "# keys\n\nadmin-key-0123456789\n"
                                       "read  read-key-01234567890\r\n"
                                       "write write-key-0123456789\n"));
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  ASSERT_EQ(keys->size(), 3u);
  EXPECT_EQ((*keys)[0].role, Role::kAdmin);
  EXPECT_EQ((*keys)[1].role, Role::kRead);
  EXPECT_EQ((*keys)[1].key, "read-key-01234567890");
  EXPECT_EQ((*keys)[2].role, Role::kWrite);
  auto bad_role = ReadApiKeyFile(dir.Write("k2", "root abcdefghijklmnopq\n"));
  EXPECT_NE(bad_role.status().message().find(":1:"), std::string::npos);
  auto short_key = ReadApiKeyFile(dir.Write("k3", "\nshort\n"));
  EXPECT_NE(short_key.status().message().find(":2:"), std::string::npos);
  EXPECT_EQ(ReadApiKeyFile(dir.Sub("missing")).status().code(), StatusCode::kIOError);
}

// With one audience slot, concurrent audiences queue for it (in arrival order) and every one is
// answered in full, the same as alone; a negative slot count is refused.
TEST_F(HttpServerTest, AudiencesQueueForTheirSlots) {
  HttpServerOptions o;
  o.audience_slots = -1;
  EXPECT_EQ(o.Validate().field(), "audience_slots");
  o.audience_slots = 1;
  o.listen_backlog = 0;
  EXPECT_EQ(o.Validate().field(), "listen_backlog");
  o.listen_backlog = 1024;
  Start(o);
  const std::string alone = Client(kReadKey).Get("/v1/products/r02/audience?limit=50")->body;
  ASSERT_FALSE(
      Body(Client(kReadKey).Get("/v1/products/r02/audience?limit=50"))["customers"].empty());
  constexpr int kClients = 8;
  std::vector<std::future<std::vector<std::string>>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::async(std::launch::async, [this] {
      std::vector<std::string> bodies;
      for (int round = 0; round < 5; ++round) {
        auto r = Client(kReadKey).Get("/v1/products/r02/audience?limit=50");
        bodies.push_back(r ? std::to_string(r->status) + " " + r->body : "no answer");
      }
      return bodies;
    }));
  }
  for (auto& client : clients) {
    for (const std::string& body : client.get()) EXPECT_EQ(body, "200 " + alone);
  }
}

}  // namespace
}  // namespace affinity
