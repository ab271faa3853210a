// New-product audiences, offline: the launch study that fits and evaluates the cold-start map
// and the score-to-probability calibration on a store's own history.
//
// A launch study at cutoff T with horizon H (days):
//   1. trains iALS on the purchases before T (the same weighting as `affinity train`);
//   2. fits the cold-start map (cold_start.h) from product attributes to those item factors;
//   3. takes the products first sold in [T, T + H) — "new", withheld from training entirely,
//      since nobody bought them before T — and embeds each from its attributes alone;
//   4. scores every customer of the universe (live customers with a purchase before T, net of
//      returns) against each new product: s = w_u · ĥ; the customer's outcome is whether they
//      bought it within H days of its first sale (so by T + 2H at the latest).
// A product's first sale is the earlier of its stored created_at and its first purchase event.
//
// Audience model. A customer's interest in a new product is a logistic model (calibration.h) over
// eight features of the pair (AudienceFeatures), fitted on past launches:
//   model_score              w_u · ĥ / σ, the iALS score against the cold-start vector, with σ
//                            the model's score scale (ScoreScale): models trained on different
//                            data score on different scales, and the calibration must transfer
//   log_products_per_year    log(1 + r · distinct products the customer bought)
//   log_category_per_year    log(1 + r · those in the product's deepest category)
//   log_parent_per_year      log(1 + r · those in the parent of that category)
//   log_department_per_year  log(1 + r · those in the product's top-level category)
//   log_words_per_year       log(1 + r · mean over the product's title words of the number of
//                            the customer's products whose title has that word)
//   log_tags_per_year        log(1 + r · the customer's products sharing a tag with it, e.g. the
//                            manufacturer)
//   log_recent_purchases     log(1 + the customer's purchase events in the H days before now):
//                            how active they are at the moment (seasons, lapsing customers)
// with r = 365 / max(tenure, 90) and tenure the days since the customer's first purchase: counts
// per year, not totals. Totals grow with the time a shop has been recording, so a model fitted on
// last month's launches would see every customer as more engaged this month, and over-predict
// (on the Complete Journey sample by +12% to +38% with totals, −8% to +2% with rates).
// Its probability is the calibrated P(buys within H days of the launch), and its logit ranks the
// audience. The retraining job fits it on launch studies before the newest event
// (FitLaunchCalibration) and stores it in the snapshot. `affinity evaluate --protocol
// new-products` fits it the same way on the periods before T, then measures ranking quality and
// calibration on the study at T against two baselines computed from the purchases before T:
//   category_affinity: customers by past spend in the product's category, deepest level first
//     (spend at the leaf, then at each parent level, breaking ties); for products without a
//     category, by spend on products sharing title words:
//       score(u) = Σ_{w ∈ words(new)} Σ_{p bought by u, w ∈ words(p)} spend_up;
//   most_active: customers by number of purchase events.
// Metrics per new product with at least one buyer in the universe, then averaged (macro):
// recall@100, ndcg@100 (metrics.h definitions) and AUC over the whole universe. The iALS score
// alone is reported beside the model, per cold-start method.
#pragma once

#include <array>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "affinity/models/calibration.h"
#include "affinity/models/cold_start.h"
#include "affinity/models/ials.h"
#include "affinity/store.h"

namespace affinity {

// The models' view of a stored product. Of the description, only its DescriptionWords are kept
// (space-separated), which give the same cold-start features as the whole text.
ItemAttributes ToItemAttributes(const ProductAttributes& attributes);

// Every product's attributes and first sale, by internal id (products without a record get empty
// attributes; a product never sold and without created_at has no first sale).
struct Catalog {
  std::vector<ItemAttributes> items;
  std::vector<std::optional<UnixSeconds>> first_sale;
  std::optional<UnixSeconds> newest_event;
};
// One scan of products and one of events. The store's errors.
Result<Catalog> ReadCatalog(const Store& store);

// The audience model's features, in order (see the file comment).
// The names are stored with a snapshot's audience model; a server computing other features (an
// older or newer build) serves that snapshot's audiences uncalibrated.
inline constexpr std::array<std::string_view, 8> kAudienceFeatureNames = {
    "model_score",         "log_products_per_year",   "log_category_per_year",
    "log_parent_per_year", "log_department_per_year", "log_words_per_year",
    "log_tags_per_year",   "log_recent_purchases"};
// The counts are per kRateDays of the customer's tenure, taken as at least kMinTenureDays.
inline constexpr double kRateDays = 365;
inline constexpr double kMinTenureDays = 90;
inline constexpr size_t kAudienceFeatures = kAudienceFeatureNames.size();

// What a customer bought, by attribute: the counts the audience features read.
struct PurchaseProfile {
  int32_t products = 0;                                 // distinct products
  std::unordered_map<std::string, int32_t> categories;  // category path (every level) → products
  std::unordered_map<std::string, int32_t> words;       // title word → products
  std::unordered_map<std::string, int32_t> tags;        // tag → products
  int32_t recent_purchases = 0;                         // purchase events in the horizon before now
  double tenure_days = 0;                               // days since the first purchase
  // Counts one more distinct product.
  void Add(const ItemAttributes& item);
};

// A product's keys for the features: its deepest category path, that path's parent (itself for
// one level), its top level, its distinct title words (the first max_words in sorted order) and
// tags (the first max_tags). The product a feature is computed for has its keys bounded (so that
// serving marks each catalog product's matches in one 32-bit mask); the products a customer
// bought count with all of theirs (PurchaseProfile::Add), so serving indexes the catalog by
// every word and tag (SIZE_MAX).
inline constexpr size_t kMaxKeyWords = 24;
inline constexpr size_t kMaxKeyTags = 5;
struct ProductKeys {
  std::string category, parent, department;
  std::vector<std::string> words, tags;
  explicit ProductKeys(const ItemAttributes& item, size_t max_words = kMaxKeyWords,
                       size_t max_tags = kMaxKeyTags);
};

// σ = sqrt(mean over customers u and products i of (w_u · h_i)²), the RMS score of the model,
// from the Gram matrices: σ² = ⟨WᵀW, HᵀH⟩ / (|W| |H|), over the non-zero rows of each (1 when
// there are none). Costs (rows of W + rows of H) · d² flops.
double ScoreScale(const RowMajorMatrixXf& customers, const RowMajorMatrixXf& products);

// What the features need of a customer's purchases, for one product's keys: their distinct
// products, how many of those are in the product's category / its parent / its top level, the
// sum over the product's title words (tags) of how many share that word (tag), and their purchase
// events in the horizon, and the days since their first purchase. Serving counts these straight
// from its caches.
struct KeyCounts {
  int32_t products = 0;
  int32_t category = 0, parent = 0, department = 0;
  double words = 0, tags = 0;
  int32_t recent = 0;
  double tenure_days = 0;
};

// Writes the kAudienceFeatures features of (customer, product) into `out`.
void AudienceFeatures(float scaled_model_score, const PurchaseProfile& profile,
                      const ProductKeys& keys, std::span<float, kAudienceFeatures> out);
// The same from the counts (keys that are empty count 0).
void AudienceFeatures(float scaled_model_score, const KeyCounts& counts, const ProductKeys& keys,
                      std::span<float, kAudienceFeatures> out);

struct LaunchStudyOptions {
  UnixSeconds cutoff = 0;
  int horizon_days = 30;
  IalsOptions ials;
  // Recency half-life of training weights in days (unset: no decay), measured from the cutoff.
  std::optional<double> half_life_days = 365;
  ColdStartOptions cold_start;
  // Outcomes are read up to this instant (exclusive); a launch whose window ends later is left
  // out. Default: the newest event.
  std::optional<UnixSeconds> outcomes_end;
  // Also embed the new products with these cold-start methods (for comparisons), on the same
  // iALS factors.
  std::vector<ColdStartMethod> compare_methods;

  // InvalidArgument naming the field (horizon_days < 1, bad iALS or cold-start options).
  Status Validate() const;
};

// One new product of a study.
struct Launch {
  ProductId product;
  std::vector<int32_t> buyers;  // positions in LaunchStudy::universe, ascending
  // The audience features of every universe customer (row-major, universe × kAudienceFeatures;
  // model_score by the main cold-start method).
  std::vector<float> features;
  // iALS scores of every universe customer by each compare_methods entry.
  std::vector<std::vector<float>> compare_scores;
};

struct LaunchStudy {
  UnixSeconds cutoff = 0;
  int horizon_days = 0;
  std::vector<CustomerId> universe;  // live customers with a purchase before the cutoff
  std::vector<Launch> launches;      // products first sold in [cutoff, cutoff + horizon)
  int64_t censored = 0;  // launches left out: their outcome window ends after the newest event
  ColdStartFitReport cold_start;  // of the main method
  int64_t train_interactions = 0;
  double train_seconds = 0;
  double score_scale = 1;  // ScoreScale of the study's model
};

// Runs the study (see the file comment). InvalidArgument for bad options; FailedPrecondition
// when there is no purchase before the cutoff; the store's, iALS's and the cold-start fit's
// errors.
Result<LaunchStudy> RunLaunchStudy(const Store& store, const Catalog& catalog,
                                   const LaunchStudyOptions& options);

// The audience model fitted on all (customer, launch) pairs of the studies, pooled (negatives
// subsampled to at most 2 million, weighted back). InvalidArgument when they have no launch or
// no buyer.
Result<LogisticCalibration> CalibrateOnStudies(std::span<const LaunchStudy> studies);

// The audience model for a model trained on the data before `end`, fitted on the launches of
// the `periods` most recent windows that have a launch with a buyer, among the windows at
// cutoffs end − (k+1)·H, k = 1 .. periods + 6, every outcome read before `end` (so it never sees
// what a model at `end` is evaluated on). Errors of RunLaunchStudy and CalibrateOnStudies;
// InvalidArgument for periods < 1 or when no window has a launch with a buyer.
Result<LogisticCalibration> FitLaunchCalibration(const Store& store, const Catalog& catalog,
                                                 const LaunchStudyOptions& options, UnixSeconds end,
                                                 int periods);

// Ranking metrics of one audience ranker, averaged over the launches with a buyer.
struct AudienceMetrics {
  double recall100 = 0, ndcg100 = 0, auc = 0;
  int64_t products = 0;  // launches averaged over
  // Launches the AUC is averaged over: those with a customer who did not buy (when every
  // customer bought, there is no pair to order). NaN AUC when there is none.
  int64_t auc_products = 0;
};

// One launch of the evaluated study: its calibrated total against what happened.
struct LaunchOutcome {
  ProductId product;
  std::string title;
  UnixSeconds first_sale = 0;
  double predicted_buyers = 0;  // Σ over the universe of the calibrated probabilities
  int64_t observed_buyers = 0;  // universe customers who bought it within the horizon
};

struct NewProductEvaluation {
  LaunchStudy study;
  LogisticCalibration calibration;  // FitLaunchCalibration(cutoff, calibration_periods)
  AudienceMetrics model;            // ranked by the audience model
  std::map<std::string, AudienceMetrics> methods;    // the iALS score alone, per cold-start method
  std::map<std::string, AudienceMetrics> baselines;  // "category_affinity", "most_active"
  CalibrationReport calibration_report;  // calibrated probabilities against outcomes, all pairs
  int64_t new_products = 0;              // launches (with or without a buyer)
  std::vector<LaunchOutcome> launches;   // in the study's order (by product id)
  double seconds = 0;
};

// The protocol of `affinity evaluate --protocol new-products`: calibration fitted before the
// cutoff (FitLaunchCalibration over `calibration_periods`), then the study at the cutoff. Errors
// of RunLaunchStudy and FitLaunchCalibration (its studies need launches with buyers too).
Result<NewProductEvaluation> EvaluateNewProducts(const Store& store,
                                                 const LaunchStudyOptions& options,
                                                 int calibration_periods = 1);

// The audience model of a trained snapshot, as the retraining job fits it.
struct AudienceModelOptions {
  int horizon_days = 30;
  int calibration_periods = 1;
  ColdStartOptions cold_start;  // ridge only (the snapshot stores ridge maps)
};
struct AudienceModel {
  std::optional<ColdStartModel> cold_start;
  std::optional<LogisticCalibration> calibration;
  double score_scale = 1;
  ColdStartFitReport cold_start_report;
  // Why a part is missing ("" when present): e.g. no product attributes, no launches.
  std::string cold_start_skipped, calibration_skipped;
  double seconds = 0;
};
// Fits the cold-start map on `model`'s item factors (support: the column counts of `matrix`, the
// matrix it was trained on) and the calibration on launch studies ending at `end` (the training
// cutoff, exclusive), each study training iALS with `ials` and `weighting`'s half-life. A part
// that cannot be fitted is left unset with the reason; errors only from reading the store.
Result<AudienceModel> FitAudienceModel(const Store& store, const CsrMatrix& matrix,
                                       const IalsModel& model, const IalsOptions& ials,
                                       std::optional<double> half_life_days, UnixSeconds end,
                                       const AudienceModelOptions& options);

// Metrics of one score vector over the universe against the launch's buyers.
AudienceMetrics ScoreAudience(std::span<const float> scores, std::span<const int32_t> buyers);

}  // namespace affinity
