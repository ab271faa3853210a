// The serving engine's routes without HTTP: what one request costs on one thread, on the
// synthetic shop of the load benchmark (serve_load.sh), so that a change to the compute can be
// measured apart from the network stack and wrk (which share this machine's 2 cores).
//
//   build/benchmarks/make_serving_shop /tmp/affinity-load 1000000 100000 3 64   (once, ~1 min)
//   AFFINITY_BENCH_SHOP=/tmp/affinity-load build/benchmarks/bench_serving
//
// Opening the shop (store, snapshot, indexes) takes ~30 s before the first benchmark. Ids are
// drawn at random as wrk does (customers c0.., products p0..) over the store's id ranges. The
// store is opened read-only, so a server may run on it meanwhile (not while measuring).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "affinity/serving.h"
#include "affinity/store.h"

namespace affinity {
namespace {

struct Shop {
  std::unique_ptr<Store> store;
  std::unique_ptr<ServingEngine> engine;
  int64_t customers = 0, products = 0;
};

Shop* OpenShop() {
  static Shop* shop = [] {
    const char* env = std::getenv("AFFINITY_BENCH_SHOP");
    const std::string dir = env ? env : "/tmp/affinity-load";
    StoreOptions options;
    options.read_only = true;
    auto store = Store::Open(dir + "/db", options);
    if (!store.ok()) {
      std::fprintf(stderr, "bench_serving: %s (make the shop with make_serving_shop)\n",
                   store.status().ToString().c_str());
      std::exit(2);
    }
    auto s = new Shop;
    s->store = std::move(*store);
    auto engine = ServingEngine::Open(s->store.get(), dir + "/snapshots", ServingOptions{});
    if (!engine.ok()) {
      std::fprintf(stderr, "bench_serving: %s\n", engine.status().ToString().c_str());
      std::exit(2);
    }
    s->engine = std::move(*engine);
    s->customers = static_cast<int64_t>(s->store->customer_id_limit());
    s->products = static_cast<int64_t>(s->store->product_id_limit());
    return s;
  }();
  return shop;
}

void BM_Recommendations(benchmark::State& state) {
  Shop* shop = OpenShop();
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<int64_t> customer(0, shop->customers - 1);
  RecommendRequest request;
  request.k = 10;
  for (auto _ : state) {
    request.customer = "c" + std::to_string(customer(rng));
    auto r = shop->engine->Recommend(request);
    if (!r.ok()) state.SkipWithError(r.status().ToString().c_str());
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_Recommendations)->Unit(benchmark::kMicrosecond);

void BM_Similar(benchmark::State& state) {
  Shop* shop = OpenShop();
  std::mt19937_64 rng(2);
  std::uniform_int_distribution<int64_t> product(0, shop->products - 1);
  for (auto _ : state) {
    auto r = shop->engine->Similar("p" + std::to_string(product(rng)), 10);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_Similar)->Unit(benchmark::kMicrosecond);

// The HTTP route's work: the audience and its JSON document.
void BM_Audience(benchmark::State& state) {
  Shop* shop = OpenShop();
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int64_t> product(0, shop->products - 1);
  AudienceRequest request;
  request.limit = static_cast<int>(state.range(0));
  for (auto _ : state) {
    request.product = "p" + std::to_string(product(rng));
    auto r = shop->engine->Audience(request);
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      break;
    }
    std::string json = AudienceResultJsonText(*r, &request.product);
    benchmark::DoNotOptimize(json);
  }
}
BENCHMARK(BM_Audience)->Arg(1000)->Arg(100)->Unit(benchmark::kMicrosecond);

// Writing one answer's JSON alone (the server's share of an audience after the engine's):
// the audience of one product, written over and over.
void BM_AudienceJson(benchmark::State& state) {
  Shop* shop = OpenShop();
  AudienceRequest request;
  request.limit = static_cast<int>(state.range(0));
  request.product = "p" + std::to_string(shop->products / 2);
  auto r = shop->engine->Audience(request);
  if (!r.ok()) {
    state.SkipWithError(r.status().ToString().c_str());
    return;
  }
  size_t bytes = 0;
  for (auto _ : state) {
    std::string json = AudienceResultJsonText(*r, &request.product);
    bytes += json.size();
    benchmark::DoNotOptimize(json);
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_AudienceJson)->Arg(1000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace affinity

BENCHMARK_MAIN();
