#include "affinity/new_products.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <tuple>
#include <unordered_map>

#include "affinity/interactions.h"
#include "affinity/models/metrics.h"

#if defined(AFFINITY_HAVE_LIBMVEC)
#include <immintrin.h>
// glibc's vector math (libmvec, glibc >= 2.35 for log1p): log1p of 4 doubles with AVX2, of 2
// with SSE2. Within 4 ulp of log1p (documented); against glibc's scalar log1p, at most 2 ulp
// over 1.6M feature values of the audience model, and the same value once rounded to float for
// every one of them.
extern "C" __m256d _ZGVdN4v_log1p(__m256d);
extern "C" __m128d _ZGVbN2v_log1p(__m128d);
#endif

namespace affinity {
namespace {

constexpr int kAudienceCut = 100;

double Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// out[k] = log(1 + v[k]) as float, 0 for v[k] == 0; v[k] >= 0. The audience features take seven
// of these per (customer, product) pair, thousands per audience: one call for eight values costs
// a fifth of eight calls of the scalar log1p.
#if defined(AFFINITY_HAVE_LIBMVEC)
__attribute__((target("avx2"))) void Log1p8Avx2(const std::array<double, 8>& v,
                                                std::array<float, 8>& out) {
  for (size_t k = 0; k < 8; k += 4) {
    const __m256d x = _mm256_loadu_pd(v.data() + k);
    const __m256d zero = _mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_EQ_OQ);
    const __m256d y = _mm256_andnot_pd(zero, _ZGVdN4v_log1p(x));
    _mm_storeu_ps(out.data() + k, _mm256_cvtpd_ps(y));
  }
}
#endif

void Log1p8(const std::array<double, 8>& v, std::array<float, 8>& out) {
#if defined(AFFINITY_HAVE_LIBMVEC)
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) return Log1p8Avx2(v, out);
  for (size_t k = 0; k < 8; k += 2) {
    const __m128d x = _mm_loadu_pd(v.data() + k);
    const __m128d zero = _mm_cmpeq_pd(x, _mm_setzero_pd());
    const __m128d y = _mm_andnot_pd(zero, _ZGVbN2v_log1p(x));
    const __m128 f = _mm_cvtpd_ps(y);
    _mm_storel_pi(reinterpret_cast<__m64*>(out.data() + k), f);
  }
#else
  for (size_t k = 0; k < 8; ++k) out[k] = v[k] == 0 ? 0.0f : static_cast<float>(std::log1p(v[k]));
#endif
}

void Accumulate(const AudienceMetrics& m, AudienceMetrics* sum) {
  sum->recall100 += m.recall100;
  sum->ndcg100 += m.ndcg100;
  sum->products += 1;
  if (!std::isnan(m.auc)) {
    sum->auc += m.auc;
    sum->auc_products += 1;
  }
}

void Average(AudienceMetrics* m) {
  if (m->products == 0) return;
  const auto n = static_cast<double>(m->products);
  m->recall100 /= n;
  m->ndcg100 /= n;
  m->auc = m->auc_products > 0 ? m->auc / static_cast<double>(m->auc_products)
                               : std::numeric_limits<double>::quiet_NaN();
}

// Dense ranks (0 = lowest) of lexicographically compared keys, as scores.
template <typename Key>
std::vector<float> RankScores(const std::vector<Key>& keys) {
  std::vector<size_t> order(keys.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return keys[a] < keys[b]; });
  std::vector<float> scores(keys.size());
  float rank = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    if (i > 0 && keys[order[i - 1]] < keys[order[i]]) ++rank;
    scores[order[i]] = rank;
  }
  return scores;
}

std::string CategoryKey(const std::vector<std::string>& category, size_t levels) {
  std::string key;
  for (size_t l = 0; l < levels; ++l) key += (l ? "/" : "") + category[l];
  return key;
}

}  // namespace

void PurchaseProfile::Add(const ItemAttributes& item) {
  ++products;
  std::string path;
  for (size_t l = 0; l < item.category.size(); ++l) {
    path += (l ? "/" : "") + item.category[l];
    ++categories[path];
  }
  std::vector<std::string> w = TitleWords(item.title);
  std::sort(w.begin(), w.end());
  w.erase(std::unique(w.begin(), w.end()), w.end());
  for (auto& word : w) ++words[word];
  std::vector<std::string> t = item.tags;
  std::sort(t.begin(), t.end());
  t.erase(std::unique(t.begin(), t.end()), t.end());
  for (auto& tag : t) {
    if (!tag.empty()) ++tags[tag];
  }
}

ProductKeys::ProductKeys(const ItemAttributes& item, size_t max_words, size_t max_tags) {
  if (!item.category.empty()) {
    category = CategoryKey(item.category, item.category.size());
    parent = CategoryKey(item.category, std::max<size_t>(1, item.category.size() - 1));
    department = item.category.front();
  }
  words = TitleWords(item.title);
  std::sort(words.begin(), words.end());
  words.erase(std::unique(words.begin(), words.end()), words.end());
  for (const auto& tag : item.tags) {
    if (!tag.empty()) tags.push_back(tag);
  }
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  if (words.size() > max_words) words.resize(max_words);
  if (tags.size() > max_tags) tags.resize(max_tags);
}

double ScoreScale(const RowMajorMatrixXf& customers, const RowMajorMatrixXf& products) {
  auto gram = [](const RowMajorMatrixXf& m, double* rows) {
    Eigen::MatrixXd g = Eigen::MatrixXd::Zero(m.cols(), m.cols());
    for (Eigen::Index r = 0; r < m.rows(); ++r) {
      if (m.row(r).squaredNorm() == 0) continue;
      const Eigen::VectorXd v = m.row(r).transpose().cast<double>();
      g.selfadjointView<Eigen::Lower>().rankUpdate(v);
      *rows += 1;
    }
    return Eigen::MatrixXd(g.selfadjointView<Eigen::Lower>());
  };
  double n_customers = 0, n_products = 0;
  const Eigen::MatrixXd gc = gram(customers, &n_customers);
  const Eigen::MatrixXd gp = gram(products, &n_products);
  if (n_customers == 0 || n_products == 0) return 1;
  const double mean_square = gc.cwiseProduct(gp).sum() / (n_customers * n_products);
  return mean_square > 0 ? std::sqrt(mean_square) : 1;
}

void AudienceFeatures(float scaled_model_score, const PurchaseProfile& profile,
                      const ProductKeys& keys, std::span<float, kAudienceFeatures> out) {
  auto count = [](const std::unordered_map<std::string, int32_t>& m, const std::string& key) {
    if (key.empty()) return int32_t{0};
    auto it = m.find(key);
    return it == m.end() ? int32_t{0} : it->second;
  };
  KeyCounts c;
  c.products = profile.products;
  c.category = count(profile.categories, keys.category);
  c.parent = count(profile.categories, keys.parent);
  c.department = count(profile.categories, keys.department);
  for (const auto& w : keys.words) c.words += count(profile.words, w);
  for (const auto& t : keys.tags) c.tags += count(profile.tags, t);
  c.recent = profile.recent_purchases;
  c.tenure_days = profile.tenure_days;
  AudienceFeatures(scaled_model_score, c, keys, out);
}

void AudienceFeatures(float scaled_model_score, const KeyCounts& c, const ProductKeys& keys,
                      std::span<float, kAudienceFeatures> out) {
  auto level = [](const std::string& key, int32_t n) {
    return key.empty() ? 0.0 : static_cast<double>(n);
  };
  // Counts per year of the customer's tenure (at least kMinTenureDays), so that they do not grow
  // with the time the shop has been recording.
  const double r = kRateDays / std::max(c.tenure_days, kMinTenureDays);
  const double words = keys.words.empty() ? 0.0 : c.words / static_cast<double>(keys.words.size());
  const std::array<double, 8> v = {r * c.products,
                                   r * level(keys.category, c.category),
                                   r * level(keys.parent, c.parent),
                                   r * level(keys.department, c.department),
                                   r * words,
                                   r * c.tags,
                                   static_cast<double>(c.recent),
                                   0.0};
  static_assert(kAudienceFeatures == 8, "one score and seven logs");
  std::array<float, 8> logs;
  Log1p8(v, logs);
  out[0] = scaled_model_score;
  for (size_t k = 1; k < kAudienceFeatures; ++k) out[k] = logs[k - 1];
}

ItemAttributes ToItemAttributes(const ProductAttributes& a) {
  ItemAttributes out;
  if (a.category) out.category = *a.category;
  if (a.brand) out.brand = *a.brand;
  out.price = a.price;
  if (a.title) out.title = *a.title;
  // Only the words the features use are kept (a catalog's descriptions would otherwise be held
  // whole in the serving caches and the training catalog): the same "d:" features.
  if (a.description) {
    for (const std::string& w : DescriptionWords(*a.description)) {
      if (!out.description.empty()) out.description += ' ';
      out.description += w;
    }
  }
  if (a.tags) out.tags = *a.tags;
  return out;
}

Result<Catalog> ReadCatalog(const Store& store) {
  Catalog catalog;
  const uint32_t limit = store.product_id_limit();
  catalog.items.resize(limit);
  catalog.first_sale.resize(limit);
  AFFINITY_RETURN_IF_ERROR(store.ScanProducts([&](ProductId id, const ProductAttributes& a) {
    if (id.value >= limit) return true;
    catalog.items[id.value] = ToItemAttributes(a);
    catalog.first_sale[id.value] = a.created_at;
    return true;
  }));
  AFFINITY_RETURN_IF_ERROR(store.ScanEvents([&](const Event& e) {
    catalog.newest_event = std::max(catalog.newest_event.value_or(e.time), e.time);
    if (e.type != EventType::kPurchase || e.product.value >= limit) return true;
    auto& first = catalog.first_sale[e.product.value];
    if (!first || e.time < *first) first = e.time;
    return true;
  }));
  return catalog;
}

Status LaunchStudyOptions::Validate() const {
  if (horizon_days < 1) return Status::InvalidArgument("must be >= 1", "horizon_days");
  if (half_life_days && !(*half_life_days > 0)) {
    return Status::InvalidArgument("must be > 0", "half_life_days");
  }
  AFFINITY_RETURN_IF_ERROR(ials.Validate());
  return cold_start.Validate();
}

Result<LaunchStudy> RunLaunchStudy(const Store& store, const Catalog& catalog,
                                   const LaunchStudyOptions& options) {
  AFFINITY_RETURN_IF_ERROR(options.Validate());
  LaunchStudy study;
  study.cutoff = options.cutoff;
  study.horizon_days = options.horizon_days;
  const UnixSeconds end = options.cutoff + int64_t{86400} * options.horizon_days;

  InteractionOptions io;
  io.to = options.cutoff;
  io.reference_time = options.cutoff;
  io.half_life_days = options.half_life_days;
  AFFINITY_ASSIGN_OR_RETURN(CsrMatrix matrix, ReadPurchaseMatrix(store, io));
  study.train_interactions = matrix.nnz();
  std::vector<int32_t> position(static_cast<size_t>(matrix.rows), -1);
  for (int64_t u = 0; u < matrix.rows; ++u) {
    if (matrix.RowEnd(u) > matrix.RowBegin(u)) {
      position[u] = static_cast<int32_t>(study.universe.size());
      study.universe.push_back(CustomerId{static_cast<uint32_t>(u)});
    }
  }
  if (study.universe.empty()) {
    return Status::FailedPrecondition("no purchase before the cutoff to learn from");
  }
  const auto start = std::chrono::steady_clock::now();
  IalsOptions ials_options = options.ials;
  ials_options.compute_loss = false;
  IalsModel ials(ials_options);
  AFFINITY_RETURN_IF_ERROR(ials.Fit(matrix));
  study.train_seconds = Since(start);

  // Cold-start maps on the trained products' factors.
  std::vector<ItemAttributes> items(catalog.items.begin(), catalog.items.end());
  items.resize(static_cast<size_t>(matrix.cols));
  std::vector<int32_t> support(static_cast<size_t>(matrix.cols), 0);
  for (int32_t i : matrix.indices) ++support[i];
  std::vector<ColdStartModel> maps;
  std::vector<ColdStartOptions> method_options = {options.cold_start};
  for (ColdStartMethod m : options.compare_methods) {
    method_options.push_back(options.cold_start);
    method_options.back().method = m;
  }
  for (const ColdStartOptions& o : method_options) {
    ColdStartModel map;
    AFFINITY_ASSIGN_OR_RETURN(ColdStartFitReport report,
                              map.Fit(items, support, ials.item_factors(), o));
    if (maps.empty()) study.cold_start = report;
    maps.push_back(std::move(map));
  }

  // New products: first sold in [cutoff, end); outcomes: a purchase within horizon_days of the
  // product's first sale.
  const int64_t horizon = int64_t{86400} * options.horizon_days;
  std::unordered_map<uint32_t, size_t> launch_of;
  for (size_t p = 0; p < catalog.first_sale.size(); ++p) {
    const auto& first = catalog.first_sale[p];
    if (!first || *first < options.cutoff || *first >= end) continue;
    // A launch whose outcome window runs past the data would count as unbought what may be
    // bought later: left out.
    const std::optional<UnixSeconds> outcomes_end =
        options.outcomes_end ? options.outcomes_end : catalog.newest_event;
    if (!outcomes_end || *first + horizon > *outcomes_end) {
      ++study.censored;
      continue;
    }
    launch_of.emplace(static_cast<uint32_t>(p), study.launches.size());
    study.launches.push_back(Launch{ProductId{static_cast<uint32_t>(p)}, {}, {}});
  }
  AFFINITY_RETURN_IF_ERROR(store.ScanEvents([&](const Event& e) {
    if (e.type != EventType::kPurchase || e.time < options.cutoff) return true;
    auto it = launch_of.find(e.product.value);
    if (it == launch_of.end() || e.customer.value >= position.size()) return true;
    if (e.time >= *catalog.first_sale[e.product.value] + horizon) return true;
    if (const int32_t pos = position[e.customer.value]; pos >= 0) {
      study.launches[it->second].buyers.push_back(pos);
    }
    return true;
  }));
  // The universe's factors, then one matrix-vector product per launch and method.
  RowMajorMatrixXf users(static_cast<int64_t>(study.universe.size()), ials.user_factors().cols());
  for (size_t k = 0; k < study.universe.size(); ++k) {
    users.row(static_cast<int64_t>(k)) = ials.user_factors().row(study.universe[k].value);
  }
  // What each universe customer bought before the cutoff (their matrix row).
  std::vector<PurchaseProfile> profiles(study.universe.size());
  for (size_t k = 0; k < study.universe.size(); ++k) {
    const int64_t u = study.universe[k].value;
    for (int64_t e = matrix.RowBegin(u); e < matrix.RowEnd(u); ++e) {
      const auto p = static_cast<size_t>(matrix.indices[e]);
      profiles[k].Add(p < catalog.items.size() ? catalog.items[p] : ItemAttributes{});
    }
  }
  // Recent activity: purchase events in the horizon before the cutoff.
  const UnixSeconds recent_from = options.cutoff - horizon;
  std::vector<UnixSeconds> first_purchase(study.universe.size(), options.cutoff);
  AFFINITY_RETURN_IF_ERROR(store.ScanEvents([&](const Event& e) {
    if (e.type != EventType::kPurchase || e.time >= options.cutoff) return true;
    if (e.customer.value >= position.size() || position[e.customer.value] < 0) return true;
    const auto k = static_cast<size_t>(position[e.customer.value]);
    first_purchase[k] = std::min(first_purchase[k], e.time);
    if (e.time >= recent_from) ++profiles[k].recent_purchases;
    return true;
  }));
  for (size_t k = 0; k < profiles.size(); ++k) {
    profiles[k].tenure_days = static_cast<double>(options.cutoff - first_purchase[k]) / 86400;
  }
  const size_t n = study.universe.size();
  study.score_scale = ScoreScale(users, ials.item_factors());
  const auto inv_scale = static_cast<float>(1 / study.score_scale);
  for (Launch& launch : study.launches) {
    std::sort(launch.buyers.begin(), launch.buyers.end());
    launch.buyers.erase(std::unique(launch.buyers.begin(), launch.buyers.end()),
                        launch.buyers.end());
    const ItemAttributes& item = launch.product.value < catalog.items.size()
                                     ? catalog.items[launch.product.value]
                                     : ItemAttributes{};
    const ProductKeys keys(item);
    for (size_t m = 0; m < maps.size(); ++m) {
      AFFINITY_ASSIGN_OR_RETURN(Eigen::VectorXf h, maps[m].Embed(item));
      Eigen::VectorXf s = users * h;
      if (m > 0) {
        launch.compare_scores.emplace_back(s.data(), s.data() + s.size());
        continue;
      }
      launch.features.resize(n * kAudienceFeatures);
      for (size_t k = 0; k < n; ++k) {
        AudienceFeatures(s[static_cast<Eigen::Index>(k)] * inv_scale, profiles[k], keys,
                         std::span<float, kAudienceFeatures>(
                             launch.features.data() + k * kAudienceFeatures, kAudienceFeatures));
      }
    }
  }
  return study;
}

Result<LogisticCalibration> CalibrateOnStudies(std::span<const LaunchStudy> studies) {
  // Negatives are subsampled (keeping every buyer) so that the fit stays within memory and
  // seconds on large shops, and weighted by 1/q so the fitted rates are unbiased.
  constexpr double kMaxNegatives = 2e6;
  int64_t negatives = 0, launches = 0;
  for (const LaunchStudy& study : studies) {
    for (const Launch& launch : study.launches) {
      negatives += static_cast<int64_t>(study.universe.size() - launch.buyers.size());
      ++launches;
    }
  }
  if (launches == 0) {
    return Status::InvalidArgument("no product was first sold in the calibration windows",
                                   "horizon_days");
  }
  const double q = std::min(1.0, kMaxNegatives / std::max<double>(1, negatives));
  // 2^64 · q, computed only when q < 1 (2^64 itself is out of uint64's range).
  const uint64_t keep_below = q < 1 ? static_cast<uint64_t>(q * 18446744073709551616.0) : 0;
  std::vector<float> x, weights;
  std::vector<uint8_t> labels;
  uint64_t pair = 0;
  for (const LaunchStudy& study : studies) {
    for (const Launch& launch : study.launches) {
      const size_t n = study.universe.size();
      std::vector<uint8_t> y(n, 0);
      for (int32_t b : launch.buyers) y[b] = 1;
      for (size_t k = 0; k < n; ++k, ++pair) {
        // splitmix64 of the pair's position: a fixed, well-spread sample.
        uint64_t h = pair + 0x9e3779b97f4a7c15ULL;
        h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
        h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
        h ^= h >> 31;
        if (!y[k] && q < 1 && h > keep_below) continue;
        x.insert(x.end(), launch.features.begin() + static_cast<ptrdiff_t>(k * kAudienceFeatures),
                 launch.features.begin() + static_cast<ptrdiff_t>((k + 1) * kAudienceFeatures));
        labels.push_back(y[k]);
        weights.push_back(y[k] ? 1.0f : static_cast<float>(1 / q));
      }
    }
  }
  AFFINITY_ASSIGN_OR_RETURN(LogisticCalibration c,
                            FitLogistic(x, labels, weights,
                                        std::vector<std::string>(kAudienceFeatureNames.begin(),
                                                                 kAudienceFeatureNames.end()),
                                        studies.front().horizon_days));
  c.products = launches;
  return c;
}

Result<LogisticCalibration> FitLaunchCalibration(const Store& store, const Catalog& catalog,
                                                 const LaunchStudyOptions& options, UnixSeconds end,
                                                 int periods) {
  if (periods < 1) return Status::InvalidArgument("must be >= 1", "calibration_periods");
  // The most recent `periods` windows with a launch that found a buyer, looking back at most
  // periods + 6 windows (a quiet month, or a stray late event, leaves a window empty).
  std::vector<LaunchStudy> studies;
  for (int k = 1; k <= periods + 6 && static_cast<int>(studies.size()) < periods; ++k) {
    LaunchStudyOptions o = options;
    o.cutoff = end - int64_t{86400} * options.horizon_days * (k + 1);
    o.outcomes_end = end;
    o.compare_methods.clear();
    auto study = RunLaunchStudy(store, catalog, o);
    if (!study.ok()) {
      // A window before the data, or too little of it to fit a cold-start map: nothing earlier
      // will do better. The store's errors are errors.
      const StatusCode code = study.status().code();
      if (code == StatusCode::kFailedPrecondition || code == StatusCode::kInvalidArgument) break;
      return study.status();
    }
    const bool bought = std::any_of(study->launches.begin(), study->launches.end(),
                                    [](const Launch& l) { return !l.buyers.empty(); });
    if (bought) studies.push_back(std::move(*study));
  }
  if (studies.empty()) {
    return Status::InvalidArgument(
        "no product first sold in the " + std::to_string(periods + 6) +
            " windows before the cutoff found a buyer within horizon_days",
        "horizon_days");
  }
  return CalibrateOnStudies(studies);
}

Result<AudienceModel> FitAudienceModel(const Store& store, const CsrMatrix& matrix,
                                       const IalsModel& model, const IalsOptions& ials,
                                       std::optional<double> half_life_days, UnixSeconds end,
                                       const AudienceModelOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  AudienceModel out;
  AFFINITY_ASSIGN_OR_RETURN(Catalog catalog, ReadCatalog(store));
  std::vector<ItemAttributes> items(catalog.items.begin(), catalog.items.end());
  items.resize(static_cast<size_t>(matrix.cols));
  std::vector<int32_t> support(static_cast<size_t>(matrix.cols), 0);
  for (int32_t i : matrix.indices) ++support[i];
  ColdStartOptions cold_start = options.cold_start;
  cold_start.method = ColdStartMethod::kRidge;
  ColdStartModel map;
  auto fit = map.Fit(items, support, model.item_factors(), cold_start);
  if (!fit.ok()) {
    out.cold_start_skipped = fit.status().ToString();
    out.calibration_skipped = "no cold-start map";
    return out;
  }
  out.cold_start_report = *fit;
  out.cold_start = std::move(map);
  out.score_scale = ScoreScale(model.user_factors(), model.item_factors());
  LaunchStudyOptions study;
  study.horizon_days = options.horizon_days;
  study.ials = ials;
  study.half_life_days = half_life_days;
  study.cold_start = cold_start;
  auto calibration = FitLaunchCalibration(store, catalog, study, end, options.calibration_periods);
  if (calibration.ok()) {
    out.calibration = std::move(*calibration);
  } else {
    out.calibration_skipped = calibration.status().ToString();
  }
  out.seconds = Since(start);
  return out;
}

AudienceMetrics ScoreAudience(std::span<const float> scores, std::span<const int32_t> buyers) {
  AudienceMetrics m;
  std::vector<int32_t> ranked;
  RankTopK(scores, {}, kAudienceCut, &ranked);
  m.recall100 = RecallAt(ranked, buyers, kAudienceCut);
  m.ndcg100 = NdcgAt(ranked, buyers, kAudienceCut);
  std::vector<uint8_t> labels(scores.size(), 0);
  for (int32_t b : buyers) labels[b] = 1;
  m.auc = Auc(scores, labels);
  m.products = 1;
  return m;
}

Result<NewProductEvaluation> EvaluateNewProducts(const Store& store,
                                                 const LaunchStudyOptions& options,
                                                 int calibration_periods) {
  AFFINITY_RETURN_IF_ERROR(options.Validate());
  const auto start = std::chrono::steady_clock::now();
  NewProductEvaluation out;
  AFFINITY_ASSIGN_OR_RETURN(Catalog catalog, ReadCatalog(store));

  // Calibration on the launches of the preceding periods, outcomes before the cutoff.
  AFFINITY_ASSIGN_OR_RETURN(
      out.calibration,
      FitLaunchCalibration(store, catalog, options, options.cutoff, calibration_periods));

  AFFINITY_ASSIGN_OR_RETURN(out.study, RunLaunchStudy(store, catalog, options));
  const LaunchStudy& study = out.study;
  out.new_products = static_cast<int64_t>(study.launches.size());
  std::vector<std::string> names = {std::string(ColdStartMethodName(options.cold_start.method))};
  for (ColdStartMethod m : options.compare_methods) names.emplace_back(ColdStartMethodName(m));

  // Baseline profiles from the purchases before the cutoff.
  std::unordered_map<uint32_t, int32_t> position;
  for (size_t k = 0; k < study.universe.size(); ++k) {
    position.emplace(study.universe[k].value, static_cast<int32_t>(k));
  }
  const size_t n = study.universe.size();
  std::vector<double> purchases(n, 0);
  std::vector<std::unordered_map<std::string, double>> category_spend(n), word_spend(n);
  std::vector<std::vector<std::string>> words(catalog.items.size());
  for (size_t p = 0; p < catalog.items.size(); ++p) {
    words[p] = TitleWords(catalog.items[p].title);
    std::sort(words[p].begin(), words[p].end());
    words[p].erase(std::unique(words[p].begin(), words[p].end()), words[p].end());
  }
  AFFINITY_RETURN_IF_ERROR(store.ScanEvents([&](const Event& e) {
    if (e.time >= options.cutoff) return true;
    auto it = position.find(e.customer.value);
    if (it == position.end() || e.product.value >= catalog.items.size()) return true;
    double sign = 0;
    if (e.type == EventType::kPurchase) sign = 1;
    if (e.type == EventType::kReturn) sign = -1;
    if (sign == 0) return true;
    const size_t u = static_cast<size_t>(it->second);
    if (sign > 0) purchases[u] += 1;
    const double spend = sign * e.quantity * e.unit_price;
    const auto& category = catalog.items[e.product.value].category;
    for (size_t l = 1; l <= category.size(); ++l) {
      category_spend[u][CategoryKey(category, l)] += spend;
    }
    for (const auto& w : words[e.product.value]) word_spend[u][w] += spend;
    return true;
  }));
  const std::vector<float> activity(purchases.begin(), purchases.end());

  std::vector<AudienceMetrics> sums(names.size());
  AudienceMetrics category_sum, active_sum;
  std::vector<double> predicted;
  std::vector<uint8_t> labels;
  std::vector<float> logits(n), column(n);
  std::vector<double> x(kAudienceFeatures);
  for (const Launch& launch : study.launches) {
    std::vector<uint8_t> y(n, 0);
    for (int32_t b : launch.buyers) y[b] = 1;
    for (size_t k = 0; k < n; ++k) {
      for (size_t j = 0; j < kAudienceFeatures; ++j) {
        x[j] = launch.features[k * kAudienceFeatures + j];
      }
      logits[k] = static_cast<float>(out.calibration.Logit(x));
      column[k] = launch.features[k * kAudienceFeatures];
      predicted.push_back(out.calibration.Probability(x));
    }
    labels.insert(labels.end(), y.begin(), y.end());
    LaunchOutcome outcome;
    outcome.product = launch.product;
    outcome.title = catalog.items[launch.product.value].title;
    outcome.first_sale = catalog.first_sale[launch.product.value].value_or(0);
    outcome.predicted_buyers =
        std::accumulate(predicted.end() - static_cast<ptrdiff_t>(n), predicted.end(), 0.0);
    outcome.observed_buyers = static_cast<int64_t>(launch.buyers.size());
    out.launches.push_back(outcome);
    if (launch.buyers.empty()) continue;
    Accumulate(ScoreAudience(logits, launch.buyers), &out.model);
    Accumulate(ScoreAudience(column, launch.buyers), &sums[0]);
    for (size_t m = 1; m < names.size(); ++m) {
      Accumulate(ScoreAudience(launch.compare_scores[m - 1], launch.buyers), &sums[m]);
    }
    // Category affinity: spend at the leaf, then each parent level; or title words.
    const auto& category = catalog.items[launch.product.value].category;
    std::vector<float> affinity;
    if (!category.empty()) {
      std::vector<std::vector<double>> keys(n);
      for (size_t u = 0; u < n; ++u) {
        for (size_t l = category.size(); l >= 1; --l) {
          auto it = category_spend[u].find(CategoryKey(category, l));
          keys[u].push_back(it == category_spend[u].end() ? 0.0 : it->second);
        }
      }
      affinity = RankScores(keys);
    } else {
      affinity.assign(n, 0);
      for (size_t u = 0; u < n; ++u) {
        double score = 0;
        for (const auto& w : words[launch.product.value]) {
          auto it = word_spend[u].find(w);
          if (it != word_spend[u].end()) score += it->second;
        }
        affinity[u] = static_cast<float>(score);
      }
    }
    Accumulate(ScoreAudience(affinity, launch.buyers), &category_sum);
    Accumulate(ScoreAudience(activity, launch.buyers), &active_sum);
  }
  for (size_t m = 0; m < names.size(); ++m) {
    Average(&sums[m]);
    out.methods[names[m]] = sums[m];
  }
  Average(&out.model);
  Average(&category_sum);
  Average(&active_sum);
  out.baselines["category_affinity"] = category_sum;
  out.baselines["most_active"] = active_sum;
  if (!predicted.empty()) {
    AFFINITY_ASSIGN_OR_RETURN(out.calibration_report, MeasureCalibration(predicted, labels));
  }
  out.seconds = Since(start);
  return out;
}

}  // namespace affinity
