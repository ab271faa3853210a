#include "affinity/models/metrics.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <chrono>
#include <cmath>
#include <limits>
#include <set>
#include <utility>

namespace affinity {
namespace {

int Threads(int requested) { return requested > 0 ? requested : omp_get_max_threads(); }

// The column indices of row `r`: sorted ascending by the CsrMatrix invariant.
std::span<const int32_t> RowItems(const CsrMatrix& m, int64_t r) {
  const int64_t begin = m.RowBegin(r);
  return {m.indices.data() + begin, static_cast<size_t>(m.RowEnd(r) - begin)};
}

// Calls f(i) for every position i < k of `ranked` that holds a relevant item seen there for the
// first time (a repeated item counts once, at its first position).
template <typename F>
void ForEachHit(std::span<const int32_t> ranked, std::span<const int32_t> relevant, int k, F f) {
  assert(std::is_sorted(relevant.begin(), relevant.end()));
  if (k <= 0 || relevant.empty()) return;
  const size_t n = std::min(ranked.size(), static_cast<size_t>(k));
  for (size_t i = 0; i < n; ++i) {
    const int32_t item = ranked[i];
    if (!std::binary_search(relevant.begin(), relevant.end(), item)) continue;
    // Only hits pay for this O(i) scan, so at most O(k · hits) per call.
    if (std::find(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(i), item) !=
        ranked.begin() + static_cast<std::ptrdiff_t>(i)) {
      continue;
    }
    f(i);
  }
}

// 1 / log2(i + 2): the discount of 0-based rank i.
double Discount(size_t i) { return 1.0 / std::log2(static_cast<double>(i) + 2.0); }

struct Scored {
  float score;
  int32_t item;
};

// The ranking order: higher score first, then lower id. A strict total order as long as no score
// is NaN (RankTopK maps NaN to -inf) and ids are distinct.
bool Better(const Scored& a, const Scored& b) {
  return a.score > b.score || (a.score == b.score && a.item < b.item);
}

}  // namespace

double RecallAt(std::span<const int32_t> ranked, std::span<const int32_t> relevant, int k) {
  // |L[0, k) ∩ R| / |R|.
  int64_t hits = 0;
  ForEachHit(ranked, relevant, k, [&](size_t) { ++hits; });
  return hits == 0 ? 0.0 : static_cast<double>(hits) / static_cast<double>(relevant.size());
}

double NdcgAt(std::span<const int32_t> ranked, std::span<const int32_t> relevant, int k) {
  // DCG = Σ_{i<k, L[i]∈R} 1/log2(i+2);  IDCG = Σ_{i<min(|R|,k)} 1/log2(i+2).
  double dcg = 0;
  ForEachHit(ranked, relevant, k, [&](size_t i) { dcg += Discount(i); });
  if (dcg == 0) return 0.0;
  const size_t ideal_hits = std::min(relevant.size(), static_cast<size_t>(k));
  double idcg = 0;
  for (size_t i = 0; i < ideal_hits; ++i) idcg += Discount(i);
  return dcg / idcg;
}

double HitRateAt(std::span<const int32_t> ranked, std::span<const int32_t> relevant, int k) {
  bool hit = false;
  ForEachHit(ranked, relevant, k, [&](size_t) { hit = true; });
  return hit ? 1.0 : 0.0;
}

void RankTopK(std::span<const float> scores, std::span<const int32_t> excluded, int k,
              std::vector<int32_t>* out) {
  out->clear();
  if (k <= 0) return;
  // A bounded heap whose front is the worst of the best k seen so far. Items arrive in
  // ascending id order, so a newcomer with a score equal to the front's ranks below it (the
  // front has the lower id): only a strictly higher score gets in.
  std::vector<Scored> heap;
  heap.reserve(std::min(scores.size(), static_cast<size_t>(k)));
  const size_t want = static_cast<size_t>(k);
  size_t next_excluded = 0;
  const int32_t n = static_cast<int32_t>(scores.size());
  for (int32_t i = 0; i < n; ++i) {
    // Merge walk over the sorted exclusion list (ids below i, i.e. negative ones, are skipped).
    while (next_excluded < excluded.size() && excluded[next_excluded] < i) ++next_excluded;
    if (next_excluded < excluded.size() && excluded[next_excluded] == i) continue;
    float s = scores[static_cast<size_t>(i)];
    if (std::isnan(s)) s = -std::numeric_limits<float>::infinity();
    if (heap.size() < want) {
      heap.push_back({s, i});
      std::push_heap(heap.begin(), heap.end(), Better);
    } else if (s > heap.front().score) {
      std::pop_heap(heap.begin(), heap.end(), Better);
      heap.back() = {s, i};
      std::push_heap(heap.begin(), heap.end(), Better);
    }
  }
  std::sort_heap(heap.begin(), heap.end(), Better);  // best first
  out->reserve(heap.size());
  for (const Scored& e : heap) out->push_back(e.item);
}

Status EvalOptions::Validate() const {
  auto bad = [](const char* field, const std::string& why) {
    return Status::InvalidArgument(std::string(field) + " " + why, field);
  };
  if (ks.empty()) return bad("ks", "must name at least one cut-off");
  std::set<int> seen;
  for (int k : ks) {
    if (k < 1) return bad("ks", "must all be >= 1, got " + std::to_string(k));
    if (!seen.insert(k).second) return bad("ks", "repeats " + std::to_string(k));
  }
  if (num_threads < 0) return bad("num_threads", "must be >= 0");
  if (batch_size < 1) return bad("batch_size", "must be >= 1");
  return Status::Ok();
}

Result<EvalResult> EvaluateTopK(const Recommender& model, const CsrMatrix& train,
                                const CsrMatrix& test, const EvalOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  AFFINITY_RETURN_IF_ERROR(options.Validate());
  if (train.rows != test.rows || train.cols != test.cols) {
    return Status::InvalidArgument(
        "train is " + std::to_string(train.rows) + " x " + std::to_string(train.cols) +
            " but test is " + std::to_string(test.rows) + " x " + std::to_string(test.cols),
        "test");
  }
  if (train.indptr.size() != static_cast<size_t>(train.rows) + 1) {
    return Status::InvalidArgument("train indptr does not have rows + 1 entries", "train");
  }
  if (test.indptr.size() != static_cast<size_t>(test.rows) + 1) {
    return Status::InvalidArgument("test indptr does not have rows + 1 entries", "test");
  }
  if (train.rows > std::numeric_limits<int32_t>::max() ||
      train.cols > std::numeric_limits<int32_t>::max()) {
    return Status::InvalidArgument("more than 2^31 - 1 users or items", "train");
  }

  std::vector<int32_t> users;  // the rows with at least one test item, ascending
  for (int64_t u = 0; u < test.rows; ++u) {
    if (test.RowEnd(u) > test.RowBegin(u)) users.push_back(static_cast<int32_t>(u));
  }
  if (users.empty()) return Status::InvalidArgument("no user has a test item", "test");

  const std::vector<int>& ks = options.ks;
  const size_t num_ks = ks.size();
  const int max_k = *std::max_element(ks.begin(), ks.end());
  const int64_t items = train.cols;
  const int64_t num_users = static_cast<int64_t>(users.size());
  const int64_t batch_size = options.batch_size;
  const int64_t num_batches = (num_users + batch_size - 1) / batch_size;

  // per_user[(j * num_ks + t) * 3 + {0, 1, 2}] = recall, ndcg, hitrate of users[j] at ks[t].
  constexpr size_t kPerUserMetrics = 3;
  std::vector<double> per_user(static_cast<size_t>(num_users) * num_ks * kPerUserMetrics);
  // best_rank[i]: the best 0-based rank item i reached in any evaluated user's list;
  // item i is covered at k iff best_rank[i] < k.
  constexpr int32_t kUnranked = std::numeric_limits<int32_t>::max();
  std::vector<int32_t> best_rank(static_cast<size_t>(items), kUnranked);
  std::atomic<bool> bad_shape{false};
  int64_t bad_rows = 0, bad_cols = 0, bad_batch = 0;

#pragma omp parallel num_threads(Threads(options.num_threads))
  {
    // Scratch owned by this thread, allocated once.
    RowMajorMatrixXf scores;
    std::vector<int32_t> top;
    std::vector<int32_t> local_rank(static_cast<size_t>(items), kUnranked);
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < num_batches; ++b) {
      if (bad_shape.load(std::memory_order_relaxed)) continue;
      const int64_t first = b * batch_size;
      const int64_t count = std::min(batch_size, num_users - first);
      std::span<const int32_t> batch(users.data() + first, static_cast<size_t>(count));
      model.ScoreBatch(batch, &scores);
      if (scores.rows() != count || scores.cols() != items) {
#pragma omp critical(affinity_eval_bad_shape)
        {
          bad_rows = scores.rows();
          bad_cols = scores.cols();
          bad_batch = count;
        }
        bad_shape.store(true, std::memory_order_relaxed);
        continue;
      }
      for (int64_t j = 0; j < count; ++j) {
        const int32_t u = batch[static_cast<size_t>(j)];
        RankTopK(std::span<const float>(scores.row(j).data(), static_cast<size_t>(items)),
                 RowItems(train, u), max_k, &top);
        const std::span<const int32_t> relevant = RowItems(test, u);
        double* out = &per_user[static_cast<size_t>(first + j) * num_ks * kPerUserMetrics];
        for (size_t t = 0; t < num_ks; ++t, out += kPerUserMetrics) {
          out[0] = RecallAt(top, relevant, ks[t]);
          out[1] = NdcgAt(top, relevant, ks[t]);
          out[2] = HitRateAt(top, relevant, ks[t]);
        }
        for (size_t r = 0; r < top.size(); ++r) {
          int32_t& rank = local_rank[static_cast<size_t>(top[r])];
          rank = std::min(rank, static_cast<int32_t>(r));
        }
      }
    }
    // min is order-independent, so the merge order does not matter.
#pragma omp critical(affinity_eval_merge_rank)
    for (size_t i = 0; i < best_rank.size(); ++i) {
      best_rank[i] = std::min(best_rank[i], local_rank[i]);
    }
  }
  if (bad_shape.load()) {
    return Status::FailedPrecondition("the model scored a batch of " + std::to_string(bad_batch) +
                                      " users into a " + std::to_string(bad_rows) + " x " +
                                      std::to_string(bad_cols) + " matrix; expected " +
                                      std::to_string(bad_batch) + " x " + std::to_string(items) +
                                      " (was it fitted on this train matrix?)");
  }

  EvalResult result;
  result.users_evaluated = num_users;
  for (size_t t = 0; t < num_ks; ++t) {
    // Sums in user order: the same value for any thread count or batch size.
    double recall = 0, ndcg = 0, hitrate = 0;
    for (int64_t j = 0; j < num_users; ++j) {
      const double* v = &per_user[(static_cast<size_t>(j) * num_ks + t) * kPerUserMetrics];
      recall += v[0];
      ndcg += v[1];
      hitrate += v[2];
    }
    const double n = static_cast<double>(num_users);
    int64_t covered = 0;
    for (int32_t rank : best_rank) covered += rank < ks[t] ? 1 : 0;
    const std::string at = "@" + std::to_string(ks[t]);
    result.metrics["recall" + at] = recall / n;
    result.metrics["ndcg" + at] = ndcg / n;
    result.metrics["hitrate" + at] = hitrate / n;
    result.metrics["coverage" + at] = static_cast<double>(covered) / static_cast<double>(items);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace affinity
