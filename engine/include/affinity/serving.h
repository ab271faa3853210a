// ServingEngine: everything the HTTP server answers, as library calls. It owns the loaded model
// snapshot with its vector indexes, the online updates made since (fold-in), and small in-memory
// caches of the store (catalog, buyers per product, opt-outs, every customer's purchases and
// returns); the store stays the source of truth and every write goes to it first, then to the
// caches (the events it kept). Recommendations, similar products and audiences read no store
// except for ids created after the snapshot (the snapshot's ids are resolved from memory).
//
// Model state. A snapshot is loaded into an immutable ServingModel: factors, id maps, the
// fold-in solver and three VectorIndexes (products by inner product for recommendations, products
// by cosine for "similar", customers by inner product for audiences). Queries hold a
// std::shared_ptr to the state they started on, so a reload swaps the pointer and in-flight
// requests finish on the old model.
//
// Online updates (fold-in). After events are stored, each affected customer's row is re-solved
// exactly against the fixed item factors (FoldInSolver) from their whole history (the caches'
// copy of the store's), weighted as training weighted it (interactions.h, NetPurchases; decay
// measured from the later of the snapshot's reference time and the customer's newest event).
// The new vector goes into an overlay that recommendations read first. The customer index is
// not modified: audiences score overlay customers exactly and drop their stale index entries,
// so the next request sees the update. A reload re-solves every overlay customer against the
// new model before and after the swap, so no update is lost to a concurrent reload.
//
// New products. A product without a vector in the snapshot (created or first sold after it) gets
// one from its attributes through the snapshot's cold-start map, and, as purchases of it arrive,
// from its buyers: the item-side fold-in solves its row against the fixed customer factors
// exactly as training solved item rows (every buyer with weight 1). The served vector blends the
// two by the number n of buyers with a vector:
//   h = (n₀ · h_attributes + n · h_buyers) / (n₀ + n),   n₀ = ServingOptions::prior_buyers,
// so a product is placed by its attributes at launch and by its buyers once it has a few. These
// vectors live beside the snapshot (recomputed on reload, on PUT and on each purchase of the
// product); recommendations and similar products score them exactly and merge them with the
// index's answer.
//
// Audiences (new_products.h). Candidates are gathered from the customer index (by w_u · h, or
// by -w_u · h when the audience model's weight on the score is negative), the buyers of the
// product's category at its deepest level with enough of them and at the level above, best
// prospects first (their prior, the part of the model's logit that does not depend on the
// product, plus what their purchases there add; these lists are kept per category until the next
// reload), customers who stated an interest in it (under its deepest level first, then under
// the levels above), and the customers with the highest priors
// (or, when those sources could gather as many customers as there are, every customer is a
// candidate). The sources are read in rounds, max(64, limit / 4) candidates from each open one
// per round, each round scored before the next; a source closes when none of its round's
// candidates is among the best `limit` so far, or when it has given its share. Each candidate
// is scored by the snapshot's calibrated audience model from
// in-memory caches of what every customer bought and when (the products per customer and the
// purchase times: 4 + 8 bytes per purchase; no store read per candidate; any purchase counts,
// where training counts purchases net of returns), a stated interest counting as one purchase in
// its category (one product more, and one at each of the product's levels it is under). Candidates
// are ranked by the model's logit and given their probability of buying within the horizon and a
// reason. The model was calibrated on launches scored against their attribute vectors, so its score
// feature uses the product's attribute vector whenever the map gives one; the served vector
// (trained or blended) chooses the index candidates.
//
// Interests. A customer's learned interests are the categories of their purchases, at every
// level, weighted half by their share of the customer's distinct products and half by the
// customer vector's affinity to the category (the positive part of w_u · mean unit vector of the
// category's products, normalized over the categories of the same level); stated interests
// (CustomerProfile::interests) are listed beside them.
//
// Forgetting. ForgetCustomer deletes the customer from the store (Store::ForgetCustomer) and
// drops their overlay vector and buyer entries. A snapshot row whose customer has no record in
// the store (forgotten now, or before a restart) is never answered; a retrain that checks the
// store after the call leaves them out. Snapshot directories published before still hold their
// id, vector and insights row on disk until `affinity forget --snapshots` rewrites them. The
// deleted records are then taken out of the store's files (Store::EraseForgotten, a compaction of
// the ranges they were in: seconds on a store of a few hundred MB) by one background thread, in
// the order of the calls; several waiting at once are erased by one compaction of the whole store
// instead. The store keeps the erasures not yet done (Store::ErasuresPending, written with the
// delete): those an engine did not run before it was destroyed (or the process crashed) are done
// by the next engine opened on the store with ServingOptions::finish_erasures_at_start (`affinity
// serve`), by one compaction of the whole store in the background, or by `affinity forget --db`.
//
// Thread safety: every method may be called concurrently. Queries take shared locks on the
// caches only; writes are serialized by the store.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "affinity/insights.h"
#include "affinity/models/vector_index.h"
#include "affinity/status.h"
#include "affinity/store.h"

namespace affinity {

struct ServingOptions {
  // Products, for recommendations and similar products. Default: exact up to 20k products (a
  // scan of 20k rows at 64 factors takes ~0.1 ms), IVF above: on the clustered synthetic catalog
  // of the load benchmark (100k products) it kept recall@10 0.999 where HNSW fell to 0.94 at
  // 1.7 times the cost per query; on Gowalla's iALS factors the two are close (IVF 0.998 in
  // 11.5 µs, HNSW 0.995 in 9.6 µs); IVF builds 3-4 times faster (README "Serving",
  // benchmarks/bench_search.cc).
  VectorIndexOptions item_index = [] {
    VectorIndexOptions o;
    o.exact_limit = 20'000;
    o.approximate = VectorIndexKind::kIvf;
    return o;
  }();
  // Customers, for audiences. Default: exact up to 100k customers, IVF above (an audience asks
  // for up to thousands of results, which IVF serves in one pass over a few cells).
  VectorIndexOptions customer_index = [] {
    VectorIndexOptions o;
    o.exact_limit = 100'000;
    o.approximate = VectorIndexKind::kIvf;
    return o;
  }();
  // Largest k for recommendations and similar products (larger requests are capped). Default 100.
  int max_k = 100;
  // Largest audience (limit is capped). Default 10,000.
  int max_audience = 10'000;
  // Reasons consider the customer's most recent distinct products, at most this many. Default 256.
  int reason_history = 256;
  // Products kept in the popularity fallback (customers without a vector). Default 1,000.
  int popular_size = 1'000;
  // n₀ of the new-product blend (see the file comment). Default 5.
  double prior_buyers = 5;
  // Audience candidates per source at most, as a multiple of the limit (at least 64 more); a
  // source is read only as deep as it keeps adding to the audience. Default 4.
  int audience_candidates = 4;
  // A catalog key (category path or prefix, title word, tag) with at least this many products,
  // and 1/64 of the catalog when it reaches that, is also kept as a bitset over product ids: an
  // audience for a product with that key tests its candidates' purchases against it instead of
  // walking the key's products. Default 4,096 (docs/audiences.md); it changes the cost, never
  // the answer.
  int dense_key_products = 4'096;
  // At Open, erase the customers forgotten earlier whose erasure did not run (Store::
  // ErasuresPending: a server that stopped or crashed first) by one compaction of the whole store
  // in the background. For a long-running server (`affinity serve` sets it); a short run would
  // only start the compaction and cancel it at exit. Default false.
  bool finish_erasures_at_start = false;

  // InvalidArgument naming the field for a bad index option or a non-positive limit.
  Status Validate() const;
};

// What a loaded model is, for GET /v1/model and the metrics.
struct IndexInfo {
  std::string kind;  // "exact", "hnsw", "ivf"
  int64_t size = 0;
  double recall_at_10 = 1;  // against exact search at build time (1 for exact)
  double build_seconds = 0;
};
struct ModelInfo {
  int64_t version = 0;
  std::string created_at;
  int factors = 0;
  int64_t customers = 0;  // rows of the snapshot
  int64_t products = 0;
  IndexInfo item_index, similar_index, customer_index;
  // Products without a trained row that have a vector (attributes, buyers), the index over
  // them made with the model (kind "none" when there were none), and the seconds embedding them
  // and building it took.
  int64_t new_products = 0;
  IndexInfo new_product_index;
  // Of them, those (re)embedded with another vector since the index was made: their rows are
  // stale, so each is scored exactly on every recommendation and similar-products request until
  // they are indexed again (ReindexNewProducts, once they are many; or a reload).
  int64_t new_products_pending = 0;
  double new_products_seconds = 0;
  int64_t overlay_customers = 0;  // customers folded in since this snapshot was loaded
  std::string loaded_at;          // ISO 8601
};

struct Recommendation {
  std::string product;  // external id
  float score = 0;      // w_u · h_i
  // The customer's past purchase contributing most to the score (Hu et al. 2008 §5); empty
  // when the answer comes from the popularity fallback.
  std::string because;
};

struct RecommendRequest {
  std::string customer;  // external id
  int k = 10;
  // Only products in this category or below it ("Home/Kitchen" matches "Home/Kitchen/Mugs").
  std::optional<std::string> category;
  // Leave out products the customer has bought. Default true.
  bool exclude_purchased = true;
};

struct RecommendResult {
  std::vector<Recommendation> items;
  // "model" (snapshot vector), "fold_in" (updated since the snapshot) or "popular" (the
  // customer has no vector: no purchases the model knows).
  std::string source;
  int64_t model_version = 0;
};

struct SimilarProduct {
  std::string product;
  float score = 0;  // cosine similarity of the item vectors
};

struct AudienceMember {
  std::string customer;
  // The audience model's logit (ranks the audience); w_u · h_i for a snapshot without one.
  float score = 0;
  // Calibrated probability of buying the product within the horizon; unset without an audience
  // model in the snapshot.
  std::optional<double> probability;
  // Why: "purchased" (reason = the customer's past product closest to this one, by cosine of the
  // item vectors), "stated_interest" (reason = the stated category that covers the product's) or
  // "" (none).
  std::string reason_kind;
  std::string reason;
};

struct AudienceRequest {
  // The product, by external id; or, with `attributes` set and `product` empty, a product
  // described but not stored (what-if).
  std::string product;
  std::optional<ProductAttributes> attributes;
  int limit = 100;
  std::optional<float> min_score;         // leave out customers scoring below
  std::optional<double> min_probability;  // leave out customers less likely than this
  // The window of the probability, in days; default the calibration's (the snapshot's).
  std::optional<double> horizon_days;
  // Score every live customer instead of gathering candidates (the campaign planner ranks the
  // whole customer base; linear in the number of customers). `limit` is then not capped at
  // ServingOptions::max_audience.
  bool all_customers = false;
  // Keep customers who opted out (the campaign planner counts them in its report; it never
  // writes to them). Default false: the HTTP route never lists them.
  bool include_opted_out = false;
};

struct AudienceResult {
  std::vector<AudienceMember> customers;
  int64_t model_version = 0;
  // Where the product's vector came from: "model" (trained), "attributes" (cold start),
  // "blended" (attributes and buyers), "buyers" (no cold-start map in the snapshot).
  std::string product_vector;
  bool calibrated = false;     // probabilities come from the snapshot's audience model
  double horizon_days = 0;     // of the probabilities
  double expected_buyers = 0;  // Σ probability over the customers listed
  int64_t candidates = 0;      // customers scored
};

// {"product" (when given), "model_version", "product_vector", "calibrated", "horizon_days",
// "expected_buyers", "candidates", "customers": [{"customer", "score", "probability" (null when
// uncalibrated), "reason": null | {"kind", "product" | "category", "text"}}]}: what the HTTP
// route answers (the text, written directly: an audience may list thousands) and
// `affinity audience --json` prints (the same document parsed).
std::string AudienceResultJsonText(const AudienceResult& result,
                                   const std::string* product = nullptr);
nlohmann::json AudienceResultJson(const AudienceResult& result,
                                  const std::string* product = nullptr);

// One topic a customer cares about.
struct Interest {
  std::string category;  // path, e.g. "Home/Kitchen"
  int level = 1;         // 1 = top level
  double weight = 0;     // learned: in (0, 1]; stated: 1
  std::string source;    // "learned" or "stated"
};

// What AddEvents did: the store's counts, and the events refused (by index in the request).
struct AddEventsResult {
  AppendResult stored;
  struct Error {
    size_t index = 0;
    Status status;
  };
  std::vector<Error> errors;
  int64_t folded_in = 0;  // customers whose vectors were re-solved
  // Re-solves that failed after the events were stored (the events stay stored).
  std::vector<Status> fold_in_errors;
};

// What ServingEngine::ForgetCustomer did.
struct ForgetResult {
  ForgetReceipt store;           // what was deleted from the store
  bool had_vector = false;       // the served model (or an online update) had a vector for them
  int64_t snapshot_version = 0;  // the model being served when they were forgotten
  // The newest version under the snapshot root when they were forgotten (published, maybe not
  // loaded: it holds them too); snapshot_version if the root could not be listed.
  int64_t newest_snapshot = 0;
};

class ServingEngine {
 public:
  // Loads the current snapshot under `snapshot_root` and builds its indexes, and reads the caches
  // from `store` (a full scan of events, customers and products: seconds per million events).
  // `store` must outlive the engine. NotFound if there is no snapshot; Corruption for a damaged
  // one; FailedPrecondition if the snapshot's products or customers do not fit the store (ids
  // beyond the store's); the store's errors.
  static Result<std::unique_ptr<ServingEngine>> Open(Store* store, std::string snapshot_root,
                                                     ServingOptions options);
  ~ServingEngine();

  // Loads the current snapshot if it is newer than the one being served (or `force`), builds its
  // indexes off the request path, re-solves the overlay customers, and swaps it in; requests keep
  // being answered meanwhile. Returns the version served afterwards. Errors as Open; the old
  // model stays in service on any error.
  Result<int64_t> Reload(bool force = false);

  // ---- Queries ----

  // Top-k products for a customer. NotFound for an unknown customer; InvalidArgument (field
  // "k") for k < 1 (k above max_k is capped).
  Result<RecommendResult> Recommend(const RecommendRequest& request) const;
  // Products most similar to a product. NotFound for an unknown product; FailedPrecondition if
  // the model has no vector for it yet (no purchases before the snapshot); InvalidArgument for
  // k < 1.
  // `model_version`, when given, receives the version of the model that answered.
  Result<std::vector<SimilarProduct>> Similar(std::string_view product, int k,
                                              int64_t* model_version = nullptr) const;
  // Customers to tell about a product (or a described one), best first: not opted out, not
  // already buyers of it. NotFound for an unknown product; FailedPrecondition if the product has
  // no vector (no trained row, no attribute the cold-start map knows, no buyer);
  // InvalidArgument for limit < 1 (field "limit"), neither or both of product and attributes
  // ("product"), or a non-positive horizon ("horizon_days").
  Result<AudienceResult> Audience(const AudienceRequest& request) const;

  // The customer's interests: learned ones (best first, at most `limit`), then stated ones.
  // NotFound for an unknown customer.
  Result<std::vector<Interest>> Interests(std::string_view customer, int limit = 20) const;
  // Replaces the customer's stated interests (category paths, normalized; creating the customer
  // if new). InvalidArgument (field "interests") for an empty path; FailedPrecondition (field
  // "customer") for a forgotten id, as UpsertCustomer. Store errors. Returns true if the customer
  // was created.
  Result<bool> SetInterests(const std::string& customer, std::vector<std::string> categories);

  // ---- Writes ----

  // Validates each event; stores the valid ones in one durable batch (the store's dedup applies),
  // then folds in every customer they touch. Invalid events are returned by index and not stored;
  // those of forgotten customer ids are not stored either (counted in stored.forgotten). The
  // store's errors if the batch cannot be written (nothing stored, nothing folded in).
  Result<AddEventsResult> AddEvents(std::span<const EventInput> events);
  // Upserts one customer / product in the store and the caches (opt-out, catalog). A customer's
  // stated interests are stored normalized (as SetInterests); InvalidArgument (field
  // "interests", nothing stored) for an empty path; FailedPrecondition (field "customer", nothing
  // stored) for a forgotten id (Store::ForgetCustomer). Store errors. Returns true if it was
  // created.
  Result<bool> UpsertCustomer(const std::string& id, const CustomerProfile& profile);
  Result<bool> UpsertProduct(const std::string& id, const ProductAttributes& attributes);
  // Forgets a customer everywhere (see above). NotFound for an unknown customer. Waits for a
  // reload in progress. The popular products leave out their purchases from the next
  // RefreshCandidates.
  Result<ForgetResult> ForgetCustomer(std::string_view id);

  // Recomputes what chooses an audience's candidates from the purchases in memory: each
  // customer's prior (the product-independent part of the audience model's logit), the customers
  // by prior, the popular products, and the category prospect lists in use (Open and Reload drop
  // those instead, to be ranked on first use). Open and Reload do this; purchases added since
  // (AddEvents) count in an audience's scores at once, but in the choice of its candidates only
  // from the next refresh (`affinity serve` calls this every --refresh-candidates seconds). A
  // pass over every customer (0.07 s on the 1M-customer load shop), then one over each list's
  // buyers (~10 ms each there), beside serving: requests wait only while the new lists are swapped
  // in. Waits for a reload in progress. Returns false, doing nothing, when no purchase was added
  // and no customer forgotten since the last refresh.
  bool RefreshCandidates();
  // Indexes the new products again once many were re-embedded since their index was made (at
  // least 256 and an eighth of them: ModelInfo::new_products_pending, scored exactly on every
  // recommendation and similar-products request). Built beside serving, outside the locks (a
  // reload or forget does not wait for it), and swapped in; those re-embedded meanwhile stay
  // pending, and a state a reload retired meanwhile is left as it is (the new one indexes its
  // own). Returns false, doing nothing, below that threshold. `affinity serve` calls it every
  // --refresh-candidates seconds.
  bool ReindexNewProducts();

  // ---- Customer insights ----

  // Fits the shop-wide insights model (BG/NBD, Gamma-Gamma, RFM quintiles; a full scan, about a
  // second per few thousand customers) and makes it the one Insight uses. Errors of
  // ComputeShopInsights; the previous model stays in use.
  Status RefitInsights();
  // One customer's RFM scores, loyalty stage, P(alive), expected purchases and CLV, computed from
  // their stored history at request time, so events written since the fit count; "now" is the
  // newest event in the store (the fit's calibration end, moved on by AddEvents). NotFound for an
  // unknown customer or one with no purchase; FailedPrecondition before the first RefitInsights.
  Result<CustomerInsight> Insight(std::string_view customer) const;

  // Blocks until the erasures ForgetCustomer queued have run (see the file comment); returns how
  // many customers' erasures have failed since start (0: all done).
  int64_t WaitForErasures();

  // ---- Introspection ----
  ModelInfo Info() const;
  // The version of the snapshot being served (cheap: no index summaries).
  int64_t model_version() const;
  int64_t fold_ins() const { return fold_ins_.load(std::memory_order_relaxed); }
  int64_t reloads() const { return reloads_.load(std::memory_order_relaxed); }
  const ServingOptions& options() const { return options_; }
  Store& store() const { return *store_; }

 private:
  struct Model;
  struct State;
  struct Caches;
  ServingEngine(Store* store, std::string root, ServingOptions options);
  std::shared_ptr<State> current() const;
  Result<std::shared_ptr<const Model>> LoadModel(std::optional<int64_t> version) const;
  // Re-solves `customer` on the current state; retries if a reload retired it meanwhile.
  Status FoldIn(CustomerId customer);
  // The customer's row from their history (the caches' copy of the store's); empty if none of
  // their products is in the model.
  Result<Eigen::VectorXf> Solve(const Model& model, CustomerId customer) const;
  // Internal ids of external ones: the snapshot's ids from memory (a customer forgotten since is
  // looked up in the store, where the id may be new), others from the store. NotFound if unknown.
  Result<CustomerId> FindCustomer(const Model& model, std::string_view id) const;
  Result<ProductId> FindProduct(const Model& model, std::string_view id) const;
  // The popular products, and for audiences with `model`'s audience model each customer's prior
  // (the part of the logit that does not depend on the product) and the customers by it; drops
  // the category prospect lists. Computed under a shared lock on the caches, swapped in under an
  // exclusive one. Callers after Open hold reload_mu_ (so a refresh never follows a reload with
  // the model that reload replaced).
  void RefreshPopular(const Model& model);
  // The vector of a product without a trained row, from its attributes and buyers (see the file
  // comment), and where it came from; empty if there is nothing to go on. `changes` (if not
  // null): the product's change count (Caches::Changes) as of what was read.
  Eigen::VectorXf EmbedProduct(const Model& model, const State& state, uint32_t product,
                               std::string* source, uint32_t* changes = nullptr) const;
  // Recomputes the product's entry in the state's new-product vectors.
  void RefreshNewProduct(uint32_t product);
  // Sets (or, for an empty v, drops) the product's vector on `state`, whose mu the caller holds
  // exclusively; marks it pending (scored exactly) unless the vector is the one it had, and logs
  // it for a concurrent reload or re-index.
  static void StoreNewProduct(State* state, uint32_t product, Eigen::VectorXf v,
                              std::string source);
  // Fills a state's new-product vectors (every known product without a trained row).
  void EmbedNewProducts(State* state) const;
  // The new-product indexes (by inner product, by cosine) over `vectors` (a row per product id,
  // zero for those without a vector); null (and a message on stderr) if they cannot be built.
  std::pair<std::shared_ptr<const VectorIndex>, std::shared_ptr<const VectorIndex>>
  IndexNewProducts(const Model& model, RowMajorMatrixXf vectors) const;

  // The background thread of ForgetCustomer's erasures (Store::EraseForgotten).
  struct Eraser;
  void EraseLoop();
  void StartEraser();  // requires eraser_->mu; a no-op once started

  Store* store_;
  std::string root_;
  ServingOptions options_;
  std::unique_ptr<Caches> caches_;
  // Scratch over customers for audiences (marks and counts, 8 bytes per customer), reused across
  // requests: one per audience computed at once, kept for the next (the HTTP server admits 2 per
  // core at a time). Guarded by scratch_mu_.
  struct AudienceScratch;
  mutable std::mutex scratch_mu_;
  mutable std::vector<std::unique_ptr<AudienceScratch>> scratch_;
  mutable std::mutex state_mu_;  // guards state_ (the pointer, not the state)
  std::shared_ptr<State> state_;
  std::mutex reload_mu_;            // one reload at a time
  std::mutex reindex_mu_;           // one ReindexNewProducts at a time
  mutable std::mutex insights_mu_;  // guards insights_
  std::shared_ptr<const InsightsModel> insights_;
  std::unique_ptr<Eraser> eraser_;  // created at Open; its thread starts on the first forget
  std::atomic<int64_t> newest_event_{0};
  // Changes to what chooses candidates, in all (purchases AddEvents put in the caches, customers
  // forgotten); and that count at the last RefreshPopular.
  std::atomic<int64_t> purchases_added_{0}, purchases_at_refresh_{0};
  std::atomic<int64_t> fold_ins_{0};
  std::atomic<int64_t> reloads_{0};
};

}  // namespace affinity
