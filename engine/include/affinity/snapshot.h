// Model snapshots: the versioned, immutable directories a training run publishes and the server
// loads. Layout and file formats are documented in docs/snapshots.md.
//
//   <root>/CURRENT              the current version's directory name ("v000003"), one line
//   <root>/v000003/manifest.json  version, created_at, options, metrics, counts, file checksums
//   <root>/v000003/user_factors.f32, item_factors.f32, customers.ids, products.ids,
//                  item_weights.f32 (optional)
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

#include "affinity/models/calibration.h"
#include "affinity/models/cold_start.h"
#include "affinity/models/ials.h"
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
  // a_i, the all-pairs weight of each item in training (IalsModel::item_weights()): fold-in needs
  // it to solve a customer's row exactly as training did. Optional (empty: not stored, and
  // fold-in uses α₀ for every trained item); when set, one entry per product.
  Eigen::VectorXf item_weights;
  // The audience model for new products (affinity/new_products.h), optional: the cold-start map
  // (files cold_start.json and cold_start.f32; ridge only), the calibrated logistic model and the
  // model's score scale σ (manifest "audience").
  std::optional<ColdStartModel> cold_start;
  std::optional<LogisticCalibration> audience;
  double score_scale = 1;
  // Further files (name -> content), e.g. "insights.jsonl"; checksummed like the others. Names
  // are plain file names (no '/'), not those of the files above.
  std::map<std::string, std::string> extra_files;
};

// Writes `snapshot` as the next version under `root` (created if missing) and makes it current.
// snapshot.version is ignored and the assigned version returned. InvalidArgument for a bad extra
// file name; FailedPrecondition if another publish holds the root's lock; IOError (naming the
// path) if any write, fsync or rename fails; the previous CURRENT then stays in force.
Result<int64_t> PublishSnapshot(const std::string& root, const Snapshot& snapshot);

// The model options as written into a manifest ("options"), and back. IalsOptionsFromJson fills
// the fields present over the defaults; InvalidArgument naming the key for a wrong type or value.
nlohmann::json IalsOptionsJson(const IalsOptions& options);
Result<IalsOptions> IalsOptionsFromJson(const nlohmann::json& json);

// Loads a snapshot: `version`, or the current one. NotFound if there is none; Corruption if a
// file's checksum or header does not match the manifest.
Result<Snapshot> LoadSnapshot(const std::string& root, std::optional<int64_t> version = {});

// The version CURRENT names (reads one small file). NotFound if there is none; Corruption if
// CURRENT names no version.
Result<int64_t> CurrentSnapshotVersion(const std::string& root);

// Versions present under `root`, ascending.
Result<std::vector<int64_t>> ListSnapshots(const std::string& root);

}  // namespace affinity
