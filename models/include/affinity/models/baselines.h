// Baseline recommenders: the yardsticks every learned model must beat.
//
//   PopularityRecommender ("popularity")  score(u, i) = n_i, the number of distinct users of i.
//   ItemKnnRecommender    ("item_knn")    score(u, i) = Σ_{j ∈ I_u} sim(j, i), cosine item-item
//                                          similarities truncated to each item's top neighbours.
//   RepeatRecommender     ("repeat")      score(u, i) = r_ui + ε · n_i / max_j n_j ("buy it
//   again"). EaseRecommender       ("ease")        score(u, ·) = x_u B, Steck (2019),
//   "Embarrassingly
//                                          Shallow Autoencoders for Sparse Data".
//
// Notation: the training matrix R (users x items) holds non-negative weights r_ui (e.g. purchased
// quantity); an entry with r_ui > 0 is an interaction and X = [R > 0] is its binarized form. I_u
// is the set of items of user u, U_i the set of users of item i and n_i = |U_i|. Entries equal to
// 0 are treated as absent. Only RepeatRecommender looks at the weights; the others use X.
//
// Every model keeps what it needs of the training matrix (its users' histories), so ScoreBatch
// scores the rows of the matrix given to Fit; users outside it cannot be scored (no fold-in).
//
// Thread safety (all four classes): Fit is not thread-safe and must not run concurrently with
// any other call; after Fit the model is read-only and ScoreBatch may be called from several
// threads at once. ScoreBatch itself runs on the calling thread only (callers such as
// EvaluateTopK parallelize over batches); Fit uses up to `num_threads` OpenMP threads.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "affinity/models/recommender.h"

namespace affinity {

// ---------------------------------------------------------------------------------------------
// Popularity.

// PopularityRecommender has no tunable options; the struct keeps every baseline constructed
// alike and leaves room for some.
struct PopularityOptions {
  // Always OK.
  Status Validate() const { return Status::Ok(); }
};

// Scores every item by its number of distinct users n_i, the same list for every user.
class PopularityRecommender final : public Recommender {
 public:
  explicit PopularityRecommender(PopularityOptions options = {});

  std::string_view name() const override { return "popularity"; }
  // Counts the users of each item. InvalidArgument for an empty or malformed matrix or a
  // negative or non-finite weight.
  Status Fit(const CsrMatrix& interactions) override;
  // out(k, i) = n_i. Precondition: Fit succeeded.
  void ScoreBatch(std::span<const int32_t> users, RowMajorMatrixXf* out) const override;

  // n_i for every item (empty before Fit).
  const Eigen::VectorXf& popularity() const { return popularity_; }

 private:
  PopularityOptions options_;
  Eigen::VectorXf popularity_;
};

// ---------------------------------------------------------------------------------------------
// Item-kNN.

struct ItemKnnOptions {
  // k: how many most-similar items are kept per item (the rest of its row of the similarity
  // matrix is dropped). Default 100. Larger k adds recall from weak neighbours at the cost of
  // memory (items · k floats) and scoring time (|I_u| · k per user).
  int neighbors = 100;
  // s ≥ 0 added to the cosine denominator, sim(i, j) = c_ij / (√n_i √n_j + s): damps
  // similarities resting on few co-occurrences. Default 0 (plain cosine). Typical 0 - 100.
  double shrink = 0.0;
  // Threads for Fit; 0 = all cores (OpenMP's default). Default 0.
  int num_threads = 0;

  // InvalidArgument naming the field for neighbors < 1, a negative or non-finite shrink, or
  // num_threads < 0.
  Status Validate() const;
};

// Item-based collaborative filtering with cosine similarity on X (Sarwar et al. 2001;
// Deshpande & Karypis 2004):
//   c_ij      = |U_i ∩ U_j|                      (co-occurrences, = (XᵀX)_ij)
//   sim(i, j) = c_ij / (√n_i · √n_j + shrink)    for i ≠ j; sim(i, i) = 0
//   S         = sim with each row i cut to its `neighbors` largest entries (ties: lower item id)
//   score(u, i) = Σ_{j ∈ I_u} S_ji  =  (x_u S)_i
// S is built sparsely, one row at a time, by walking item i's users and their items (cost
// Σ_u |I_u|² in total, memory items · k), never as a dense items x items matrix.
class ItemKnnRecommender final : public Recommender {
 public:
  explicit ItemKnnRecommender(ItemKnnOptions options = {});

  std::string_view name() const override { return "item_knn"; }
  // Builds S. InvalidArgument for invalid options, an empty or malformed matrix, or a negative
  // or non-finite weight.
  Status Fit(const CsrMatrix& interactions) override;
  // out(k, ·) = x_u S for u = users[k], accumulated sparsely (O(|I_u| · neighbors) per user on
  // top of zeroing the row). Precondition: Fit succeeded; every user < the fitted row count.
  void ScoreBatch(std::span<const int32_t> users, RowMajorMatrixXf* out) const override;

  const ItemKnnOptions& options() const { return options_; }
  // S after Fit (items x items; row i holds item i's kept neighbours, ascending by item id).
  const CsrMatrix& similarities() const { return similarities_; }

 private:
  ItemKnnOptions options_;
  CsrMatrix history_;       // X, the binarized training matrix
  CsrMatrix similarities_;  // S
};

// ---------------------------------------------------------------------------------------------
// Repeat ("buy it again").

struct RepeatOptions {
  // ε: weight of the normalized popularity n_i / max_j n_j added to every score. Default 1e-6:
  // small enough not to reorder a user's own items (whose weights are ≥ the smallest positive
  // quantity), large enough to order the items a user never bought by popularity. 0 leaves
  // those items tied at 0.
  double popularity_weight = 1e-6;

  // InvalidArgument naming the field for a negative or non-finite popularity_weight.
  Status Validate() const;
};

// Per-customer "buy it again": score(u, i) = r_ui + ε · n_i / max_j n_j, i.e. a user's own
// items ranked by how much of each they bought, then everything else by popularity.
//
// Evaluation note: the usual protocol (EvaluateTopK) excludes each user's training items from
// the ranking, which removes exactly what this model ranks first; it then degrades to
// popularity. It is only a meaningful baseline when evaluation does NOT exclude training items,
// i.e. when repeat purchases count as hits (grocery, consumables, replenishment).
//
// Precision: scores are float, so for a user's own items with large weights the ε term falls
// below float resolution and equal weights stay tied; among unseen items (r_ui = 0) it always
// orders by popularity.
class RepeatRecommender final : public Recommender {
 public:
  explicit RepeatRecommender(RepeatOptions options = {});

  std::string_view name() const override { return "repeat"; }
  // Keeps R and computes ε · n_i / max n. InvalidArgument for invalid options, an empty or
  // malformed matrix, or a negative or non-finite weight.
  Status Fit(const CsrMatrix& interactions) override;
  // out(k, i) = r_ui + ε n_i / max n for u = users[k]. Precondition: Fit succeeded; every user <
  // the fitted row count.
  void ScoreBatch(std::span<const int32_t> users, RowMajorMatrixXf* out) const override;

  const RepeatOptions& options() const { return options_; }

 private:
  RepeatOptions options_;
  CsrMatrix weights_;                // R, entries > 0 only
  Eigen::VectorXf popularity_term_;  // ε n_i / max n
};

// ---------------------------------------------------------------------------------------------
// EASE.

struct EaseOptions {
  // λ > 0, the L2 penalty on B added to the diagonal of the Gram matrix G = XᵀX + λI. Default
  // 100. It is in units of co-occurrence counts: larger λ shrinks B towards 0 and helps rare
  // items; Steck reports the best λ between ~100 and ~1000 on MovieLens-20M/Netflix/MSD; small
  // catalogs with few users per item tend to want the lower end.
  double lambda = 100.0;
  // Largest catalog Fit accepts. Default 30000. Fit needs G (items² doubles) plus B (items²
  // floats) at once, ~12 · items² bytes (10.8 GB at 30000 items), and ~(5/3) · items³ flops
  // (minutes at 30000 items on a few cores).
  int64_t max_items = 30000;
  // Threads for Fit; 0 = all cores (OpenMP's default). Default 0.
  int num_threads = 0;

  // InvalidArgument naming the field for lambda ≤ 0 or non-finite, max_items < 1, or
  // num_threads < 0.
  Status Validate() const;
};

// EASE (Steck 2019): the item-item weight matrix B minimizing ‖X - XB‖²_F + λ‖B‖²_F subject to
// diag(B) = 0, in closed form:
//   G = XᵀX + λI,  P = G⁻¹,  B_ij = -P_ij / P_jj (i ≠ j),  B_jj = 0,
//   score(u, ·) = x_u B, i.e. score(u, i) = Σ_{j ∈ I_u} B_ji.
// G is accumulated sparsely and exactly (counts) in double; P comes from a Cholesky
// factorization G = LLᵀ (G is symmetric positive definite for λ > 0), solved block of columns by
// block of columns in parallel; B is stored as a dense float matrix.
class EaseRecommender final : public Recommender {
 public:
  explicit EaseRecommender(EaseOptions options = {});

  std::string_view name() const override { return "ease"; }
  // Computes B. InvalidArgument for invalid options, an empty or malformed matrix, or a negative
  // or non-finite weight; FailedPrecondition when the matrix has more than max_items columns
  // (nothing is allocated then); Internal if the factorization fails (not expected for λ > 0).
  Status Fit(const CsrMatrix& interactions) override;
  // out(k, ·) = x_u B for u = users[k]: the sum of the rows of B at the user's items, O(|I_u| ·
  // items) per user. Precondition: Fit succeeded; every user < the fitted row count.
  void ScoreBatch(std::span<const int32_t> users, RowMajorMatrixXf* out) const override;

  const EaseOptions& options() const { return options_; }
  // B after Fit (items x items, zero diagonal).
  const RowMajorMatrixXf& weights() const { return weights_; }

 private:
  EaseOptions options_;
  CsrMatrix history_;         // X, the binarized training matrix
  RowMajorMatrixXf weights_;  // B
};

}  // namespace affinity
