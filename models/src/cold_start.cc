#include "affinity/models/cold_start.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <unordered_set>

namespace affinity {
namespace {

// English stop words, plus words that describe packaging rather than the product.
const std::unordered_set<std::string>& StopWords() {
  static const std::unordered_set<std::string> words = {
      "a",    "an",      "and",  "are",  "as",       "at",     "be",    "by",     "for",  "from",
      "in",   "into",    "is",   "it",   "its",      "of",     "on",    "or",     "the",  "to",
      "with", "without", "this", "that", "these",    "those",  "your",  "our",    "you",  "we",
      "set",  "pack",    "size", "new",  "assorted", "colour", "color", "design", "item", "items",
      "pcs",  "pc",      "oz",   "lb",   "ct",       "na"};
  return words;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Adds the features of one group: its n distinct names, each with value sqrt(weight / n), so
// that the group's squared values sum to `weight` (a name repeated, as a title word or a tag
// given twice, counts once: summed, it weighed its group and the product up).
void AddGroup(std::vector<std::string> names, double weight, std::map<std::string, float>* out) {
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  if (names.empty() || weight <= 0) return;
  const auto value = static_cast<float>(std::sqrt(weight / static_cast<double>(names.size())));
  for (const auto& name : names) (*out)[name] = value;
}

std::chrono::steady_clock::time_point Now() { return std::chrono::steady_clock::now(); }

}  // namespace

std::string_view ColdStartMethodName(ColdStartMethod method) {
  return method == ColdStartMethod::kKnn ? "knn" : "ridge";
}

Result<ColdStartMethod> ParseColdStartMethod(std::string_view name) {
  if (name == "ridge") return ColdStartMethod::kRidge;
  if (name == "knn") return ColdStartMethod::kKnn;
  return Status::InvalidArgument(
      "cold-start method must be ridge or knn (got '" + std::string(name) + "')", "method");
}

Status ColdStartOptions::Validate() const {
  if (!(regularization >= 0)) return Status::InvalidArgument("must be >= 0", "regularization");
  if (neighbors < 1) return Status::InvalidArgument("must be >= 1", "neighbors");
  if (!(shrinkage >= 0)) return Status::InvalidArgument("must be >= 0", "shrinkage");
  if (min_feature_count < 1) return Status::InvalidArgument("must be >= 1", "min_feature_count");
  if (min_item_support < 1) return Status::InvalidArgument("must be >= 1", "min_item_support");
  for (auto [w, name] :
       {std::pair{category_weight, "category_weight"}, std::pair{brand_weight, "brand_weight"},
        std::pair{price_weight, "price_weight"}, std::pair{word_weight, "word_weight"},
        std::pair{description_weight, "description_weight"}, std::pair{tag_weight, "tag_weight"}}) {
    if (!(w >= 0)) return Status::InvalidArgument("must be >= 0", name);
  }
  if (max_iterations < 1) return Status::InvalidArgument("must be >= 1", "max_iterations");
  if (!(tolerance > 0 && tolerance < 1)) {
    return Status::InvalidArgument("must be in (0, 1)", "tolerance");
  }
  return Status::Ok();
}

std::vector<std::string> TitleWords(std::string_view title) {
  std::vector<std::string> words;
  std::string word;
  auto flush = [&] {
    if (word.size() >= 2 &&
        !std::all_of(word.begin(), word.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        !StopWords().count(word)) {
      words.push_back(word);
    }
    word.clear();
  };
  for (char c : title) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      word += c;
    } else if (c >= 'A' && c <= 'Z') {
      word += static_cast<char>(c - 'A' + 'a');
    } else {
      flush();
    }
  }
  flush();
  return words;
}

std::vector<std::string> DescriptionWords(std::string_view description) {
  std::vector<std::string> words;
  std::unordered_set<std::string> seen;
  for (auto& w : TitleWords(description)) {
    if (words.size() == kMaxDescriptionWords) break;
    if (seen.insert(w).second) words.push_back(std::move(w));
  }
  return words;
}

std::vector<std::pair<std::string, float>> AttributeFeatures(const ItemAttributes& item,
                                                             const ColdStartOptions& options) {
  std::map<std::string, float> features;
  features["bias"] = 1.0f;
  std::vector<std::string> names;
  std::string path;
  for (size_t level = 0; level < item.category.size(); ++level) {
    if (item.category[level].empty()) break;
    path += (level ? "/" : "") + item.category[level];
    names.push_back("c" + std::to_string(level + 1) + ":" + path);
  }
  AddGroup(names, options.category_weight, &features);
  names.clear();
  if (!item.brand.empty()) names.push_back("b:" + Lower(item.brand));
  AddGroup(names, options.brand_weight, &features);
  names.clear();
  if (item.price && std::isfinite(*item.price) && *item.price > 0) {
    const double l = std::log2(*item.price);
    names.push_back("p:" + std::to_string(static_cast<int>(std::floor(2 * l))));
    names.push_back("P:" + std::to_string(static_cast<int>(std::floor(l / 2))));
  }
  AddGroup(names, options.price_weight, &features);
  names.clear();
  for (auto& w : TitleWords(item.title)) names.push_back("w:" + w);
  AddGroup(names, options.word_weight, &features);
  names.clear();
  for (auto& w : DescriptionWords(item.description)) names.push_back("d:" + w);
  AddGroup(names, options.description_weight, &features);
  names.clear();
  for (const auto& t : item.tags) {
    if (!t.empty()) names.push_back("t:" + Lower(t));
  }
  AddGroup(names, options.tag_weight, &features);
  return {features.begin(), features.end()};
}

void ColdStartModel::Featurize(const ItemAttributes& item,
                               std::vector<std::pair<int32_t, float>>* x) const {
  x->clear();
  for (const auto& [name, value] : AttributeFeatures(item, options_)) {
    auto it = columns_.find(name);
    if (it != columns_.end()) x->emplace_back(it->second, value);
  }
  std::sort(x->begin(), x->end());
}

Result<ColdStartFitReport> ColdStartModel::Fit(std::span<const ItemAttributes> items,
                                               std::span<const int32_t> item_support,
                                               const RowMajorMatrixXf& item_factors,
                                               const ColdStartOptions& options) {
  AFFINITY_RETURN_IF_ERROR(options.Validate());
  if (items.size() != item_support.size() ||
      static_cast<int64_t>(items.size()) != item_factors.rows()) {
    return Status::InvalidArgument(
        "items, item_support and item_factors must have one entry per "
        "product",
        "items");
  }
  const auto start = Now();
  const int d = static_cast<int>(item_factors.cols());
  // Targets, and the vocabulary over their features.
  std::vector<int64_t> targets;
  std::vector<std::vector<std::pair<std::string, float>>> named;
  std::map<std::string, int> counts;
  for (size_t i = 0; i < items.size(); ++i) {
    if (item_support[i] < options.min_item_support) continue;
    targets.push_back(static_cast<int64_t>(i));
    named.push_back(AttributeFeatures(items[i], options));
    for (const auto& [name, value] : named.back()) ++counts[name];
  }
  ColdStartModel model;
  model.options_ = options;
  model.factors_ = d;
  for (const auto& [name, count] : counts) {
    if (count >= options.min_feature_count || name == "bias") {
      model.columns_.emplace(name, static_cast<int32_t>(model.vocabulary_.size()));
      model.vocabulary_.push_back(name);
    }
  }
  // X over the vocabulary; targets with no feature besides the bias carry no information.
  const auto features = static_cast<int64_t>(model.vocabulary_.size());
  CsrBuilder builder(features);
  std::vector<int64_t> kept;
  std::vector<std::pair<int32_t, float>> x;
  for (size_t t = 0; t < targets.size(); ++t) {
    x.clear();
    for (const auto& [name, value] : named[t]) {
      auto it = model.columns_.find(name);
      if (it != model.columns_.end()) x.emplace_back(it->second, value);
    }
    if (x.size() < 2) continue;
    const auto row = static_cast<int64_t>(kept.size());
    for (const auto& [col, value] : x) AFFINITY_RETURN_IF_ERROR(builder.Add(row, col, value));
    kept.push_back(targets[t]);
  }
  if (kept.empty()) {
    return Status::InvalidArgument(
        "no product has enough buyers (min_item_support) and a feature in the vocabulary", "items");
  }
  AFFINITY_ASSIGN_OR_RETURN(CsrMatrix xm, builder.Finish(static_cast<int64_t>(kept.size())));
  const auto n = static_cast<int64_t>(kept.size());
  Eigen::MatrixXf h(n, d);
  for (int64_t r = 0; r < n; ++r) h.row(r) = item_factors.row(kept[r]);

  ColdStartFitReport report;
  report.targets = n;
  report.features = features;
  report.target_rms = std::sqrt(h.squaredNorm() / static_cast<double>(n));

  // X·M (n × d) and Xᵀ·M (features × d) for dense M.
  auto times = [&](const Eigen::MatrixXf& m) {
    Eigen::MatrixXf out = Eigen::MatrixXf::Zero(n, d);
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t k = xm.RowBegin(r); k < xm.RowEnd(r); ++k) {
        out.row(r) += xm.values[k] * m.row(xm.indices[k]);
      }
    }
    return out;
  };
  auto times_transposed = [&](const Eigen::MatrixXf& m) {
    Eigen::MatrixXf out = Eigen::MatrixXf::Zero(features, d);
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t k = xm.RowBegin(r); k < xm.RowEnd(r); ++k) {
        out.row(xm.indices[k]) += xm.values[k] * m.row(r);
      }
    }
    return out;
  };

  if (options.method == ColdStartMethod::kRidge) {
    // Conjugate gradients on (XᵀX + λI) W = XᵀH, column by column in lock step:
    //   r = b − A w, p = r; repeat: q = A p, α = rᵀr / pᵀq, w += α p, r −= α q,
    //   β = r'ᵀr' / rᵀr, p = r' + β p.
    const auto lambda = static_cast<float>(options.regularization);
    auto apply = [&](const Eigen::MatrixXf& m) -> Eigen::MatrixXf {
      return times_transposed(times(m)) + lambda * m;
    };
    const Eigen::MatrixXf b = times_transposed(h);
    Eigen::MatrixXf w = Eigen::MatrixXf::Zero(features, d);
    Eigen::MatrixXf r = b;
    Eigen::MatrixXf p = r;
    Eigen::VectorXf rr = r.colwise().squaredNorm();
    const Eigen::VectorXf bb = b.colwise().squaredNorm().cwiseMax(1e-30f);
    const auto tol2 = static_cast<float>(options.tolerance * options.tolerance);
    int it = 0;
    for (; it < options.max_iterations; ++it) {
      if ((rr.array() <= tol2 * bb.array()).all()) break;
      const Eigen::MatrixXf q = apply(p);
      for (int c = 0; c < d; ++c) {
        const float pq = p.col(c).dot(q.col(c));
        if (rr[c] <= tol2 * bb[c] || pq <= 0) continue;  // converged column: leave it
        const float alpha = rr[c] / pq;
        w.col(c) += alpha * p.col(c);
        r.col(c) -= alpha * q.col(c);
        const float rr_new = r.col(c).squaredNorm();
        p.col(c) = r.col(c) + (rr_new / rr[c]) * p.col(c);
        rr[c] = rr_new;
      }
    }
    report.iterations = it;
    report.residual = std::sqrt((rr.array() / bb.array()).maxCoeff());
    model.weights_ = w;
    report.train_rmse = std::sqrt((times(w) - h).squaredNorm() / static_cast<double>(n));
  } else {
    // kNN: L2-normalized rows, their transpose for the similarity lookups.
    for (int64_t r = 0; r < n; ++r) {
      double norm = 0;
      for (int64_t k = xm.RowBegin(r); k < xm.RowEnd(r); ++k) norm += xm.values[k] * xm.values[k];
      const auto inv = static_cast<float>(1.0 / std::sqrt(norm));
      for (int64_t k = xm.RowBegin(r); k < xm.RowEnd(r); ++k) xm.values[k] *= inv;
    }
    model.feature_targets_ = xm.Transposed();
    model.target_features_ = std::move(xm);
    model.target_factors_ = h;
    double err = 0;
    for (int64_t r = 0; r < n; ++r) {
      AFFINITY_ASSIGN_OR_RETURN(Eigen::VectorXf e, model.Embed(items[kept[r]]));
      err += (e.transpose() - h.row(r)).squaredNorm();
    }
    report.train_rmse = std::sqrt(err / static_cast<double>(n));
  }
  report.seconds = std::chrono::duration<double>(Now() - start).count();
  *this = std::move(model);
  return report;
}

Result<Eigen::VectorXf> ColdStartModel::Embed(const ItemAttributes& item) const {
  if (!fitted()) return Status::FailedPrecondition("the cold-start model is not fitted");
  std::vector<std::pair<int32_t, float>> x;
  Featurize(item, &x);
  Eigen::VectorXf out = Eigen::VectorXf::Zero(factors_);
  if (x.size() < 2) return out;  // the bias alone: nothing known about this product
  if (options_.method == ColdStartMethod::kRidge) {
    for (const auto& [col, value] : x) out += value * weights_.row(col).transpose();
    return out;
  }
  // Cosine similarity to every target sharing a feature: s_j = x̂ · x̂_j.
  double norm = 0;
  for (const auto& [col, value] : x) norm += static_cast<double>(value) * value;
  const double inv = 1.0 / std::sqrt(norm);
  std::unordered_map<int32_t, float> sims;
  for (const auto& [col, value] : x) {
    if (vocabulary_[col] == "bias") continue;  // shared by all: not a similarity
    for (int64_t k = feature_targets_.RowBegin(col); k < feature_targets_.RowEnd(col); ++k) {
      sims[feature_targets_.indices[k]] +=
          static_cast<float>(value * inv) * feature_targets_.values[k];
    }
  }
  std::vector<std::pair<float, int32_t>> ranked;
  ranked.reserve(sims.size());
  for (const auto& [j, s] : sims) ranked.emplace_back(s, j);
  const size_t k = std::min<size_t>(ranked.size(), static_cast<size_t>(options_.neighbors));
  std::partial_sort(ranked.begin(), ranked.begin() + static_cast<ptrdiff_t>(k), ranked.end(),
                    [](const auto& a, const auto& b) {
                      return a.first != b.first ? a.first > b.first : a.second < b.second;
                    });
  double total = options_.shrinkage;
  for (size_t i = 0; i < k; ++i) {
    out += ranked[i].first * target_factors_.row(ranked[i].second).transpose();
    total += ranked[i].first;
  }
  if (total > 0) out /= static_cast<float>(total);
  return out;
}

Result<RowMajorMatrixXf> ColdStartModel::EmbedAll(std::span<const ItemAttributes> items) const {
  RowMajorMatrixXf out(static_cast<int64_t>(items.size()), factors_);
  for (size_t i = 0; i < items.size(); ++i) {
    AFFINITY_ASSIGN_OR_RETURN(Eigen::VectorXf v, Embed(items[i]));
    out.row(static_cast<int64_t>(i)) = v.transpose();
  }
  return out;
}

Result<ColdStartModel> ColdStartModel::FromParts(const ColdStartOptions& options,
                                                 std::vector<std::string> vocabulary,
                                                 RowMajorMatrixXf weights) {
  AFFINITY_RETURN_IF_ERROR(options.Validate());
  if (options.method != ColdStartMethod::kRidge) {
    return Status::InvalidArgument("only a ridge cold-start model can be stored", "method");
  }
  if (static_cast<int64_t>(vocabulary.size()) != weights.rows() || weights.cols() < 1) {
    return Status::InvalidArgument("the vocabulary and the weight rows differ in number",
                                   "vocabulary");
  }
  ColdStartModel model;
  model.options_ = options;
  model.factors_ = static_cast<int>(weights.cols());
  for (size_t i = 0; i < vocabulary.size(); ++i) {
    if (!model.columns_.emplace(vocabulary[i], static_cast<int32_t>(i)).second) {
      return Status::InvalidArgument("feature '" + vocabulary[i] + "' repeats", "vocabulary");
    }
  }
  model.vocabulary_ = std::move(vocabulary);
  model.weights_ = std::move(weights);
  return model;
}

}  // namespace affinity
