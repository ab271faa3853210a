// Cold start for new products: placing a product that nobody has bought yet in the iALS item
// space from its attributes, so that customers can be scored against it (audiences) and it can be
// recommended before its first sale.
//
// Features (AttributeFeatures). A product is described by sparse, named features:
//   "c1:Home", "c2:Home/Kitchen", "c3:Home/Kitchen/Mugs"   every level of the category path
//   "b:acme"                                              the brand (lower-cased)
//   "p:7", "P:3"                                          log-price buckets: ⌊2·log2(price)⌋ and
//                                                         ⌊log2(price)/2⌋ (fine and coarse)
//   "w:mug", "w:enamel"                                   title words: lower-cased ASCII
//                                                         alphanumerics, ≥ 2 characters, not all
//                                                         digits, English stop words removed
//   "d:dishwasher", "d:safe"                              description words, the same way, each
//                                                         once, the first kMaxDescriptionWords
//                                                         distinct ones (a group of their own:
//                                                         a long description does not drown
//                                                         the title's few words, and the map
//                                                         learns what each says apart)
//   "t:vegan"                                             tags (lower-cased)
//   "bias"                                                always on
// Each group is scaled so that its squared values sum to the group's weight
// (ColdStartOptions::*_weight): a title of n words gives each word sqrt(word_weight / n). The
// vocabulary is the features seen in at least min_feature_count trained products; others are
// ignored (an unseen feature says nothing the model learned).
//
// Methods (ColdStartMethod).
//   kRidge (Gantner et al. 2010, "Learning Attribute-to-Feature Mappings for Cold-Start
//   Recommendations", the linear map): with X (products × features) and H (their iALS factors),
//     W = argmin Σ_i ‖x_i W − h_i‖² + λ ‖W‖²_F,   i.e. (XᵀX + λI) W = XᵀH,
//   solved by conjugate gradients on all d columns at once without forming XᵀX (each step costs
//   2·nnz(X)·d flops). A new product's vector is x W.
//   kKnn (the attribute-kNN of the same paper): the mean of the factors of the k trained products
//   whose feature vectors are most cosine-similar, weighted by similarity:
//     ĥ = Σ_{j∈N_k(x)} s_j h_j / (Σ_j s_j + shrinkage).
// Only products with at least min_item_support buyers are fitting targets (a product bought once
// has a noisy vector).
//
// Thread safety: Fit is not thread-safe; after Fit (or FromParts) Embed is const and may run
// concurrently.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "affinity/models/csr_matrix.h"
#include "affinity/models/recommender.h"
#include "affinity/status.h"

namespace affinity {

// A product's describing attributes, as the models see them (the engine converts its own
// ProductAttributes). Every field may be empty.
struct ItemAttributes {
  std::vector<std::string> category;  // path from the root: {"Home", "Kitchen", "Mugs"}
  std::string brand;
  std::optional<double> price;  // unit price > 0; a missing or non-positive price adds nothing
  std::string title;            // the product's name
  std::string description;      // longer free text; only its first words count (see "d:")
  std::vector<std::string> tags;
};

// The distinct description words a product's features use, at most (the rest of a long
// description is left out).
inline constexpr size_t kMaxDescriptionWords = 64;

enum class ColdStartMethod { kRidge, kKnn };

// "ridge" / "knn", and back (InvalidArgument, field "method", for another name).
std::string_view ColdStartMethodName(ColdStartMethod method);
Result<ColdStartMethod> ParseColdStartMethod(std::string_view name);

struct ColdStartOptions {
  ColdStartMethod method = ColdStartMethod::kRidge;
  // Ridge: λ. Larger values shrink estimates toward the mean product. Default 1.
  double regularization = 1.0;
  // kNN: neighbours k (default 50) and the shrinkage added to the similarity sum (default 0.5;
  // a product whose nearest neighbours are only weakly similar gets a shorter vector).
  int neighbors = 50;
  double shrinkage = 0.5;
  // Features seen in fewer trained products are left out of the vocabulary. Default 2.
  int min_feature_count = 2;
  // Products with fewer buyers are not fitting targets. Default 2.
  int min_item_support = 2;
  // Squared weight of each feature group (see the file comment). Defaults 1.
  double category_weight = 1.0;
  double brand_weight = 1.0;
  double price_weight = 1.0;
  double word_weight = 1.0;
  double description_weight = 1.0;
  double tag_weight = 1.0;
  // Ridge solver: at most this many CG steps, stopping when every column's residual is below
  // tolerance × its right-hand side. Defaults 300 and 1e-5.
  int max_iterations = 300;
  double tolerance = 1e-5;

  // InvalidArgument naming the field for a negative weight or regularization, neighbors < 1,
  // shrinkage < 0, min_feature_count < 1, min_item_support < 1, max_iterations < 1 or a
  // tolerance outside (0, 1).
  Status Validate() const;
};

// Lower-cased title words as the "w:" features use them (tokenized, stop words and tokens
// shorter than 2 characters or all digits removed), in order, repeats kept.
std::vector<std::string> TitleWords(std::string_view title);

// The "d:" words of a description: TitleWords' tokens, each once, in order of first appearance,
// at most kMaxDescriptionWords of them.
std::vector<std::string> DescriptionWords(std::string_view description);

// The named features of a product with their values (before the vocabulary filter), sorted by
// name, each name once. Uses the group weights of `options`.
std::vector<std::pair<std::string, float>> AttributeFeatures(const ItemAttributes& item,
                                                             const ColdStartOptions& options);

// What Fit did, for reports.
struct ColdStartFitReport {
  int64_t targets = 0;    // products used as fitting targets
  int64_t features = 0;   // vocabulary size
  int iterations = 0;     // CG steps (ridge)
  double residual = 0;    // largest relative CG residual at the end (ridge)
  double train_rmse = 0;  // sqrt(mean ‖x_i W − h_i‖²) over the targets
  double target_rms = 0;  // sqrt(mean ‖h_i‖²): the error of predicting 0, for comparison
  double seconds = 0;
};

class ColdStartModel {
 public:
  ColdStartModel() = default;

  // Learns the map from `items[i]`'s attributes to `item_factors.row(i)` over the products with
  // at least min_item_support buyers (`item_support[i]`, e.g. the column counts of the training
  // matrix). `items`, `item_support` and the rows of `item_factors` correspond. InvalidArgument
  // for invalid options, mismatched sizes, or no product qualifying as a target (too few buyers,
  // or no feature in the vocabulary).
  Result<ColdStartFitReport> Fit(std::span<const ItemAttributes> items,
                                 std::span<const int32_t> item_support,
                                 const RowMajorMatrixXf& item_factors,
                                 const ColdStartOptions& options);

  // A vector for a product from its attributes alone (d floats; zero when none of its features
  // is in the vocabulary). FailedPrecondition before Fit.
  Result<Eigen::VectorXf> Embed(const ItemAttributes& item) const;

  // The same for many products, one row each.
  Result<RowMajorMatrixXf> EmbedAll(std::span<const ItemAttributes> items) const;

  bool fitted() const { return factors_ > 0; }
  int factors() const { return factors_; }
  const ColdStartOptions& options() const { return options_; }
  // The vocabulary, by column.
  const std::vector<std::string>& vocabulary() const { return vocabulary_; }

  // ---- Serialization (ridge only; docs/snapshots.md) ----
  // The ridge model's parts: options and vocabulary as JSON-ready strings are the caller's
  // business; `weights` is features × d.
  const RowMajorMatrixXf& weights() const { return weights_; }
  // Rebuilds a fitted ridge model from its parts. InvalidArgument if the vocabulary size and
  // weights' rows differ, a name repeats, or the method is not ridge.
  static Result<ColdStartModel> FromParts(const ColdStartOptions& options,
                                          std::vector<std::string> vocabulary,
                                          RowMajorMatrixXf weights);

 private:
  // x as (column, value) pairs over the vocabulary, sorted by column.
  void Featurize(const ItemAttributes& item, std::vector<std::pair<int32_t, float>>* x) const;

  ColdStartOptions options_;
  int factors_ = 0;
  std::vector<std::string> vocabulary_;
  std::unordered_map<std::string, int32_t> columns_;
  RowMajorMatrixXf weights_;  // ridge: features × d
  // kNN: the targets' L2-normalized feature rows, their inverted lists, and their factors.
  CsrMatrix target_features_;
  CsrMatrix feature_targets_;
  RowMajorMatrixXf target_factors_;
};

}  // namespace affinity
