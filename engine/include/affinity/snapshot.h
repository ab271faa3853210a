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
#include <unordered_set>
#include <vector>

#include "affinity/models/calibration.h"
#include "affinity/models/cold_start.h"
#include "affinity/models/ials.h"
#include "affinity/models/recommender.h"
#include "affinity/status.h"

namespace affinity {

class Store;

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
// file name; FailedPrecondition if another publish (or an erasure, ForgetInPublishedSnapshot)
// still holds the root's lock after `wait_seconds`; IOError (naming the path) if any write, fsync
// or rename fails; the previous CURRENT then stays in force.
Result<int64_t> PublishSnapshot(const std::string& root, const Snapshot& snapshot,
                                double wait_seconds = 0);

// Erases the customers whose external ids are in `customers` from the published version
// `version` under `root` (ForgetInSnapshot, then the version is rewritten in place; created_at
// and CURRENT unchanged). The new files go into a temporary directory that is then exchanged with
// the version's directory in one atomic rename (renameat2 RENAME_EXCHANGE), so the version is
// whole, old or new, at every instant; a server loading it at that instant may read a file of the
// other side and fail with Corruption (its model stays as it was; load again). The root's lock is
// held from the load to the exchange, and leftovers of interrupted erasures are removed first
// (also when none of the customers is in the version). Returns the ids found (nothing is written
// when there are none). NotFound if the root or the version does not exist; FailedPrecondition if
// a publish or another erasure still holds the lock after `wait_seconds`; Corruption for a
// damaged version; IOError (naming the path) if a write, fsync, the exchange or a removal fails
// (the version is then old or new, whole).
Result<std::vector<std::string>> ForgetInPublishedSnapshot(
    const std::string& root, int64_t version, const std::unordered_set<std::string>& customers,
    double wait_seconds = 0);

// Removes the customers whose external ids are in `customers` from `snapshot` (in memory): each
// one's id becomes "" (a hole, as for an id nobody has), their factor row zeros, and their row of
// insights.jsonl is dropped. The manifest's "forgotten_customers" counts them (a count only).
// Returns the external ids found, each once. The model's other parts (item factors, the
// cold-start map, the audience model) are aggregates over every customer and stay as trained.
std::vector<std::string> ForgetInSnapshot(Snapshot* snapshot,
                                          const std::unordered_set<std::string>& customers);

// The customers of `snapshot` that `store` no longer has under the same internal id (forgotten
// since the snapshot's ids were read, e.g. during a training run that read the store before a
// DELETE), removed with ForgetInSnapshot. `store` should be opened after that read (a read-only
// store sees the writes made before it was opened). Returns how many. The store's errors.
Result<int64_t> ForgetGoneCustomers(const Store& store, Snapshot* snapshot);

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
