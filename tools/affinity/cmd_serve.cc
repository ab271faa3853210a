// affinity serve: the HTTP server. Every flag can also be set in a TOML/INI file given with
// --config (CLI11's config format: `threads = 32`, `[item-index]`-less flat keys).
#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>

#include "affinity/server/http_server.h"
#include "affinity/serving.h"
#include "affinity/store.h"
#include "commands.h"

namespace affinity::cli {
namespace {

struct ServeFlags {
  std::string db;
  std::string snapshots;
  std::string listen = "127.0.0.1:8080";
  std::string api_key_file;
  std::string item_index = "auto";
  std::string customer_index = "auto";
  ServingOptions serving;
  HttpServerOptions http;
  bool no_insights = false;
  int refresh_candidates_s = 300;
};

int Run(ServeFlags& f) {
  const size_t colon = f.listen.rfind(':');
  if (colon == std::string::npos) {
    return Fail(Status::InvalidArgument("--listen must be HOST:PORT", "listen"));
  }
  f.http.host = f.listen.substr(0, colon);
  try {
    f.http.port = std::stoi(f.listen.substr(colon + 1));
  } catch (...) {
    return Fail(Status::InvalidArgument("--listen must be HOST:PORT", "listen"));
  }
  if (!f.api_key_file.empty()) {
    auto keys = ReadApiKeyFile(f.api_key_file);
    if (!keys.ok()) return Fail(keys.status());
    f.http.keys = std::move(*keys);
  }
  auto item_kind = ParseVectorIndexKind(f.item_index);
  if (!item_kind.ok())
    return Fail(Status::InvalidArgument(item_kind.status().message(), "item-index"));
  auto customer_kind = ParseVectorIndexKind(f.customer_index);
  if (!customer_kind.ok()) {
    return Fail(Status::InvalidArgument(customer_kind.status().message(), "customer-index"));
  }
  f.serving.finish_erasures_at_start = true;  // a long-running process
  f.serving.item_index.kind = *item_kind;
  f.serving.customer_index.kind = *customer_kind;
  if (Status s = f.serving.Validate(); !s.ok()) return Fail(s);
  if (Status s = f.http.Validate(); !s.ok()) return Fail(s);
  if (f.refresh_candidates_s < 0) {
    return Fail(Status::InvalidArgument("--refresh-candidates must be >= 0", "refresh-candidates"));
  }

  // Signals are taken by one thread (sigwait), so block them before any other thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto store = Store::Open(f.db, StoreOptions{.create_if_missing = false});
  if (!store.ok()) return Fail(store.status());
  std::fprintf(stderr, "loading the model from %s and building indexes...\n", f.snapshots.c_str());
  auto engine = ServingEngine::Open(store->get(), f.snapshots, f.serving);
  if (!engine.ok()) return Fail(engine.status());
  const ModelInfo info = (*engine)->Info();
  auto describe = [](const char* name, const IndexInfo& i) {
    std::fprintf(stderr, "  %s index: %s, %lld vectors, built in %.1f s", name, i.kind.c_str(),
                 static_cast<long long>(i.size), i.build_seconds);
    if (i.kind != "exact") std::fprintf(stderr, ", recall@10 %.3f vs exact", i.recall_at_10);
    std::fprintf(stderr, "\n");
  };
  std::fprintf(stderr, "model v%06lld: %lld customers x %lld products, %d factors\n",
               static_cast<long long>(info.version), static_cast<long long>(info.customers),
               static_cast<long long>(info.products), info.factors);
  describe("product", info.item_index);
  describe("similar-product", info.similar_index);
  describe("customer", info.customer_index);
  std::fprintf(stderr, "  %lld products without a trained row have a vector (%.1f s)\n",
               static_cast<long long>(info.new_products), info.new_products_seconds);
  describe("new-product", info.new_product_index);

  HttpServer server(engine->get(), f.http);
  if (Status s = server.Bind(); !s.ok()) return Fail(s);

  std::thread insights;
  if (!f.no_insights) {
    // The shop-wide insights fit is a full scan: done beside serving; /insights answers 409 until
    // it is ready.
    insights = std::thread([&engine] {
      if (Status s = (*engine)->RefitInsights(); !s.ok()) {
        std::fprintf(stderr, "insights not available: %s\n", s.ToString().c_str());
      }
    });
  }
  // Every --refresh-candidates seconds, the audiences' candidate lists take in the purchases
  // added since (ServingEngine::RefreshCandidates; nothing to do without new purchases), and the
  // new products re-embedded since their index was made are indexed again when they are many
  // (ServingEngine::ReindexNewProducts).
  std::mutex refresh_mu;
  std::condition_variable refresh_cv;
  bool stopping = false;  // guarded by refresh_mu
  std::thread refresher;
  if (f.refresh_candidates_s > 0) {
    refresher = std::thread([&] {
      std::unique_lock lock(refresh_mu);
      while (!refresh_cv.wait_for(lock, std::chrono::seconds(f.refresh_candidates_s),
                                  [&] { return stopping; })) {
        lock.unlock();
        const auto start = std::chrono::steady_clock::now();
        if ((*engine)->RefreshCandidates()) {
          std::fprintf(
              stderr, "audience candidates refreshed with the purchases since (%.2f s)\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        }
        const auto reindex_start = std::chrono::steady_clock::now();
        if ((*engine)->ReindexNewProducts()) {
          std::fprintf(
              stderr, "new products re-embedded since the last index indexed (%.2f s)\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - reindex_start)
                  .count());
        }
        lock.lock();
      }
    });
  }
  std::thread signal_thread([&] {
    for (;;) {
      int sig = 0;
      if (sigwait(&signals, &sig) != 0) continue;
      if (sig == SIGHUP) {
        auto v = (*engine)->Reload();
        if (v.ok()) {
          std::fprintf(stderr, "SIGHUP: serving model v%06lld\n", static_cast<long long>(*v));
        } else {
          std::fprintf(stderr, "SIGHUP: reload failed: %s\n", v.status().ToString().c_str());
        }
        continue;
      }
      std::fprintf(stderr, "stopping (signal %d)\n", sig);
      server.Stop();
      return;
    }
  });
  std::printf("affinity serve: ready on http://%s:%d (model v%06lld, %s)\n", f.http.host.c_str(),
              server.port(), static_cast<long long>(info.version),
              f.http.keys.empty() ? "no API keys: writes disabled" : "writes need an API key");
  std::fflush(stdout);
  Status served = server.Serve();
  // Serve returned: wake the signal thread if it is still waiting (Serve can fail on its own).
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  {
    std::lock_guard lock(refresh_mu);
    stopping = true;
  }
  refresh_cv.notify_all();
  if (refresher.joinable()) refresher.join();
  if (insights.joinable()) insights.join();
  if (!served.ok()) return Fail(served);
  return 0;
}

}  // namespace

Command RegisterServe(CLI::App& app) {
  auto f = std::make_shared<ServeFlags>();
  CLI::App* sub = app.add_subcommand(
      "serve",
      "The HTTP API (docs/api.md): recommendations, similar products, audiences, events with\n"
      "online fold-in, customers and products, insights, hot-swap (POST /v1/admin/reload or\n"
      "SIGHUP) and Prometheus metrics.");
  sub->set_config("--config", "", "Read flags from this TOML/INI file");
  sub->add_option("--db", f->db, "Store directory")->required();
  sub->add_option("--snapshots", f->snapshots, "Snapshot root directory")->required();
  sub->add_option("--listen", f->listen, "HOST:PORT (port 0: any free port)")
      ->capture_default_str();
  sub->add_option("--api-key-file", f->api_key_file,
                  "Keys, one per line: KEY or ROLE KEY (admin, write, read). None: writes and "
                  "customer reads refused");
  sub->add_flag("--private-reads", f->http.private_reads,
                "Catalog and model reads need a key too (customer data always does)");
  sub->add_flag("--public-customer-reads", f->http.public_customer_reads,
                "Customer data (recommendations, audiences, profiles, interests, insights) "
                "needs no key: anyone who can reach the port reads any customer's");
  sub->add_option("--threads", f->http.threads, "Worker threads (= connections served at once)")
      ->capture_default_str();
  sub->add_option("--max-queued", f->http.max_queued,
                  "Connections waiting for a worker before new ones get 503")
      ->capture_default_str();
  sub->add_option("--max-body-bytes", f->http.max_body_bytes, "Largest request body")
      ->capture_default_str();
  sub->add_option("--max-batch", f->http.max_batch, "Largest POST /v1/events batch")
      ->capture_default_str();
  sub->add_option("--audience-slots", f->http.audience_slots,
                  "Audiences computed at once, the rest wait in order (0: twice the cores)")
      ->capture_default_str();
  sub->add_option("--keep-alive-timeout", f->http.keep_alive_timeout_s, "Idle keep-alive seconds")
      ->capture_default_str();
  sub->add_option("--item-index", f->item_index, "Product index: auto, exact, hnsw or ivf")
      ->capture_default_str();
  sub->add_option("--item-exact-limit", f->serving.item_index.exact_limit,
                  "auto: exact product search up to this many products")
      ->capture_default_str();
  sub->add_option("--hnsw-ef-search", f->serving.item_index.hnsw_ef_search,
                  "HNSW search breadth, with --item-index hnsw (recall vs speed)")
      ->capture_default_str();
  sub->add_option("--item-ivf-nprobe", f->serving.item_index.ivf_nprobe,
                  "IVF cells scanned per product query (recall vs speed)")
      ->capture_default_str();
  sub->add_option("--customer-index", f->customer_index, "Customer index: auto, exact, hnsw or ivf")
      ->capture_default_str();
  sub->add_option("--customer-exact-limit", f->serving.customer_index.exact_limit,
                  "auto: exact customer search up to this many customers")
      ->capture_default_str();
  sub->add_option("--ivf-nprobe", f->serving.customer_index.ivf_nprobe,
                  "IVF cells scanned per audience query (recall vs speed)")
      ->capture_default_str();
  sub->add_option("--max-k", f->serving.max_k, "Cap on k for recommendations and similar")
      ->capture_default_str();
  sub->add_option("--max-audience", f->serving.max_audience, "Cap on audience limit")
      ->capture_default_str();
  sub->add_option("--audience-candidates", f->serving.audience_candidates,
                  "Audience candidates per source at most, as a multiple of the limit")
      ->capture_default_str();
  sub->add_option("--prior-buyers", f->serving.prior_buyers,
                  "n0 of a new product's blend of attribute and buyer vectors")
      ->capture_default_str();
  sub->add_flag("--no-insights", f->no_insights, "Do not fit the insights model at start");
  sub->add_option("--refresh-candidates", f->refresh_candidates_s,
                  "Seconds between refreshes of the audience candidate lists with the purchases "
                  "since, and between checks whether new products re-embedded since their index "
                  "are many enough to index again (0: only at start and reload)")
      ->capture_default_str();
  return [f] { return Run(*f); };
}

}  // namespace affinity::cli
