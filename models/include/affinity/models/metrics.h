// Offline top-k evaluation of a Recommender: per-user ranking metrics and the loop that scores
// every test user, ranks the items they did not train on, and averages the metrics.
//
// Definitions (those of LightGCN, He et al. 2020, so numbers compare with the literature). For a
// ranked list L (best first), a relevant set R (the user's test items) and a cut-off k:
//   recall@k  = |L[0, k) ∩ R| / |R|                     (NOT divided by min(k, |R|))
//   ndcg@k    = DCG / IDCG with binary gains,
//               DCG  = Σ_{i < k, L[i] ∈ R} 1 / log2(i + 2),
//               IDCG = Σ_{i < min(|R|, k)} 1 / log2(i + 2)
//   hitrate@k = 1 if L[0, k) ∩ R is non-empty, else 0
//   coverage@k (over all evaluated users) = |∪_u L_u[0, k)| / number of items.
// An item repeated in L counts once, at its first position; if L has fewer than k items, only
// those are looked at (IDCG still runs over min(|R|, k) items).
//
// Thread safety: every function here is reentrant; EvaluateTopK calls model.ScoreBatch from
// several threads at once, which the Recommender contract allows after Fit.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "affinity/models/csr_matrix.h"
#include "affinity/models/recommender.h"
#include "affinity/status.h"

namespace affinity {

// Per-user metrics. `ranked`: item ids, best first. `relevant`: the user's relevant items,
// sorted ascending without duplicates (as the indices of a CsrMatrix row are; checked by assert
// in debug builds only). Each returns a value in [0, 1], and 0 when `relevant` is empty or
// k <= 0. They cannot fail.
double RecallAt(std::span<const int32_t> ranked, std::span<const int32_t> relevant, int k);
double NdcgAt(std::span<const int32_t> ranked, std::span<const int32_t> relevant, int k);
double HitRateAt(std::span<const int32_t> ranked, std::span<const int32_t> relevant, int k);

// Writes into `out` (cleared first) the ids of the `k` best-scored items of `scores` (item i has
// score scores[i]), best first, leaving out the items in `excluded` (sorted ascending; ids out of
// range are ignored). Order: higher score first, equal scores by lower id, so the result is
// deterministic; a NaN score ranks below every number, as -infinity does. Fewer than `k` ids
// come back when fewer items remain; none for k <= 0. O(items · log k); cannot fail.
void RankTopK(std::span<const float> scores, std::span<const int32_t> excluded, int k,
              std::vector<int32_t>* out);

struct EvalOptions {
  // Cut-offs k at which every metric is reported. Default {10, 20}. Ranking cost grows with
  // log(max k); each k adds four entries to EvalResult::metrics.
  std::vector<int> ks = {10, 20};
  // Worker threads over user batches; 0 = all cores (OpenMP's default). Default 0.
  int num_threads = 0;
  // Users scored per Recommender::ScoreBatch call. Default 1024. Larger batches let the model
  // use bigger matrix products, but each thread holds a batch_size x items float matrix
  // (1024 x 50,000 items = 200 MB per thread).
  int batch_size = 1024;

  // InvalidArgument naming the field when ks is empty, has a k < 1 or a repeated k, or when
  // num_threads < 0 or batch_size < 1.
  Status Validate() const;
};

struct EvalResult {
  // "recall@K", "ndcg@K", "hitrate@K" (means over evaluated users) and "coverage@K" for each K
  // in EvalOptions::ks, e.g. "recall@10", "ndcg@20".
  std::map<std::string, double> metrics;
  // Users (rows) with at least one test item: the denominator of the means.
  int64_t users_evaluated = 0;
  // Wall-clock time of the evaluation, in seconds.
  double seconds = 0;
};

// Evaluates `model` (already fitted on `train`) on held-out `test` interactions. For every user
// (row) with at least one test entry, scores all items with model.ScoreBatch (in batches of
// options.batch_size users, one batch per thread at a time), ranks them with RankTopK leaving
// out the user's train items, and scores the top max(ks) against the user's test items (every
// stored test entry is relevant, whatever its weight). A test item that is also a train item of
// the same user can never be hit, yet still counts in |R|. The result does not depend on the
// thread count or batch size: per-user values are summed in user order.
//
// Errors: InvalidArgument for invalid options, train and test of different shapes (rows or
// cols), a malformed matrix (indptr size != rows + 1) or no user with a test item;
// FailedPrecondition if the model's score matrix is not users x train.cols.
// Preconditions: model.Fit succeeded on a matrix with train.rows users and train.cols items.
// Thread safety: see the file comment; `model`, `train` and `test` must not change meanwhile.
Result<EvalResult> EvaluateTopK(const Recommender& model, const CsrMatrix& train,
                                const CsrMatrix& test, const EvalOptions& options);

}  // namespace affinity
