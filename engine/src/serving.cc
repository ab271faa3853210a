#include "affinity/serving.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>

#include "affinity/interactions.h"
#include "affinity/models/ials.h"
#include "affinity/snapshot.h"
#include "affinity/time_util.h"

namespace affinity {

namespace {

UnixSeconds Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Keeps the best `k` of a stream of (score, id), ties broken by the smaller id.
template <typename Id>
class TopK {
 public:
  explicit TopK(size_t k) : k_(k) {}
  void Push(float score, Id id) {
    if (k_ == 0) return;
    if (heap_.size() < k_) {
      heap_.emplace_back(score, id);
      std::push_heap(heap_.begin(), heap_.end(), Worse);
    } else if (Worse({score, id}, heap_.front())) {
      std::pop_heap(heap_.begin(), heap_.end(), Worse);
      heap_.back() = {score, id};
      std::push_heap(heap_.begin(), heap_.end(), Worse);
    }
  }
  // Best first.
  std::vector<std::pair<float, Id>> Take() {
    std::sort(heap_.begin(), heap_.end(), Worse);
    return std::move(heap_);
  }

 private:
  // a ranks before b (a "less" for the heap means a is better, so the heap top is the worst).
  static bool Worse(const std::pair<float, Id>& a, const std::pair<float, Id>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  }
  size_t k_;
  std::vector<std::pair<float, Id>> heap_;
};

bool NonZero(const RowMajorMatrixXf& m, int64_t row) {
  return row >= 0 && row < m.rows() && m.row(row).squaredNorm() > 0;
}

// True if `path` is `prefix` or lies below it ("Home/Kitchen" covers "Home/Kitchen/Mugs").
bool UnderCategory(std::string_view path, std::string_view prefix) {
  if (!path.starts_with(prefix)) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

}  // namespace

Status ServingOptions::Validate() const {
  if (Status s = item_index.Validate(); !s.ok()) {
    return Status::InvalidArgument(s.message(), "item_index." + s.field());
  }
  if (Status s = customer_index.Validate(); !s.ok()) {
    return Status::InvalidArgument(s.message(), "customer_index." + s.field());
  }
  if (max_k < 1) return Status::InvalidArgument("max_k must be >= 1", "max_k");
  if (max_audience < 1) return Status::InvalidArgument("max_audience must be >= 1", "max_audience");
  if (reason_history < 1) {
    return Status::InvalidArgument("reason_history must be >= 1", "reason_history");
  }
  if (popular_size < 1) return Status::InvalidArgument("popular_size must be >= 1", "popular_size");
  return Status::Ok();
}

// One loaded snapshot: immutable.
struct ServingEngine::Model {
  Snapshot snapshot;
  IalsOptions ials;
  InteractionOptions weighting;  // how training weighted purchases (decay, reference time)
  RowMajorMatrixXf unit_items;   // item factors scaled to unit length (cosine)
  std::unique_ptr<FoldInSolver> solver;
  std::unique_ptr<VectorIndex> items, similar, customers;
  std::string loaded_at;

  const RowMajorMatrixXf& users() const { return snapshot.user_factors; }
  const RowMajorMatrixXf& item_factors() const { return snapshot.item_factors; }

  // The product's external id: from the snapshot (memory) when it has it, else the store
  // (products created after the snapshot). Empty if unknown.
  std::string ProductName(const Store& store, uint32_t p) const {
    if (p < snapshot.product_ids.size() && !snapshot.product_ids[p].empty()) {
      return snapshot.product_ids[p];
    }
    auto id = store.ProductExternalId(ProductId{p});
    return id.ok() ? std::move(*id) : std::string();
  }
};

// A model plus the customers folded in on it.
struct ServingEngine::State {
  std::shared_ptr<const Model> model;
  mutable std::shared_mutex mu;
  std::unordered_map<uint32_t, Eigen::VectorXf> overlay;  // guarded by mu
  std::vector<uint32_t> log;                              // guarded by mu: customers written
  bool retired = false;                                   // guarded by mu

  // Copies the customer's overlay vector into *w (empty: folded in, but no vector). False if
  // the customer has not been folded in on this state.
  bool Overlay(uint32_t customer, Eigen::VectorXf* w) const {
    std::shared_lock lock(mu);
    auto it = overlay.find(customer);
    if (it == overlay.end()) return false;
    *w = it->second;
    return true;
  }
};

struct ServingEngine::Caches {
  mutable std::shared_mutex mu;
  struct Product {
    std::string category;  // joined path
    bool available = true;
    bool known = false;  // has a record
  };
  std::vector<Product> products;                                       // by product id
  std::unordered_map<std::string, std::vector<uint32_t>> by_category;  // every prefix
  std::vector<std::vector<uint32_t>> buyers;                           // sorted, by product
  std::unordered_set<uint32_t> opted_out;
  // Customers with a record in the store, by internal id. A snapshot row whose customer has no
  // record was forgotten (now, or before a restart) and is never answered.
  std::vector<bool> live;
  std::vector<uint32_t> popular;  // products by number of buyers, most first

  void SetProduct(uint32_t id, const ProductAttributes& a) {
    if (products.size() <= id) products.resize(id + 1);
    Product& p = products[id];
    const std::string category = a.category ? JoinCategory(*a.category) : "";
    if (p.known && p.category != category) {
      ForEachPrefix(p.category, [&](const std::string& prefix) {
        auto& v = by_category[prefix];
        v.erase(std::remove(v.begin(), v.end(), id), v.end());
      });
    }
    if (!p.known || p.category != category) {
      ForEachPrefix(category,
                    [&](const std::string& prefix) { by_category[prefix].push_back(id); });
    }
    p.category = category;
    p.available = a.available.value_or(true);
    p.known = true;
  }

  void AddBuyer(uint32_t product, uint32_t customer) {
    if (buyers.size() <= product) buyers.resize(product + 1);
    auto& v = buyers[product];
    auto it = std::lower_bound(v.begin(), v.end(), customer);
    if (it == v.end() || *it != customer) v.insert(it, customer);
  }

  bool Bought(uint32_t product, uint32_t customer) const {
    if (product >= buyers.size()) return false;
    return std::binary_search(buyers[product].begin(), buyers[product].end(), customer);
  }

  bool Available(uint32_t product) const {
    return product >= products.size() || products[product].available;
  }

  template <typename Fn>
  static void ForEachPrefix(const std::string& path, const Fn& fn) {
    if (path.empty()) return;
    for (size_t pos = path.find('/'); pos != std::string::npos; pos = path.find('/', pos + 1)) {
      fn(path.substr(0, pos));
    }
    fn(path);
  }
};

ServingEngine::ServingEngine(Store* store, std::string root, ServingOptions options)
    : store_(store),
      root_(std::move(root)),
      options_(std::move(options)),
      caches_(std::make_unique<Caches>()) {}

ServingEngine::~ServingEngine() = default;

std::shared_ptr<ServingEngine::State> ServingEngine::current() const {
  std::lock_guard lock(state_mu_);
  return state_;
}

Result<std::unique_ptr<ServingEngine>> ServingEngine::Open(Store* store, std::string snapshot_root,
                                                           ServingOptions options) {
  AFFINITY_RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<ServingEngine> engine(
      new ServingEngine(store, std::move(snapshot_root), std::move(options)));
  Caches& c = *engine->caches_;
  AFFINITY_RETURN_IF_ERROR(store->ScanProducts([&](ProductId id, const ProductAttributes& a) {
    c.SetProduct(id.value, a);
    return true;
  }));
  c.live.resize(store->customer_id_limit());
  AFFINITY_RETURN_IF_ERROR(store->ScanCustomers([&](CustomerId id, const CustomerProfile& p) {
    if (id.value >= c.live.size()) c.live.resize(id.value + 1);
    c.live[id.value] = true;
    if (p.opted_out.value_or(false)) c.opted_out.insert(id.value);
    return true;
  }));
  c.buyers.resize(store->product_id_limit());
  AFFINITY_RETURN_IF_ERROR(store->ScanEvents([&](const Event& e) {
    // Events arrive in customer order, so each buyer list is appended in ascending order.
    if (e.type != EventType::kPurchase) return true;
    auto& v = c.buyers[e.product.value];
    if (v.empty() || v.back() != e.customer.value) v.push_back(e.customer.value);
    return true;
  }));
  engine->RefreshPopular();
  AFFINITY_ASSIGN_OR_RETURN(auto model, engine->LoadModel(std::nullopt));
  auto state = std::make_shared<State>();
  state->model = std::move(model);
  engine->state_ = std::move(state);
  return engine;
}

void ServingEngine::RefreshPopular() {
  std::unique_lock lock(caches_->mu);
  Caches& c = *caches_;
  TopK<uint32_t> top(static_cast<size_t>(options_.popular_size));
  for (size_t p = 0; p < c.buyers.size(); ++p) {
    if (!c.buyers[p].empty())
      top.Push(static_cast<float>(c.buyers[p].size()), static_cast<uint32_t>(p));
  }
  c.popular.clear();
  for (const auto& [count, p] : top.Take()) c.popular.push_back(p);
}

Result<std::shared_ptr<const ServingEngine::Model>> ServingEngine::LoadModel(
    std::optional<int64_t> version) const {
  auto model = std::make_shared<Model>();
  AFFINITY_ASSIGN_OR_RETURN(model->snapshot, LoadSnapshot(root_, version));
  const Snapshot& s = model->snapshot;
  if (static_cast<int64_t>(s.customer_ids.size()) > store_->customer_id_limit() ||
      static_cast<int64_t>(s.product_ids.size()) > store_->product_id_limit()) {
    return Status::FailedPrecondition(
        "snapshot v" + std::to_string(s.version) +
        " has more customers or products than the store: it was trained on another store");
  }
  // The snapshot's rows must be the store's internal ids (train writes them so).
  for (size_t p = 0; p < s.product_ids.size();
       p += std::max<size_t>(1, s.product_ids.size() / 64)) {
    if (s.product_ids[p].empty()) continue;
    auto id = store_->FindProduct(s.product_ids[p]);
    if (!id.ok() || id->value != p) {
      return Status::FailedPrecondition("snapshot v" + std::to_string(s.version) +
                                        " does not match the store's product ids (product '" +
                                        s.product_ids[p] + "')");
    }
  }
  const nlohmann::json& manifest = s.manifest;
  if (auto it = manifest.find("options"); it != manifest.end()) {
    AFFINITY_ASSIGN_OR_RETURN(model->ials, IalsOptionsFromJson(*it));
  }
  model->ials.factors = static_cast<int>(s.item_factors.cols());
  if (auto src = manifest.find("source"); src != manifest.end() && src->is_object()) {
    if (auto h = src->find("half_life_days"); h != src->end() && h->is_number() && *h > 0) {
      model->weighting.half_life_days = h->get<double>();
    }
    if (auto r = src->find("reference_time"); r != src->end() && r->is_number_integer()) {
      model->weighting.reference_time = r->get<int64_t>();
    }
  }
  model->solver = std::make_unique<FoldInSolver>(model->ials, &s.item_factors, s.item_weights);
  model->unit_items = s.item_factors;
  for (Eigen::Index i = 0; i < model->unit_items.rows(); ++i) {
    const float norm = model->unit_items.row(i).norm();
    if (norm > 0) model->unit_items.row(i) /= norm;
  }
  AFFINITY_ASSIGN_OR_RETURN(
      model->items, VectorIndex::Build(s.item_factors, options_.item_index, &s.user_factors));
  AFFINITY_ASSIGN_OR_RETURN(model->similar,
                            VectorIndex::Build(model->unit_items, options_.item_index));
  AFFINITY_ASSIGN_OR_RETURN(
      model->customers,
      VectorIndex::Build(s.user_factors, options_.customer_index, &s.item_factors));
  model->loaded_at = FormatTimestamp(Now());
  return std::shared_ptr<const Model>(std::move(model));
}

Result<Eigen::VectorXf> ServingEngine::Solve(const Model& model, CustomerId customer) const {
  AFFINITY_ASSIGN_OR_RETURN(std::vector<Event> history, store_->CustomerHistory(customer));
  InteractionOptions weighting = model.weighting;
  if (weighting.reference_time) {
    for (const Event& e : history)
      weighting.reference_time = std::max(*weighting.reference_time, e.time);
  }
  AFFINITY_ASSIGN_OR_RETURN(auto net, NetPurchases(history, weighting));
  std::vector<int32_t> items;
  std::vector<float> weights;
  for (const auto& [product, r] : net) {
    if (!NonZero(model.item_factors(), product.value)) continue;  // not in the model
    items.push_back(static_cast<int32_t>(product.value));
    weights.push_back(r);
  }
  if (items.empty()) return Eigen::VectorXf();
  return model.solver->Solve(items, weights);
}

Status ServingEngine::FoldIn(CustomerId customer) {
  for (;;) {
    std::shared_ptr<State> state = current();
    AFFINITY_ASSIGN_OR_RETURN(Eigen::VectorXf w, Solve(*state->model, customer));
    std::unique_lock lock(state->mu);
    if (state->retired) continue;  // a reload swapped models meanwhile: solve on the new one
    // Forgotten after the history was read: ForgetCustomer deletes from the store before it
    // erases the overlay under this lock, so checking the store here cannot miss it.
    if (!store_->CustomerExternalId(customer).ok()) return Status::Ok();
    state->overlay[customer.value] = std::move(w);
    state->log.push_back(customer.value);
    fold_ins_.fetch_add(1, std::memory_order_relaxed);
    return Status::Ok();
  }
}

Result<int64_t> ServingEngine::Reload(bool force) {
  std::lock_guard reload_lock(reload_mu_);
  std::shared_ptr<State> old = current();
  if (!force) {
    AFFINITY_ASSIGN_OR_RETURN(int64_t latest, CurrentSnapshotVersion(root_));
    if (latest == old->model->snapshot.version) return latest;
  }
  AFFINITY_ASSIGN_OR_RETURN(std::shared_ptr<const Model> model, LoadModel(std::nullopt));
  auto next = std::make_shared<State>();
  next->model = model;
  // Re-solves `customers` on the new model. One that fails keeps no overlay there (it is served
  // from the new snapshot's row, or the popularity fallback) and is logged. With `keep_newer`,
  // an entry already on `next` is kept: it was solved after the swap, from a newer history.
  auto refold = [&](const std::vector<uint32_t>& customers, bool keep_newer) {
    for (uint32_t c : customers) {
      auto w = Solve(*model, CustomerId{c});
      if (!w.ok()) {
        std::fprintf(stderr, "reload: re-solving customer #%u failed: %s\n", c,
                     w.status().ToString().c_str());
        continue;
      }
      std::unique_lock lock(next->mu);
      if (!store_->CustomerExternalId(CustomerId{c}).ok()) continue;  // forgotten meanwhile
      if (keep_newer) {
        next->overlay.try_emplace(c, std::move(*w));
      } else {
        next->overlay[c] = std::move(*w);
      }
    }
  };
  // Customers folded in on the old model: re-solve them on the new one before the swap ...
  std::vector<uint32_t> first;
  size_t seen = 0;
  {
    std::shared_lock lock(old->mu);
    for (const auto& [c, w] : old->overlay) first.push_back(c);
    seen = old->log.size();
  }
  refold(first, /*keep_newer=*/false);
  {
    std::lock_guard lock(state_mu_);
    state_ = next;
  }
  // ... and those written to the old state after that, until it was retired.
  std::vector<uint32_t> late;
  {
    std::unique_lock lock(old->mu);
    old->retired = true;
    late.assign(old->log.begin() + static_cast<std::ptrdiff_t>(seen), old->log.end());
  }
  refold(late, /*keep_newer=*/true);
  reloads_.fetch_add(1, std::memory_order_relaxed);
  RefreshPopular();
  return model->snapshot.version;
}

Result<RecommendResult> ServingEngine::Recommend(const RecommendRequest& request) const {
  if (request.k < 1) return Status::InvalidArgument("k must be >= 1", "k");
  const size_t k = static_cast<size_t>(std::min(request.k, options_.max_k));
  AFFINITY_ASSIGN_OR_RETURN(CustomerId customer, store_->FindCustomer(request.customer));
  std::shared_ptr<State> state = current();
  const Model& model = *state->model;
  RecommendResult result;
  result.model_version = model.snapshot.version;

  // The customer's vector: updated since the snapshot, else the snapshot's.
  Eigen::VectorXf w;
  if (state->Overlay(customer.value, &w)) {
    result.source = "fold_in";
  } else if (NonZero(model.users(), customer.value)) {
    w = model.users().row(customer.value).transpose();
    result.source = "model";
  }
  if (w.size() == 0) result.source = "popular";

  AFFINITY_ASSIGN_OR_RETURN(std::vector<Event> history, store_->CustomerHistory(customer));
  std::unordered_set<uint32_t> purchased;
  for (const Event& e : history) {
    if (e.type == EventType::kPurchase) purchased.insert(e.product.value);
  }
  std::shared_lock caches_lock(caches_->mu);
  const Caches& c = *caches_;
  auto eligible = [&](uint32_t p) {
    if (request.exclude_purchased && purchased.count(p)) return false;
    if (!c.Available(p)) return false;
    if (request.category) {
      if (p >= c.products.size() || !UnderCategory(c.products[p].category, *request.category)) {
        return false;
      }
    }
    return true;
  };

  std::vector<std::pair<float, uint32_t>> top;
  if (w.size() == 0) {
    for (uint32_t p : c.popular) {
      if (top.size() >= k) break;
      if (eligible(p)) top.emplace_back(0.0f, p);
    }
    for (size_t i = 0; i < top.size(); ++i) {
      top[i].first = static_cast<float>(c.buyers[top[i].second].size());
    }
  } else if (request.category) {
    // A category is usually small: score its members exactly.
    TopK<uint32_t> best(k);
    auto it = c.by_category.find(*request.category);
    if (it != c.by_category.end()) {
      for (uint32_t p : it->second) {
        if (!NonZero(model.item_factors(), p) || !eligible(p)) continue;
        best.Push(model.item_factors().row(p).dot(w), p);
      }
    }
    top = best.Take();
  } else {
    // Ask the index for more than k, as bought and unavailable products are dropped after.
    int64_t want =
        static_cast<int64_t>(k + (request.exclude_purchased ? purchased.size() : 0) + 16);
    for (;;) {
      AFFINITY_ASSIGN_OR_RETURN(auto hits, model.items->Search(w.data(), want));
      top.clear();
      for (const auto& h : hits) {
        const auto p = static_cast<uint32_t>(h.row);
        if (eligible(p)) top.emplace_back(h.score, p);
        if (top.size() == k) break;
      }
      if (top.size() == k || static_cast<int64_t>(hits.size()) < want) break;
      want *= 4;
    }
  }

  // Reasons: which past purchase contributes most to each score (fold-in decomposition).
  std::vector<std::string> because(top.size());
  if (w.size() > 0 && !top.empty()) {
    InteractionOptions weighting = model.weighting;
    if (weighting.reference_time) {
      for (const Event& e : history)
        weighting.reference_time = std::max(*weighting.reference_time, e.time);
    }
    AFFINITY_ASSIGN_OR_RETURN(auto net, NetPurchases(history, weighting));
    // The most recent distinct products, at most reason_history of them.
    std::unordered_map<uint32_t, float> weight_of(net.size());
    for (const auto& [p, r] : net) weight_of[p.value] = r;
    std::vector<int32_t> items;
    std::vector<float> weights;
    std::unordered_set<uint32_t> taken;
    for (auto e = history.rbegin(); e != history.rend(); ++e) {
      const uint32_t p = e->product.value;
      auto it = weight_of.find(p);
      if (it == weight_of.end() || !NonZero(model.item_factors(), p) || !taken.insert(p).second) {
        continue;
      }
      items.push_back(static_cast<int32_t>(p));
      weights.push_back(it->second);
      if (static_cast<int>(items.size()) >= options_.reason_history) break;
    }
    std::vector<int32_t> targets;
    std::vector<size_t> positions;
    for (size_t i = 0; i < top.size(); ++i) {
      if (NonZero(model.item_factors(), top[i].second)) {
        targets.push_back(static_cast<int32_t>(top[i].second));
        positions.push_back(i);
      }
    }
    AFFINITY_ASSIGN_OR_RETURN(std::vector<int> best,
                              model.solver->Explain(items, weights, targets));
    for (size_t t = 0; t < targets.size(); ++t) {
      if (best[t] < 0) continue;
      because[positions[t]] = model.ProductName(*store_, static_cast<uint32_t>(items[best[t]]));
    }
  }
  for (size_t i = 0; i < top.size(); ++i) {
    std::string id = model.ProductName(*store_, top[i].second);
    if (id.empty()) continue;
    result.items.push_back({std::move(id), top[i].first, std::move(because[i])});
  }
  return result;
}

Result<std::vector<SimilarProduct>> ServingEngine::Similar(std::string_view product, int k,
                                                           int64_t* model_version) const {
  if (k < 1) return Status::InvalidArgument("k must be >= 1", "k");
  const size_t want = static_cast<size_t>(std::min(k, options_.max_k));
  AFFINITY_ASSIGN_OR_RETURN(ProductId id, store_->FindProduct(product));
  std::shared_ptr<State> state = current();
  const Model& model = *state->model;
  if (model_version) *model_version = model.snapshot.version;
  if (!NonZero(model.unit_items, id.value)) {
    return Status::FailedPrecondition("product '" + std::string(product) + "' is not in model v" +
                                      std::to_string(model.snapshot.version) + " yet");
  }
  std::vector<SimilarProduct> out;
  int64_t ask = static_cast<int64_t>(want) + 8;
  for (;;) {
    AFFINITY_ASSIGN_OR_RETURN(auto hits,
                              model.similar->Search(model.unit_items.row(id.value).data(), ask));
    out.clear();
    {
      std::shared_lock lock(caches_->mu);
      for (const auto& h : hits) {
        const auto p = static_cast<uint32_t>(h.row);
        if (p == id.value || !caches_->Available(p)) continue;
        std::string ext = model.ProductName(*store_, p);
        if (ext.empty()) continue;
        out.push_back({std::move(ext), h.score});
        if (out.size() == want) break;
      }
    }
    if (out.size() == want || static_cast<int64_t>(hits.size()) < ask) break;
    ask *= 4;
  }
  return out;
}

Result<std::vector<AudienceMember>> ServingEngine::Audience(const AudienceRequest& request,
                                                            int64_t* model_version) const {
  if (request.limit < 1) return Status::InvalidArgument("limit must be >= 1", "limit");
  const size_t limit = static_cast<size_t>(std::min(request.limit, options_.max_audience));
  AFFINITY_ASSIGN_OR_RETURN(ProductId product, store_->FindProduct(request.product));
  std::shared_ptr<State> state = current();
  const Model& model = *state->model;
  if (model_version) *model_version = model.snapshot.version;
  if (!NonZero(model.item_factors(), product.value)) {
    return Status::FailedPrecondition("product '" + request.product + "' is not in model v" +
                                      std::to_string(model.snapshot.version) + " yet");
  }
  const Eigen::VectorXf h = model.item_factors().row(product.value).transpose();
  const float floor = request.min_score.value_or(-std::numeric_limits<float>::infinity());

  // Customers folded in since the snapshot are scored exactly; their index rows are stale.
  std::vector<std::pair<float, uint32_t>> fresh;
  std::unordered_set<uint32_t> stale;
  {
    std::shared_lock lock(state->mu);
    for (const auto& [c, w] : state->overlay) {
      stale.insert(c);
      if (w.size() > 0) fresh.emplace_back(w.dot(h), c);
    }
  }
  std::shared_lock caches_lock(caches_->mu);
  const Caches& c = *caches_;
  auto eligible = [&](uint32_t customer) {
    return customer < c.live.size() && c.live[customer] && !c.opted_out.count(customer) &&
           !c.Bought(product.value, customer);
  };
  TopK<uint32_t> best(limit);
  for (const auto& [score, customer] : fresh) {
    if (score >= floor && eligible(customer)) best.Push(score, customer);
  }
  int64_t ask = static_cast<int64_t>(limit) + 64;
  for (;;) {
    AFFINITY_ASSIGN_OR_RETURN(auto hits, model.customers->Search(h.data(), ask));
    TopK<uint32_t> round = best;
    size_t taken = 0;
    bool below_floor = false;
    for (const auto& hit : hits) {
      if (hit.score < floor) {
        below_floor = true;
        break;
      }
      const auto customer = static_cast<uint32_t>(hit.row);
      if (stale.count(customer) || !eligible(customer) ||
          model.snapshot.customer_ids[customer].empty()) {
        continue;
      }
      round.Push(hit.score, customer);
      ++taken;
    }
    if (taken >= limit || below_floor || static_cast<int64_t>(hits.size()) < ask) {
      best = std::move(round);
      break;
    }
    ask *= 4;
  }
  std::vector<AudienceMember> out;
  for (const auto& [score, customer] : best.Take()) {
    std::string id = customer < model.snapshot.customer_ids.size()
                         ? model.snapshot.customer_ids[customer]
                         : std::string();
    if (id.empty()) {
      auto ext = store_->CustomerExternalId(CustomerId{customer});
      if (!ext.ok()) continue;
      id = std::move(*ext);
    }
    out.push_back({std::move(id), score});
  }
  return out;
}

Result<AddEventsResult> ServingEngine::AddEvents(std::span<const EventInput> events) {
  AddEventsResult result;
  std::vector<EventInput> valid;
  for (size_t i = 0; i < events.size(); ++i) {
    if (Status s = ValidateEventInput(events[i], i); !s.ok()) {
      result.errors.push_back({i, std::move(s)});
    } else {
      valid.push_back(events[i]);
    }
  }
  if (valid.empty()) return result;
  AFFINITY_ASSIGN_OR_RETURN(result.stored, store_->AppendEvents(valid));
  for (const EventInput& e : valid) {
    int64_t seen = newest_event_.load();
    while (seen < e.time && !newest_event_.compare_exchange_weak(seen, e.time)) {
    }
  }
  std::vector<uint32_t> customers;
  {
    std::unique_lock lock(caches_->mu);
    for (const EventInput& e : valid) {
      auto customer = store_->FindCustomer(e.customer);
      auto product = store_->FindProduct(e.product);
      if (!customer.ok() || !product.ok()) continue;
      customers.push_back(customer->value);
      if (customer->value >= caches_->live.size()) caches_->live.resize(customer->value + 1);
      caches_->live[customer->value] = true;
      if (e.type == EventType::kPurchase) caches_->AddBuyer(product->value, customer->value);
      if (product->value >= caches_->products.size()) caches_->SetProduct(product->value, {});
    }
  }
  std::sort(customers.begin(), customers.end());
  customers.erase(std::unique(customers.begin(), customers.end()), customers.end());
  for (uint32_t customer : customers) {
    // The events are durable already: a failed re-solve is reported, not returned as an error
    // (the customer keeps their previous vector until the next success or retrain).
    if (Status s = FoldIn(CustomerId{customer}); !s.ok()) {
      result.fold_in_errors.push_back(s);
      continue;
    }
    ++result.folded_in;
  }
  return result;
}

Result<bool> ServingEngine::UpsertCustomer(const std::string& id, const CustomerProfile& profile) {
  const std::pair<std::string, CustomerProfile> record{id, profile};
  AFFINITY_ASSIGN_OR_RETURN(int64_t created, store_->UpsertCustomers({&record, 1}));
  // Read back under the lock, so concurrent upserts and forgets apply to the caches in the
  // order the store saw them.
  std::unique_lock lock(caches_->mu);
  AFFINITY_ASSIGN_OR_RETURN(CustomerId customer, store_->FindCustomer(id));
  AFFINITY_ASSIGN_OR_RETURN(CustomerProfile stored, store_->GetCustomer(customer));
  if (customer.value >= caches_->live.size()) caches_->live.resize(customer.value + 1);
  caches_->live[customer.value] = true;
  if (stored.opted_out.value_or(false)) {
    caches_->opted_out.insert(customer.value);
  } else {
    caches_->opted_out.erase(customer.value);
  }
  return created > 0;
}

Result<bool> ServingEngine::UpsertProduct(const std::string& id,
                                          const ProductAttributes& attributes) {
  const std::pair<std::string, ProductAttributes> record{id, attributes};
  AFFINITY_ASSIGN_OR_RETURN(int64_t created, store_->UpsertProducts({&record, 1}));
  std::unique_lock lock(caches_->mu);  // read back under the lock (see UpsertCustomer)
  AFFINITY_ASSIGN_OR_RETURN(ProductId product, store_->FindProduct(id));
  AFFINITY_ASSIGN_OR_RETURN(ProductAttributes stored, store_->GetProduct(product));
  caches_->SetProduct(product.value, stored);
  return created > 0;
}

Result<ForgetResult> ServingEngine::ForgetCustomer(std::string_view id) {
  ForgetResult result;
  AFFINITY_ASSIGN_OR_RETURN(result.store, store_->ForgetCustomer(id));
  const ForgetReceipt& receipt = result.store;
  const uint32_t customer = receipt.internal_id;
  {
    std::unique_lock lock(caches_->mu);
    if (customer < caches_->live.size()) caches_->live[customer] = false;
    caches_->opted_out.erase(customer);
    for (ProductId p : receipt.products) {
      if (p.value >= caches_->buyers.size()) continue;
      auto& v = caches_->buyers[p.value];
      auto it = std::lower_bound(v.begin(), v.end(), customer);
      if (it != v.end() && *it == customer) v.erase(it);
    }
  }
  // Drop the overlay vector; a reload in between re-solves it from the (now empty) history.
  for (;;) {
    std::shared_ptr<State> state = current();
    std::unique_lock lock(state->mu);
    if (state->retired) continue;
    const bool in_overlay = state->overlay.erase(customer) > 0;
    result.had_vector = in_overlay || NonZero(state->model->users(), customer);
    result.snapshot_version = state->model->snapshot.version;
    break;
  }
  return result;
}

Status ServingEngine::RefitInsights() {
  AFFINITY_ASSIGN_OR_RETURN(ShopInsights shop, ComputeShopInsights(*store_, InsightsOptions()));
  auto model = std::make_shared<const InsightsModel>(std::move(shop.model));
  int64_t seen = newest_event_.load();
  while (seen < model->calibration_end &&
         !newest_event_.compare_exchange_weak(seen, model->calibration_end)) {
  }
  std::lock_guard lock(insights_mu_);
  insights_ = std::move(model);
  return Status::Ok();
}

Result<CustomerInsight> ServingEngine::Insight(std::string_view customer) const {
  AFFINITY_ASSIGN_OR_RETURN(CustomerId id, store_->FindCustomer(customer));
  std::shared_ptr<const InsightsModel> model;
  {
    std::lock_guard lock(insights_mu_);
    model = insights_;
  }
  if (!model) return Status::FailedPrecondition("the insights model is not fitted yet");
  return ComputeCustomerInsight(*store_, *model, id,
                                std::max<int64_t>(model->calibration_end, newest_event_.load()));
}

int64_t ServingEngine::model_version() const { return current()->model->snapshot.version; }

ModelInfo ServingEngine::Info() const {
  std::shared_ptr<State> state = current();
  const Model& m = *state->model;
  ModelInfo info;
  info.version = m.snapshot.version;
  info.created_at = m.snapshot.created_at;
  info.factors = static_cast<int>(m.snapshot.item_factors.cols());
  info.customers = m.snapshot.user_factors.rows();
  info.products = m.snapshot.item_factors.rows();
  auto index_info = [](const VectorIndex& index) {
    return IndexInfo{std::string(VectorIndexKindName(index.kind())), index.size(),
                     index.recall_at_10(), index.build_seconds()};
  };
  info.item_index = index_info(*m.items);
  info.similar_index = index_info(*m.similar);
  info.customer_index = index_info(*m.customers);
  {
    std::shared_lock lock(state->mu);
    info.overlay_customers = static_cast<int64_t>(state->overlay.size());
  }
  info.loaded_at = m.loaded_at;
  return info;
}

}  // namespace affinity
