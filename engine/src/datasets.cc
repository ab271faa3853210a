#include "affinity/datasets.h"

#include <algorithm>
#include <charconv>
#include <vector>

#include "row_source.h"

namespace affinity {
namespace {

struct Pairs {
  std::vector<std::pair<int32_t, int32_t>> entries;
  int32_t max_user = -1, max_item = -1;
};

Status ReadPairs(const std::string& path, Pairs* out) {
  AFFINITY_ASSIGN_OR_RETURN(auto reader, LineReader::Open(path));
  std::string line;
  while (true) {
    AFFINITY_ASSIGN_OR_RETURN(bool got, reader->Next(&line));
    if (!got) break;
    const char* p = line.data();
    const char* end = p + line.size();
    int32_t user = -1;
    bool first = true;
    while (p < end) {
      while (p < end && (*p == ' ' || *p == '\t')) ++p;
      if (p == end) break;
      int32_t id = 0;
      auto [next, ec] = std::from_chars(p, end, id);
      if (ec != std::errc() || id < 0 || (next < end && *next != ' ' && *next != '\t')) {
        return Status::InvalidArgument(path + ":" + std::to_string(reader->line_number()) +
                                       ": expected non-negative integer ids");
      }
      p = next;
      if (first) {
        user = id;
        first = false;
        out->max_user = std::max(out->max_user, user);
      } else {
        out->entries.emplace_back(user, id);
        out->max_item = std::max(out->max_item, id);
      }
    }
  }
  return Status::Ok();
}

// The format's ids are dense 0..N-1; an id far beyond the number of entries is a typo that would
// size a huge matrix.
Status CheckDense(int64_t rows, int64_t cols, size_t entries) {
  const int64_t limit = 16 * static_cast<int64_t>(entries) + 1024;
  if (rows > limit || cols > limit || cols > INT32_MAX - 1) {
    return Status::InvalidArgument("ids are not dense: " + std::to_string(rows) + " users and " +
                                   std::to_string(cols) + " items for " + std::to_string(entries) +
                                   " interactions");
  }
  return Status::Ok();
}

Result<CsrMatrix> ToCsr(Pairs& pairs, int64_t rows, int64_t cols) {
  std::sort(pairs.entries.begin(), pairs.entries.end());
  pairs.entries.erase(std::unique(pairs.entries.begin(), pairs.entries.end()), pairs.entries.end());
  CsrBuilder builder(cols);
  for (const auto& [u, i] : pairs.entries) AFFINITY_RETURN_IF_ERROR(builder.Add(u, i, 1.0f));
  return builder.Finish(rows);
}

}  // namespace

Result<CsrMatrix> ReadLightGcnFile(const std::string& path) {
  Pairs pairs;
  AFFINITY_RETURN_IF_ERROR(ReadPairs(path, &pairs));
  const int64_t rows = int64_t{1} + pairs.max_user, cols = int64_t{1} + pairs.max_item;
  AFFINITY_RETURN_IF_ERROR(CheckDense(rows, cols, pairs.entries.size()));
  return ToCsr(pairs, rows, cols);
}

Result<LightGcnSplit> ReadLightGcnSplit(const std::string& train_path,
                                        const std::string& test_path) {
  Pairs train, test;
  AFFINITY_RETURN_IF_ERROR(ReadPairs(train_path, &train));
  AFFINITY_RETURN_IF_ERROR(ReadPairs(test_path, &test));
  const int64_t rows = int64_t{1} + std::max(train.max_user, test.max_user);
  const int64_t cols = int64_t{1} + std::max(train.max_item, test.max_item);
  AFFINITY_RETURN_IF_ERROR(CheckDense(rows, cols, train.entries.size() + test.entries.size()));
  LightGcnSplit split;
  AFFINITY_ASSIGN_OR_RETURN(split.train, ToCsr(train, rows, cols));
  AFFINITY_ASSIGN_OR_RETURN(split.test, ToCsr(test, rows, cols));
  return split;
}

}  // namespace affinity
