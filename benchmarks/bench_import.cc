// Import throughput on the real Online Retail file, and, in the same run, a raw RocksDB
// WriteBatch loop that writes the same number of entries and bytes, so that the importer's
// overhead (gzip, CSV parsing, validation, id resolution, dedup lookups, profile upserts) is a
// ratio rather than a machine-dependent number.
//
//   build/benchmarks/bench_import --benchmark_repetitions=3 --benchmark_report_aggregates_only
//
// The data file defaults to ../shared/data/online-retail/online_retail.csv.gz beside the
// checkout; set AFFINITY_ONLINE_RETAIL to use another path.
#include <benchmark/benchmark.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

#include "affinity/import.h"

namespace affinity {
namespace {

std::string OnlineRetailPath() {
  if (const char* env = std::getenv("AFFINITY_ONLINE_RETAIL")) return env;
  return std::string(AFFINITY_SHARED_DATA_DIR) + "/online-retail/online_retail.csv.gz";
}

std::string ScratchPath(const char* name) {
  return (std::filesystem::temp_directory_path() /
          (std::string("affinity_bench_") + name + "_" + std::to_string(getpid())))
      .string();
}

// What the import wrote, for the raw loop to match.
struct Written {
  int64_t entries = 0;  // events + their id-index entries
  int64_t bytes = 0;
  int64_t rows = 0;
} g_written;

void BM_Import_OnlineRetail(benchmark::State& state) {
  const std::string path = OnlineRetailPath();
  if (!std::filesystem::exists(path)) {
    state.SkipWithError(("missing " + path).c_str());
    return;
  }
  ImportReport report;
  for (auto _ : state) {
    state.PauseTiming();
    std::string db = ScratchPath("import");
    std::filesystem::remove_all(db);
    auto store = Store::Open(db, {});
    if (!store.ok()) {
      state.SkipWithError(store.status().ToString().c_str());
      return;
    }
    state.ResumeTiming();
    auto reports = ImportPresetFiles(**store, ImportPreset::kOnlineRetail, {path}, {});
    if (!reports.ok()) {
      state.SkipWithError(reports.status().ToString().c_str());
      return;
    }
    report = (*reports)[0];
    state.PauseTiming();
    store->reset();
    std::filesystem::remove_all(db);
    state.ResumeTiming();
  }
  g_written = {2 * report.events_written, report.bytes_written, report.rows};
  state.SetItemsProcessed(state.iterations() * report.rows);
  state.counters["rows"] = static_cast<double>(report.rows);
  state.counters["events"] = static_cast<double>(report.events_written);
  state.counters["MB_written"] = static_cast<double>(report.bytes_written) / 1e6;
}
BENCHMARK(BM_Import_OnlineRetail)->Unit(benchmark::kMillisecond)->UseRealTime();

// The same number of entries and bytes as the import, as 20-byte keys and values filling the
// rest, in WriteBatches of 20,000 entries with the WAL on. Arg 0: keys in random order (the
// costlier case for compaction); arg 1: keys in ascending order (the cheapest case). The
// import's own keys are in between: event keys by customer in file order, index keys ascending.
void BM_RocksDB_RawWriteBatch(benchmark::State& state) {
  if (g_written.entries == 0) {
    state.SkipWithError("run BM_Import_OnlineRetail first (it sets the byte count)");
    return;
  }
  const int64_t entries = g_written.entries;
  const int64_t key_size = 20;
  const int64_t value_size = std::max<int64_t>(1, g_written.bytes / entries - key_size);
  std::mt19937_64 rng(42);
  std::string value(static_cast<size_t>(value_size), 'v');
  for (auto _ : state) {
    state.PauseTiming();
    std::string path = ScratchPath("raw");
    std::filesystem::remove_all(path);
    rocksdb::Options options;
    options.create_if_missing = true;
    options.IncreaseParallelism(2);
    options.OptimizeLevelStyleCompaction();
    rocksdb::DB* raw = nullptr;
    if (!rocksdb::DB::Open(options, path, &raw).ok()) {
      state.SkipWithError("cannot open raw RocksDB");
      return;
    }
    std::unique_ptr<rocksdb::DB> db(raw);
    state.ResumeTiming();
    rocksdb::WriteBatch batch;
    char key[key_size];
    for (int64_t i = 0; i < entries; ++i) {
      uint64_t a = state.range(0) == 0 ? rng() : 0;
      uint64_t b = state.range(0) == 0 ? rng() : __builtin_bswap64(static_cast<uint64_t>(i));
      std::memcpy(key, &a, 8);
      std::memcpy(key + 8, &b, 8);
      std::memcpy(key + 16, &i, 4);
      batch.Put(rocksdb::Slice(key, key_size), value);
      if (batch.Count() == 20000) {
        if (!db->Write(rocksdb::WriteOptions(), &batch).ok()) state.SkipWithError("write failed");
        batch.Clear();
      }
    }
    if (batch.Count() > 0 && !db->Write(rocksdb::WriteOptions(), &batch).ok()) {
      state.SkipWithError("write failed");
    }
    state.PauseTiming();
    db.reset();
    std::filesystem::remove_all(path);
    state.ResumeTiming();
  }
  // Items = the import's rows, so items_per_second compares directly with the import's rows/s.
  state.SetItemsProcessed(state.iterations() * g_written.rows);
  state.counters["entries"] = static_cast<double>(entries);
  state.counters["MB_written"] = static_cast<double>(entries * (key_size + value_size)) / 1e6;
}
BENCHMARK(BM_RocksDB_RawWriteBatch)
    ->ArgName("sequential")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace affinity

BENCHMARK_MAIN();
