// Model snapshots: the versioned, immutable directories a training run publishes and the server
// loads. Layout and file formats are documented in docs/snapshots.md.
//
//   <root>/CURRENT              the current version's directory name ("v000003"), one line
//   <root>/v000003/manifest.json  version, created_at, options, metrics, counts, file checksums
//   <root>/v000003/user_factors.f32, item_factors.f32, customers.ids, products.ids
//
// Publishing is atomic: files are written into a temporary directory, fsync'ed, the directory is
// renamed to its version name, then CURRENT is replaced by rename. A crash at any point leaves
// CURRENT naming a complete snapshot (or absent, before the first publish); stray temporary
// directories are ignored and cleaned by the next publish.
//
// Thread safety: functions are reentrant. Publishers to one root exclude each other through
// <root>/LOCK (flock): a second concurrent publish fails with FailedPrecondition.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "affinity/models/recommender.h"
#include "affinity/status.h"

namespace affinity {

struct Snapshot {
  int64_t version = 0;
  std::string created_at;                 // ISO 8601
  nlohmann::json manifest;                // everything in manifest.json
  RowMajorMatrixXf user_factors;          // customers x d, by internal customer id
  RowMajorMatrixXf item_factors;          // products x d, by internal product id
  std::vector<std::string> customer_ids;  // internal id -> external id ("" for holes)
  std::vector<std::string> product_ids;
  // Further files (name -> content), e.g. "insights.jsonl"; checksummed like the others. Names
  // are plain file names (no '/'), not those of the files above.
  std::map<std::string, std::string> extra_files;
};

// Writes `snapshot` as the next version under `root` (created if missing) and makes it current.
// snapshot.version is ignored and the assigned version returned. InvalidArgument for a bad extra
// file name; FailedPrecondition if another publish holds the root's lock; IOError (naming the
// path) if any write, fsync or rename fails; the previous CURRENT then stays in force.
Result<int64_t> PublishSnapshot(const std::string& root, const Snapshot& snapshot);

// Loads a snapshot: `version`, or the current one. NotFound if there is none; Corruption if a
// file's checksum or header does not match the manifest.
Result<Snapshot> LoadSnapshot(const std::string& root, std::optional<int64_t> version = {});

// Versions present under `root`, ascending.
Result<std::vector<int64_t>> ListSnapshots(const std::string& root);

}  // namespace affinity
