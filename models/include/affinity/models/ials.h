// Implicit-feedback matrix factorization (iALS): Hu, Koren & Volinsky (2008) confidence weights
// on the formulation of Rendle, Krichene, Zhang & Koren (2021), "Revisiting the Performance of
// iALS on Item Recommendation Benchmarks".
//
// Model: score(u, i) = w_u · h_i with user factors W (users x d) and item factors H (items x d).
// Loss, over observed pairs (u, i) with interaction r_ui > 0 and all pairs:
//   L = Σ_obs c_ui (1 - w_u·h_i)²  +  Σ_all a_i (w_u·h_i)²  +  Σ_u λ_u ‖w_u‖²  +  Σ_i λ_i ‖h_i‖²
// with a_i = α₀ for every item (Rendle et al.) or popularity-weighted (eALS; see options),
// with confidence c_ui = 1 + α f(r_ui) (f per ConfidenceTransform; α = 0 gives Rendle et al.'s
// plain iALS) and frequency-scaled regularization λ_u = λ (|I_u| + α₀ |I|)^ν (ν = 0: plain λ).
// The all-pairs term is computed through the Gram matrix G = HᵀH (d x d), never pair by pair.
//
// Alternating least squares: fixing H, each user's row solves the d x d system
//   (G_a + Σ_{i∈I_u} c_ui h_i h_iᵀ + λ_u I) w_u = Σ_{i∈I_u} c_ui h_i,   G_a = Hᵀ diag(a) H,
// by a few conjugate-gradient steps warm-started from the previous w_u (Takács, Pilászy & Tikk
// 2011; as in implicit), without forming the matrix; or exactly by Cholesky (for checking).
// Then the same for items with W fixed, item i's all-pairs matrix being a_i WᵀW.
//
// Thread safety: Fit is not thread-safe; after Fit the model is read-only and ScoreBatch and
// FoldIn may be called concurrently.
#pragma once

#include <Eigen/Cholesky>
#include <functional>
#include <string>
#include <vector>

#include "affinity/models/recommender.h"

namespace affinity {

enum class ConfidenceTransform {
  kBinary,  // f(r) = 1 for any r > 0
  kLog,     // f(r) = log(1 + r): diminishing returns of repeated purchases
  kLinear,  // f(r) = r (Hu et al.'s c = 1 + α r)
};
enum class IalsSolver { kConjugateGradient, kCholesky };

struct IalsOptions {
  // Embedding dimension d. Default 256. Cost per epoch ~ nnz·d·cg_steps +
  // (users+items)·d²·cg_steps.
  int factors = 256;
  // Alternating epochs (users, then items). Default 16.
  int iterations = 16;
  // α₀: weight of every (user, item) pair pulled towards 0. Default 0.1. Smaller values let
  // observed pairs dominate (typical 0.001 - 1).
  double unobserved_weight = 0.1;
  // η: popularity-aware unobserved weights (He et al. 2016, eALS): item i's all-pairs weight is
  // a_i = α₀ |I| n_i^η / Σ_j n_j^η (n_i = its observed count), so popular items are pushed harder
  // towards 0 and the mean weight stays α₀. Default 0 (uniform α₀, Rendle et al.).
  double unobserved_popularity_exponent = 0.0;
  // λ, and the exponent ν of the frequency scaling (|I_u| + α₀|I|)^ν. Defaults 0.01 and 1
  // (Rendle et al.'s best runs); ν = 0 gives a plain λ.
  double regularization = 0.01;
  double regularization_exponent = 1.0;
  // α and f of the confidence c = 1 + α f(r) on observed pairs. Defaults 0 and kLog.
  double confidence_alpha = 0.0;
  ConfidenceTransform confidence = ConfidenceTransform::kLog;
  IalsSolver solver = IalsSolver::kConjugateGradient;
  // CG steps per row and epoch (warm-started). Default 3.
  int cg_steps = 3;
  // Initial factors ~ Normal(0, init_stddev / sqrt(d)). Default 0.1.
  double init_stddev = 0.1;
  uint64_t seed = 42;
  // Threads; 0 = all cores. Default 0.
  int num_threads = 0;
  // Compute the loss after every epoch (costs about one extra pass over the non-zeros).
  bool compute_loss = true;

  // InvalidArgument naming the field for factors < 1, iterations < 0, negative weights or
  // regularization, cg_steps < 1, init_stddev <= 0, num_threads < 0.
  Status Validate() const;
};

struct IalsProgress {
  int iteration = 0;   // 1-based epoch just finished
  double loss = 0;     // L above, divided by the number of observed pairs (NaN if not computed)
  double seconds = 0;  // of this epoch
};

class IalsModel final : public Recommender {
 public:
  explicit IalsModel(IalsOptions options = {});

  std::string_view name() const override { return "ials"; }
  // Trains from scratch. InvalidArgument for invalid options or an empty matrix.
  Status Fit(const CsrMatrix& interactions) override;
  void ScoreBatch(std::span<const int32_t> users, RowMajorMatrixXf* out) const override;

  // Called after every epoch; may be empty.
  void set_progress_callback(std::function<void(const IalsProgress&)> cb) {
    progress_ = std::move(cb);
  }

  // Solves one user's factor row against the fixed item factors (exactly, by Cholesky), from
  // their interactions (item ids with weights r > 0): what the server does on a new purchase.
  // InvalidArgument for an item out of range or a non-positive weight; FailedPrecondition
  // before Fit.
  Result<Eigen::VectorXf> FoldInUser(std::span<const int32_t> items,
                                     std::span<const float> weights) const;

  const IalsOptions& options() const { return options_; }
  const RowMajorMatrixXf& user_factors() const { return user_factors_; }
  const RowMajorMatrixXf& item_factors() const { return item_factors_; }
  // The all-pairs weights a_i of the items (see above), after Fit.
  const Eigen::VectorXf& item_weights() const { return item_weights_; }
  // The full loss L / nnz for the current factors on `interactions` (the fitted matrix).
  double Loss(const CsrMatrix& interactions) const;
  // Floating-point operations of the last epoch's solves (for GFLOP/s reports).
  double last_epoch_flops() const { return last_epoch_flops_; }

 private:
  IalsOptions options_;
  RowMajorMatrixXf user_factors_;
  RowMajorMatrixXf item_factors_;
  std::function<void(const IalsProgress&)> progress_;
  Eigen::MatrixXf item_gram_;     // Hᵀ diag(a) H after Fit, shared by every fold-in
  Eigen::VectorXf item_weights_;  // a_i
  double last_epoch_flops_ = 0;
};

// Fold-in and explanations against fixed item factors: what a server does between retrains.
//
// For one user with interactions {(i, r_i)}, the iALS row solve is
//   A w = b,  A = G_a + λ_u I + Σ_i c_i h_i h_iᵀ,  b = Σ_i c_i h_i,  G_a = Hᵀ diag(a) H,
// with c_i = 1 + α f(r_i) and λ_u as in IalsOptions. Since w = A⁻¹ b, a score splits over the
// user's items (Hu, Koren & Volinsky 2008, §5):
//   w·h_j = Σ_i c_i (h_jᵀ A⁻¹ h_i),
// and the item with the largest term is "because you bought i" for item j.
//
// Thread safety: immutable after construction; Solve and Explain may be called concurrently.
// The solver keeps a pointer to `item_factors`, which must outlive it.
class FoldInSolver {
 public:
  // `item_weights` are the a_i (IalsModel::item_weights()); empty means α₀ for every item whose
  // factor row is non-zero. FoldInSolver computes G_a once (items · d² flops).
  FoldInSolver(const IalsOptions& options, const RowMajorMatrixXf* item_factors,
               Eigen::VectorXf item_weights);

  // The user row w for interactions `items` (item rows) with weights `weights` (r > 0); zero for
  // no items. InvalidArgument for an item out of range, a weight <= 0 or NaN, or lengths that
  // differ. Exact (Cholesky); d³/3 + n d² flops.
  Result<Eigen::VectorXf> Solve(std::span<const int32_t> items,
                                std::span<const float> weights) const;

  // For each of `targets`, the position in `items` of the interaction contributing most to its
  // score under the fold-in above (-1 when `items` is empty). Same errors as Solve, and
  // InvalidArgument for a target out of range.
  Result<std::vector<int>> Explain(std::span<const int32_t> items, std::span<const float> weights,
                                   std::span<const int32_t> targets) const;

  // Makes Explain fast for up to `factors()` interactions: computes G_a = Q Λ Qᵀ once and every
  // item row in that basis (items × d floats more memory). Explain then needs no d × d
  // factorization: with B = G_a + λ_u I = Q diag(Λ + λ_u) Qᵀ for any λ_u, the Woodbury identity
  // gives every term c_i h_jᵀ A⁻¹ h_i from n × n and k × n inner products in the basis and one
  // n × n Cholesky solve (O((k + n)·n·d + n³) flops against d³/3 + k·d²). Results equal the
  // direct path up to rounding. Not thread-safe: call it before the solver is shared.
  void PrepareExplanations();

  // The same, with G_a already computed (IalsModel caches it after Fit).
  static FoldInSolver WithGram(const IalsOptions& options, const RowMajorMatrixXf* item_factors,
                               Eigen::MatrixXf gram);

  int factors() const { return static_cast<int>(gram_.rows()); }

 private:
  // Factorizes A for the interactions; returns InvalidArgument for bad input.
  Status Prepare(std::span<const int32_t> items, std::span<const float> weights,
                 Eigen::LLT<Eigen::MatrixXf>* llt, Eigen::VectorXf* b) const;

  FoldInSolver(const IalsOptions& options, const RowMajorMatrixXf* item_factors)
      : options_(options), item_factors_(item_factors) {}

  // Explain through the Woodbury identity; false if the basis cannot be used (n > d, or a
  // system that is not positive definite), and then *best is untouched.
  bool ExplainInBasis(std::span<const int32_t> items, std::span<const float> weights,
                      std::span<const int32_t> targets, std::vector<int>* best) const;

  IalsOptions options_;
  const RowMajorMatrixXf* item_factors_;
  Eigen::MatrixXf gram_;  // G_a
  // After PrepareExplanations: the eigenvalues Λ of G_a and the item rows times Q.
  Eigen::VectorXf gram_eigenvalues_;
  RowMajorMatrixXf items_in_basis_;
};

}  // namespace affinity
