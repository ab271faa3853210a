#include "affinity/serving.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cassert>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "affinity/email.h"
#include "affinity/interactions.h"
#include "affinity/json_writer.h"
#include "affinity/models/ials.h"
#include "affinity/new_products.h"
#include "affinity/snapshot.h"
#include "affinity/time_util.h"
#include "prefetch.h"
#include "purchase_lists.h"

namespace affinity {

namespace {

// Audience sources are read in rounds of max(kAudienceChunk, limit / 4) candidates each (see
// Audience): small enough that a source the audience does not come from costs little, large
// enough that one round of it is a fair test. After the head start of a category source, the
// other sources open with a probe of kAudienceChunk.
constexpr size_t kAudienceChunk = 64;

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
      std::push_heap(heap_.begin(), heap_.end(), Before{});
    } else if (Before{}({score, id}, heap_.front())) {
      ReplaceWorst({score, id});
    }
  }
  // Holds k entries; then Worst() is the score an entry must beat (or tie with a lower id).
  bool Full() const { return k_ > 0 && heap_.size() == k_; }
  float Worst() const { return heap_.front().first; }
  // Best first.
  std::vector<std::pair<float, Id>> Take() {
    // Sorted as 64-bit integers, which rank as Before does (a thousand pairs through Before's
    // two-step comparison were 2.5% of an audience's time): the score's bits made order-preserving
    // and inverted (best first) above the id. Not with a NaN or a zero score (rare): a zero's
    // sign would be lost (-0 and +0 tie).
    const bool plain = std::none_of(heap_.begin(), heap_.end(), [](const auto& e) {
      return std::isnan(e.first) || e.first == 0;
    });
    if (std::is_unsigned_v<Id> && sizeof(Id) <= 4 && plain) {
      std::vector<uint64_t> keys(heap_.size());
      for (size_t i = 0; i < heap_.size(); ++i) {
        const auto bits = std::bit_cast<uint32_t>(heap_[i].first);
        const uint32_t ordered = (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
        keys[i] = (static_cast<uint64_t>(~ordered) << 32) | static_cast<uint32_t>(heap_[i].second);
      }
      std::sort(keys.begin(), keys.end());
      for (size_t i = 0; i < keys.size(); ++i) {
        const uint32_t ordered = ~static_cast<uint32_t>(keys[i] >> 32);
        const uint32_t bits = (ordered & 0x80000000u) != 0 ? ordered & 0x7fffffffu : ~ordered;
        heap_[i] = {std::bit_cast<float>(bits), static_cast<Id>(keys[i] & 0xffffffffu)};
      }
    } else {
      std::sort(heap_.begin(), heap_.end(), Before{});
    }
    return std::move(heap_);
  }

 private:
  // a ranks before b (a "less" for the heap means a is better, so the heap top is the worst). A
  // type, not a function: the heap algorithms inline it (a function pointer was a call per
  // comparison, 4% of an audience's time).
  struct Before {
    bool operator()(const std::pair<float, Id>& a, const std::pair<float, Id>& b) const {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    }
  };
  // The worst entry (the top) replaced by e, which ranks before it, and sifted down: one pass
  // where pop_heap and push_heap take two.
  void ReplaceWorst(const std::pair<float, Id>& e) {
    const size_t n = heap_.size();
    size_t i = 0;
    for (size_t child = 1; child < n; child = 2 * i + 1) {
      if (child + 1 < n && Before{}(heap_[child], heap_[child + 1])) ++child;  // the worse one
      if (!Before{}(e, heap_[child])) break;
      heap_[i] = heap_[child];
      i = child;
    }
    heap_[i] = e;
  }
  size_t k_;
  std::vector<std::pair<float, Id>> heap_;
};

// Marks and counts over customers for one request, reset in O(1) by a generation stamp
// (clearing megabytes per request over 1M customers would cost more than the marks save).
// 4 bytes per customer.
class Marks {
 public:
  // Starts a new use over customers [0, n): none marked.
  void Reset(size_t n) {
    if (slots_.size() < n) slots_.resize(n);
    if (++generation_ == 0) {  // wrapped: stamps of 65,536 uses ago would read as current
      std::fill(slots_.begin(), slots_.end(), Slot{});
      generation_ = 1;
    }
  }
  // Marks customer i (< n) and counts one for it; true the first time since Reset.
  bool Mark(size_t i) {
    Slot& s = slots_[i];
    if (s.stamp != generation_) {
      s = {generation_, 1};
      return true;
    }
    if (s.count != std::numeric_limits<uint16_t>::max()) ++s.count;  // saturates
    return false;
  }
  // Times customer i was marked since Reset (saturating at 65,535).
  uint32_t Count(size_t i) const { return slots_[i].stamp == generation_ ? slots_[i].count : 0; }
  void Prefetch(size_t i) const { PrefetchLine(&slots_[i]); }

 private:
  struct Slot {  // together: one cache miss per customer, not two
    uint16_t stamp = 0, count = 0;
  };
  std::vector<Slot> slots_;
  uint16_t generation_ = 0;
};

// Stated interests as category paths, normalized ("Home / Kitchen" → "Home/Kitchen"), without
// empty ones or repeats, in the order given.
std::vector<std::string> NormalizedInterests(const std::vector<std::string>& interests) {
  std::vector<std::string> out;
  for (const auto& i : interests) {
    std::string path = JoinCategory(SplitCategory(i));
    if (!path.empty() && std::find(out.begin(), out.end(), path) == out.end()) {
      out.push_back(std::move(path));
    }
  }
  return out;
}

// External id → row of a snapshot's id list, by open addressing over row numbers (8-16 bytes
// per id; the strings stay in the snapshot), so the hot routes resolve ids without a store read.
// Rows with an empty id are not indexed. Immutable after construction.
class IdLookup {
 public:
  IdLookup() = default;
  explicit IdLookup(const std::vector<std::string>* ids) : ids_(ids) {
    size_t n = 0;
    for (const auto& id : *ids) n += !id.empty();
    size_t capacity = 16;
    while (capacity < 2 * n) capacity <<= 1;
    slots_.assign(capacity, kEmpty);
    mask_ = capacity - 1;
    for (size_t row = 0; row < ids->size(); ++row) {
      const std::string& id = (*ids)[row];
      if (id.empty()) continue;
      size_t i = Hash(id) & mask_;
      while (slots_[i] != kEmpty) i = (i + 1) & mask_;
      slots_[i] = static_cast<uint32_t>(row);
    }
  }

  // The row whose id is `id`, if any.
  std::optional<uint32_t> Find(std::string_view id) const {
    if (slots_.empty() || id.empty()) return std::nullopt;
    for (size_t i = Hash(id) & mask_;; i = (i + 1) & mask_) {
      const uint32_t row = slots_[i];
      if (row == kEmpty) return std::nullopt;
      if ((*ids_)[row] == id) return row;
    }
  }

 private:
  static size_t Hash(std::string_view s) { return std::hash<std::string_view>{}(s); }
  static constexpr uint32_t kEmpty = std::numeric_limits<uint32_t>::max();
  const std::vector<std::string>* ids_ = nullptr;
  std::vector<uint32_t> slots_;
  size_t mask_ = 0;
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
  if (!(prior_buyers >= 0)) return Status::InvalidArgument("must be >= 0", "prior_buyers");
  if (audience_candidates < 1) {
    return Status::InvalidArgument("must be >= 1", "audience_candidates");
  }
  if (dense_key_products < 1) return Status::InvalidArgument("must be >= 1", "dense_key_products");
  return Status::Ok();
}

// One loaded snapshot: immutable.
struct ServingEngine::Model {
  // Unique to this load (a snapshot loaded twice gets two): what the audiences' cached category
  // lists were ranked with (Caches::Prospects::model).
  uint64_t generation = 0;
  Snapshot snapshot;
  IalsOptions ials;
  InteractionOptions weighting;  // how training weighted purchases (decay, reference time)
  RowMajorMatrixXf unit_items;   // item factors scaled to unit length (cosine)
  // Whether each item / customer row is non-zero (has a vector), for the audience's hot loops.
  // Customers' flags are bits: 1M of them fit a core's L2 cache (128 KiB), read at random.
  std::vector<uint8_t> has_item;
  std::vector<bool> has_user;
  // Whether each customer row has an external id in the snapshot (forgotten ones have none).
  std::vector<bool> has_user_id;
  std::unique_ptr<FoldInSolver> solver;
  // Item rows against the fixed customer factors: new products from their buyers.
  std::unique_ptr<FoldInSolver> item_solver;
  std::unique_ptr<VectorIndex> items, similar, customers;
  // The snapshot's external ids → internal ids (rows are the store's ids).
  IdLookup customer_lookup, product_lookup;
  // Mean unit item vector of each category path (every level), for learned interests.
  std::unordered_map<std::string, Eigen::VectorXf> category_centroids;
  // Mean item vector of each category path (every level): w_u · it is a customer's expected
  // score for a product of the category, which ranks the audience's category prospects.
  std::unordered_map<std::string, Eigen::VectorXf> category_means;
  std::string loaded_at;

  // Whether the item / customer row is non-zero (one byte read, not a row).
  bool HasItem(int64_t p) const {
    return p >= 0 && static_cast<size_t>(p) < has_item.size() && has_item[static_cast<size_t>(p)];
  }
  bool HasUser(int64_t u) const {
    return u >= 0 && static_cast<size_t>(u) < has_user.size() && has_user[static_cast<size_t>(u)];
  }

  const RowMajorMatrixXf& users() const { return snapshot.user_factors; }
  const RowMajorMatrixXf& item_factors() const { return snapshot.item_factors; }

  // Asks for the memory of product p's id in the snapshot before ProductName reads it.
  void PrefetchProductName(uint32_t p) const {
    if (p < snapshot.product_ids.size()) PrefetchLine(&snapshot.product_ids[p]);
  }
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
  // Products without a trained row: their served vector and its source (guarded by mu).
  struct NewProduct {
    Eigen::VectorXf vector;
    std::string source;  // "attributes", "blended", "buyers"
  };
  std::unordered_map<uint32_t, NewProduct> new_products;
  // Indexes over the new products' vectors when the state was made (rows = product ids; by
  // inner product and by cosine; immutable, null when there were none), and the products
  // (re)embedded since, whose index rows are stale and which are scored exactly (guarded by mu).
  std::shared_ptr<const VectorIndex> new_index, new_similar;
  std::unordered_set<uint32_t> pending;
  std::vector<uint32_t> product_log;  // guarded by mu: products re-embedded on this state
  double new_products_seconds = 0;    // spent embedding and indexing them at the start

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
    bool known = false;              // has a record
    ItemAttributes item;             // for the cold-start map and the audience features
    std::vector<std::string> words;  // distinct title words, sorted (audience features)
    std::vector<std::string> tags;   // distinct tags, sorted
  };
  // The products of one key: a category path or prefix, a title word, a tag. A key that has
  // at least `dense_key` products, and 1/64 of the catalog when it reaches that, also holds them
  // as a bitset over product ids (at most twice the list's bytes then): an audience tests its
  // candidates' purchases against the bitset instead of walking the list to mark the catalog,
  // a pass over the whole catalog per request for a word every product name has.
  struct KeyProducts {
    std::vector<uint32_t> ids;   // in the order added, each once
    std::vector<uint64_t> bits;  // empty: not dense; else exactly the ids

    bool Dense() const { return !bits.empty(); }
    bool Has(uint32_t p) const {
      const size_t word = p / 64;
      return word < bits.size() && ((bits[word] >> (p % 64)) & 1) != 0;
    }
    // `catalog`: the number of product ids in use; `dense`: ServingOptions::dense_key_products.
    void Add(uint32_t id, size_t catalog, size_t dense) {
      ids.push_back(id);
      if (Dense()) {
        Set(id);
      } else if (ids.size() >= dense && ids.size() * 64 >= catalog) {
        for (uint32_t p : ids) Set(p);
      }
    }
    void Remove(uint32_t id, size_t dense) {
      std::erase(ids, id);
      if (!Dense()) return;
      if (ids.size() < dense / 2 || ids.empty()) {
        bits = {};
      } else if (id / 64 < bits.size()) {
        bits[id / 64] &= ~(uint64_t{1} << (id % 64));
      }
    }

   private:
    void Set(uint32_t p) {
      if (p / 64 >= bits.size()) bits.resize(p / 64 + 1);
      bits[p / 64] |= uint64_t{1} << (p % 64);
    }
  };
  size_t dense_key = 4'096;                                  // ServingOptions::dense_key_products
  std::vector<Product> products;                             // by product id
  std::unordered_map<std::string, KeyProducts> by_category;  // every prefix
  std::unordered_map<std::string, KeyProducts> by_word;      // title words
  std::unordered_map<std::string, KeyProducts> by_tag;
  std::vector<std::vector<uint32_t>> buyers;  // sorted, by product
  // By customer: the products they bought (ascending, distinct) and the times of their purchases
  // (ascending), for the audience features, exclusions and reasons; one record a customer.
  PurchaseLists purchases;
  // By customer: their purchases and returns as stored (oldest first, the store's order), what
  // fold-in and reasons weigh, so that a recommendation reads no store iterator. 16 bytes each.
  struct Purchase {
    UnixSeconds time = 0;
    uint32_t product = 0;
    float quantity = 0;  // < 0: a return of -quantity units
  };
  std::vector<std::vector<Purchase>> history;
  // Opt-outs cover the person: every account with the email address of one that opted out (as
  // campaigns count them). `opted_out`: the customers audiences leave out, those who opted out and
  // those at an address one of them has; `self_opted_out`: those who opted out themselves;
  // `address`: each customer's address, a 64-bit hash of its EmailAddressKey (0: none; 8 bytes a
  // customer); `opted_out_addresses`: how many self-opted-out customers each address has.
  std::unordered_set<uint32_t> opted_out;
  std::unordered_set<uint32_t> self_opted_out;
  std::vector<uint64_t> address;
  std::unordered_map<uint64_t, int32_t> opted_out_addresses;
  // Customers with a record in the store, by internal id. A snapshot row whose customer has no
  // record was forgotten (now, or before a restart) and is never answered.
  std::vector<bool> live;
  std::vector<uint32_t> popular;  // products by number of buyers, most first
  // For the audience model of the model at the last refresh, by customer: the prior (the part
  // of its logit that does not depend on the product) and the rate r (new_products.h) as of then;
  // and the customers with the highest priors, best first (RefreshPopular).
  struct Prior {
    float prior = 0, rate = 0;
  };
  std::vector<Prior> priors;
  std::vector<uint32_t> by_prior;
  // Stated interests: by customer, and customers by stated category path (ordered: the paths
  // under a category are a range).
  std::unordered_map<uint32_t, std::vector<std::string>> interests;
  std::map<std::string, std::vector<uint32_t>> stated;

  // The score's part in ranking a category's prospects for the products of one (sub)category
  // `of`: a customer's key gains `direction` · w_u, `direction` being the audience model's weight
  // on the score / σ times the mean vector of `of`'s products (their expected score term).
  struct ScoreLift {
    std::string of;
    Eigen::VectorXf direction;
  };
  // A category's buyers, best audience prospects first: ranked by prior + gain · log(1 + r · n),
  // n the distinct products they bought in it, `gain` the audience model's weights on the
  // purchases of that level (one counts at its level and each above), plus the lift's expected
  // score term when there is one (so a parent category has a list per subcategory asked for).
  // What this ranks on does not depend on the product, so a list serves every product of the
  // (sub)category until the next refresh (RefreshPopular clears them; buyers since are not in
  // it, and scoring reads live counts). At most kProspectPurchases purchases are read
  // (`capped`).
  struct Prospects {
    std::vector<uint32_t> ranked;  // at most the `want` asked for
    size_t buyers = 0;             // distinct buyers found
    bool capped = false;
    // How it was asked for (RankedBuyers' arguments), to rank it again after a refresh. Its gain,
    // lift and order are those of the model of this generation (Model::generation): a list of
    // another model is not used.
    uint64_t model = 0;
    std::string category;
    int level = 0;
    double gain = 0;
    size_t want = 0;
    std::optional<ScoreLift> lift;
  };
  static constexpr size_t kProspectPurchases = 4'000'000;
  // The lists kept hold at most this many customers in all (64 MB); past it they are dropped
  // and computed again as asked.
  static constexpr size_t kProspectsKept = 16'000'000;
  mutable std::mutex prospects_mu;
  mutable std::unordered_map<std::string, std::shared_ptr<const Prospects>> prospects;
  mutable size_t prospects_kept = 0;  // customers in `prospects`' lists

  // The list for `category` at path level `level` (0 deepest; part of the key, as the gain
  // differs), at least `want` long unless there are fewer buyers. Computes it with `marks` (a
  // caller's scratch over customers) when none of this model is cached that long. `lift` (or
  // null) adds the expected score term, with the customer rows `users` (`has_user`: which are
  // non-zero) of the model of generation `model`, which `gain` and `lift` also come from. A list
  // of an older model in the cache is replaced; one of a newer model (this call raced a reload)
  // is kept, and this one returned without being cached. Readers hold mu shared.
  std::shared_ptr<const Prospects> RankedBuyers(uint64_t model, const std::string& category,
                                                int level, double gain, size_t want, Marks* marks,
                                                const ScoreLift* lift,
                                                const RowMajorMatrixXf& users,
                                                const std::vector<bool>& has_user) const {
    const std::string key =
        std::to_string(level) + '\n' + category + (lift ? '\n' + lift->of : std::string());
    {
      std::lock_guard lock(prospects_mu);
      if (auto it = prospects.find(key); it != prospects.end()) {
        const Prospects& p = *it->second;
        if (p.model == model && (p.ranked.size() >= want || p.ranked.size() == p.buyers)) {
          return it->second;
        }
      }
    }
    auto out = std::make_shared<Prospects>();
    std::vector<uint32_t> found;
    if (auto it = by_category.find(category); it != by_category.end()) {
      marks->Reset(live.size());
      size_t read = 0;
      const std::vector<uint32_t>& here = it->second.ids;
      for (size_t i = 0; i < here.size() && !out->capped; ++i) {
        if (here[i] >= buyers.size()) continue;
        if (i + 1 < here.size() && here[i + 1] < buyers.size() && !buyers[here[i + 1]].empty()) {
          PrefetchLine(buyers[here[i + 1]].data());
        }
        const std::vector<uint32_t>& of = buyers[here[i]];
        for (uint32_t customer : of) {
          if (customer < live.size()) marks->Prefetch(customer);
        }
        for (uint32_t customer : of) {
          if (customer < live.size() && marks->Mark(customer)) found.push_back(customer);
        }
        read += of.size();
        out->capped = read >= kProspectPurchases;
      }
    }
    std::vector<std::pair<float, uint32_t>> ranked;
    ranked.reserve(found.size());
    const bool lifted = lift && lift->direction.size() == users.cols();
    const auto row_bytes = static_cast<size_t>(users.cols()) * sizeof(float);
    constexpr size_t kAhead = 16;
    for (size_t i = 0; i < found.size(); ++i) {
      if (i + kAhead < found.size()) {
        const uint32_t ahead = found[i + kAhead];
        marks->Prefetch(ahead);
        if (ahead < priors.size()) PrefetchLine(&priors[ahead]);
        if (lifted && ahead < users.rows()) {
          const char* row = reinterpret_cast<const char*>(users.row(ahead).data());
          for (size_t k = 0; k < row_bytes; k += 64) PrefetchLine(row + k);
        }
      }
      const uint32_t customer = found[i];
      const Prior prior = customer < priors.size() ? priors[customer] : Prior{0, 1};
      const double n = marks->Count(customer);
      double rank = prior.prior + gain * std::log1p(prior.rate * n);
      if (lifted && customer < has_user.size() && has_user[customer]) {
        rank += users.row(customer).dot(lift->direction);
      }
      ranked.emplace_back(static_cast<float>(rank), customer);
    }
    auto higher = [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    };
    const size_t keep = std::min(ranked.size(), want);
    const auto head = ranked.begin() + static_cast<ptrdiff_t>(keep);
    std::nth_element(ranked.begin(), head, ranked.end(), higher);
    std::sort(ranked.begin(), head, higher);
    out->buyers = found.size();
    out->ranked.reserve(keep);
    for (size_t i = 0; i < keep; ++i) out->ranked.push_back(ranked[i].second);
    out->model = model;
    out->category = category;
    out->level = level;
    out->gain = gain;
    out->want = want;
    if (lift) out->lift = *lift;
    std::lock_guard lock(prospects_mu);
    auto& slot = prospects[key];
    if (!slot || slot->model < model ||
        (slot->model == model && slot->ranked.size() < out->ranked.size())) {
      const size_t before = slot ? slot->ranked.size() : 0;
      if (prospects_kept - before + out->ranked.size() > kProspectsKept) {
        prospects.clear();
        prospects_kept = 0;
        prospects[key] = out;
      } else {
        slot = out;
        prospects_kept -= before;
      }
      prospects_kept += out->ranked.size();
    }
    return out;
  }

  static uint64_t AddressHash(const std::optional<std::string>& email) {
    if (!email || email->empty()) return 0;
    const uint64_t h = std::hash<std::string>{}(EmailAddressKey(*email));
    return h == 0 ? 1 : h;
  }

  // Whether `customer` is left out for an opt-out, from the sets above.
  void UpdateOptedOut(uint32_t customer) {
    const uint64_t a = customer < address.size() ? address[customer] : 0;
    if (self_opted_out.count(customer) || (a != 0 && opted_out_addresses.count(a))) {
      opted_out.insert(customer);
    } else {
      opted_out.erase(customer);
    }
  }

  // Records a customer's email address and own opt-out (none and false for one forgotten), and
  // updates who is left out: the customer, and every account at an address whose opt-out state
  // changed. That takes a pass over `address` under the caches' exclusive lock, on the writes
  // that change an address's state (most opt-outs, since the first at an address does): 0.7 ms
  // per million customers (a standalone loop of the same shape, best of 20), a pause of the
  // reads about as long as one audience.
  void SetConsent(uint32_t customer, const std::optional<std::string>& email, bool self) {
    if (customer >= address.size()) address.resize(customer + 1, 0);
    const uint64_t before = address[customer], after = AddressHash(email);
    const bool was_self = self_opted_out.count(customer) > 0;
    auto covered = [&](uint64_t a) { return a != 0 && opted_out_addresses.count(a) > 0; };
    const bool before_was = covered(before), after_was = covered(after);
    if (was_self && before != 0 && --opted_out_addresses[before] == 0) {
      opted_out_addresses.erase(before);
    }
    if (self && after != 0) ++opted_out_addresses[after];
    address[customer] = after;
    if (self) {
      self_opted_out.insert(customer);
    } else {
      self_opted_out.erase(customer);
    }
    UpdateOptedOut(customer);
    std::vector<uint64_t> flipped;
    if (before != 0 && covered(before) != before_was) flipped.push_back(before);
    if (after != 0 && after != before && covered(after) != after_was) flipped.push_back(after);
    if (flipped.empty()) return;
    for (uint32_t u = 0; u < address.size(); ++u) {
      if (address[u] != 0 &&
          std::find(flipped.begin(), flipped.end(), address[u]) != flipped.end()) {
        UpdateOptedOut(u);
      }
    }
  }

  void SetInterests(uint32_t customer, const std::vector<std::string>& categories) {
    if (auto it = interests.find(customer); it != interests.end()) {
      for (const auto& c : it->second) {
        auto& v = stated[c];
        v.erase(std::remove(v.begin(), v.end(), customer), v.end());
        if (v.empty()) stated.erase(c);
      }
      interests.erase(it);
    }
    if (categories.empty()) return;
    interests[customer] = categories;
    for (const auto& c : categories) stated[c].push_back(customer);
  }

  void SetProduct(uint32_t id, const ProductAttributes& a) {
    if (products.size() <= id) products.resize(id + 1);
    Product& p = products[id];
    const std::string category = a.category ? JoinCategory(*a.category) : "";
    if (p.known && p.category != category) {
      ForEachPrefix(p.category,
                    [&](const std::string& prefix) { by_category[prefix].Remove(id, dense_key); });
    }
    if (!p.known || p.category != category) {
      ForEachPrefix(category, [&](const std::string& prefix) {
        by_category[prefix].Add(id, products.size(), dense_key);
      });
    }
    p.category = category;
    p.available = a.available.value_or(true);
    p.known = true;
    p.item = ToItemAttributes(a);
    // Every word and tag: a customer's purchase counts in a feature by any of its own (as in
    // training, PurchaseProfile::Add), only the new product's keys are bounded.
    const ProductKeys keys(p.item, SIZE_MAX, SIZE_MAX);
    Reindex(&by_word, id, p.words, keys.words, products.size(), dense_key);
    Reindex(&by_tag, id, p.tags, keys.tags, products.size(), dense_key);
    p.words = keys.words;
    p.tags = keys.tags;
    Changed(id);
  }

  // Moves `id` from the lists of its old keys to those of its new ones.
  static void Reindex(std::unordered_map<std::string, KeyProducts>* index, uint32_t id,
                      const std::vector<std::string>& before, const std::vector<std::string>& after,
                      size_t catalog, size_t dense) {
    for (const auto& key : before) {
      auto it = index->find(key);
      if (it == index->end()) continue;
      it->second.Remove(id, dense);
      if (it->second.ids.empty()) index->erase(it);
    }
    for (const auto& key : after) (*index)[key].Add(id, catalog, dense);
  }

  template <typename T>
  static void InsertSorted(std::vector<T>* v, T value, bool unique) {
    auto it = std::lower_bound(v->begin(), v->end(), value);
    if (!unique || it == v->end() || *it != value) v->insert(it, value);
  }

  // A purchase of `product` by `customer` at `time`.
  void AddPurchase(uint32_t product, uint32_t customer, UnixSeconds time) {
    if (buyers.size() <= product) buyers.resize(product + 1);
    InsertSorted(&buyers[product], customer, true);
    purchases.Add(customer, product, time);
    Changed(product);
  }

  // Changes to a product's attributes or buyers, counted (under mu exclusively), so that a vector
  // embedded from what was read before one is not stored over a newer one.
  std::vector<uint32_t> product_changes;
  void Changed(uint32_t product) {
    if (product_changes.size() <= product) product_changes.resize(product + 1);
    ++product_changes[product];
  }
  uint32_t Changes(uint32_t product) const {
    return product < product_changes.size() ? product_changes[product] : 0;
  }

  // Adds a stored event to the customer's history if it is a purchase or a return: after the
  // events of the same or an earlier time (the store orders equal times by event-id hash, so
  // after a restart such ties may come in another order; nothing served depends on it).
  void InsertIntoHistory(const Event& e) {
    if (e.type != EventType::kPurchase && e.type != EventType::kReturn) return;
    if (history.size() <= e.customer.value) history.resize(e.customer.value + 1);
    auto& h = history[e.customer.value];
    const auto q = static_cast<float>(e.quantity);
    const Purchase p{e.time, e.product.value, e.type == EventType::kReturn ? -q : q};
    auto at = h.end();  // usually the newest: search back from the end
    while (at != h.begin() && (at - 1)->time > e.time) --at;
    h.insert(at, p);
  }

  // The customer's history as events (no channel or event id), for NetPurchases.
  std::vector<Event> History(uint32_t customer) const {
    std::vector<Event> out;
    if (customer >= history.size()) return out;
    out.reserve(history[customer].size());
    for (const Purchase& p : history[customer]) {
      Event& e = out.emplace_back();
      e.customer = CustomerId{customer};
      e.product = ProductId{p.product};
      e.type = p.quantity < 0 ? EventType::kReturn : EventType::kPurchase;
      e.time = p.time;
      e.quantity = std::abs(p.quantity);
    }
    return out;
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

struct ServingEngine::Eraser {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<ForgetReceipt> queue;  // guarded by mu
  // Customers forgotten before this engine opened the store whose erasure did not run (a stop or
  // crash first; Store::ErasuresPending): erased by one compaction of the whole store.
  int64_t left_before = 0;  // guarded by mu
  int64_t running = 0;      // customers being erased now
  int64_t failed = 0;       // customers whose erasure failed
  bool stop = false;
  std::atomic<bool> cancel{false};  // stops the compaction in progress (the destructor)
  std::thread thread;
};

ServingEngine::ServingEngine(Store* store, std::string root, ServingOptions options)
    : store_(store),
      root_(std::move(root)),
      options_(std::move(options)),
      caches_(std::make_unique<Caches>()),
      eraser_(std::make_unique<Eraser>()) {
  caches_->dense_key = static_cast<size_t>(options_.dense_key_products);
}

// 32 bits per product for one use at a time, all 0 at the start of each. The products given bits
// are listed and only theirs cleared at the next Reset, so a use costs in proportion to the
// products it marks, not to the catalog; 4 bytes a product (an audience's lookups stay within
// the second-level cache on a catalog of 100,000).
class ProductBits {
 public:
  // Starts a new use over products [0, n): every product's bits 0.
  void Reset(size_t n) {
    for (uint32_t p : marked_) slots_[p] = 0;
    marked_.clear();
    if (slots_.size() < n) slots_.resize(n);
  }
  // ORs `bits` (not 0) into product p's (p < n).
  void Or(uint32_t p, uint32_t bits) {
    if (slots_[p] == 0) marked_.push_back(p);
    slots_[p] |= bits;
  }
  // Product p's bits (0 for p >= n).
  uint32_t Get(size_t p) const { return p < slots_.size() ? slots_[p] : 0; }
  void Prefetch(size_t p) const {
    if (p < slots_.size()) PrefetchLine(&slots_[p]);
  }

 private:
  std::vector<uint32_t> slots_;
  std::vector<uint32_t> marked_;
};

struct ServingEngine::AudienceScratch {
  Marks taken;       // customers already taken as candidates
  Marks in_level;    // the category's buyers, with their purchases there
  ProductBits keys;  // which of the product's keys each catalog product shares
};

ServingEngine::~ServingEngine() {
  std::thread thread;
  {
    std::lock_guard lock(eraser_->mu);
    eraser_->stop = true;  // and nothing more is queued
    eraser_->cancel = true;
    thread = std::move(eraser_->thread);
  }
  eraser_->cv.notify_all();
  if (thread.joinable()) thread.join();  // the compaction in progress stops early
}

void ServingEngine::EraseLoop() {
  Eraser& e = *eraser_;
  std::unique_lock lock(e.mu);
  for (;;) {
    e.cv.wait(lock, [&] { return e.stop || !e.queue.empty() || e.left_before > 0; });
    if (e.stop) return;
    std::vector<ForgetReceipt> batch(std::make_move_iterator(e.queue.begin()),
                                     std::make_move_iterator(e.queue.end()));
    e.queue.clear();
    const int64_t left_before = std::exchange(e.left_before, 0);
    const int64_t customers = static_cast<int64_t>(batch.size()) + left_before;
    e.running = customers;
    lock.unlock();
    const auto start = std::chrono::steady_clock::now();
    // A few customers: the ranges they were in; more at once (a burst of forgets), or some whose
    // ranges were not kept (forgotten before a restart): one pass over the whole store costs
    // about what a few targeted ones do.
    Status erased = Status::Ok();
    int64_t failed = 0;
    if (customers > 4 || left_before > 0) {
      erased = store_->Compact(&e.cancel);
      if (!erased.ok()) failed = customers;
    } else {
      for (const ForgetReceipt& r : batch) {
        if (Status s = store_->EraseForgotten(r, &e.cancel); !s.ok()) {
          erased = s;
          ++failed;
        }
      }
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (erased.ok()) {
      std::fprintf(stderr, "erased %lld forgotten customer(s) from the store's files in %.1f s\n",
                   static_cast<long long>(customers), seconds);
    } else {
      std::fprintf(stderr,
                   "could not erase %lld of %lld forgotten customer(s) from the store's files "
                   "(%s): they stay until RocksDB compacts those files, the next start, or "
                   "affinity forget --db\n",
                   static_cast<long long>(failed), static_cast<long long>(customers),
                   erased.ToString().c_str());
    }
    lock.lock();
    e.running = 0;
    e.failed += failed;
    e.cv.notify_all();
  }
}

void ServingEngine::StartEraser() {
  if (eraser_->thread.joinable()) return;
  try {
    eraser_->thread = std::thread([this] { EraseLoop(); });
  } catch (const std::system_error& e) {  // no thread: the next forget tries again
    std::fprintf(stderr, "cannot start the erasure thread: %s\n", e.what());
  }
}

int64_t ServingEngine::WaitForErasures() {
  std::unique_lock lock(eraser_->mu);
  if (!eraser_->thread.joinable()) {  // none started (or it could not be): nothing will run
    return eraser_->failed + static_cast<int64_t>(eraser_->queue.size()) + eraser_->left_before;
  }
  eraser_->cv.wait(lock, [&] {
    return (eraser_->queue.empty() && eraser_->left_before == 0 && eraser_->running == 0) ||
           eraser_->stop;
  });
  return eraser_->failed;
}

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
    if (id.value >= c.address.size()) c.address.resize(id.value + 1, 0);
    c.address[id.value] = Caches::AddressHash(p.email);
    if (p.opted_out.value_or(false)) {
      c.self_opted_out.insert(id.value);
      if (c.address[id.value] != 0) ++c.opted_out_addresses[c.address[id.value]];
    }
    if (p.interests) c.SetInterests(id.value, NormalizedInterests(*p.interests));
    return true;
  }));
  for (uint32_t u : c.self_opted_out) c.opted_out.insert(u);
  if (!c.opted_out_addresses.empty()) {
    for (uint32_t u = 0; u < c.address.size(); ++u) {
      if (c.address[u] != 0 && c.opted_out_addresses.count(c.address[u])) c.opted_out.insert(u);
    }
  }
  UnixSeconds newest = 0;
  c.buyers.resize(store->product_id_limit());
  c.purchases.Resize(store->customer_id_limit());
  c.history.resize(store->customer_id_limit());
  // Events arrive in (customer, time) order, so buyer lists, purchase times and histories are
  // appended in ascending order; a customer's lists are stored when the next customer's start.
  uint32_t customer = 0;
  std::vector<uint32_t> products;
  std::vector<UnixSeconds> times;
  auto store_lists = [&] {
    std::sort(products.begin(), products.end());
    products.erase(std::unique(products.begin(), products.end()), products.end());
    c.purchases.Set(customer, products, times);
    products.clear();
    times.clear();
  };
  AFFINITY_RETURN_IF_ERROR(store->ScanEvents([&](const Event& e) {
    newest = std::max(newest, e.time);
    c.InsertIntoHistory(e);
    if (e.type != EventType::kPurchase || e.customer.value >= c.purchases.size()) return true;
    auto& v = c.buyers[e.product.value];
    if (v.empty() || v.back() != e.customer.value) v.push_back(e.customer.value);
    if (e.customer.value != customer) {
      if (!times.empty()) store_lists();
      customer = e.customer.value;
    }
    products.push_back(e.product.value);
    times.push_back(e.time);
    return true;
  }));
  if (!times.empty()) store_lists();
  engine->newest_event_.store(newest);
  AFFINITY_ASSIGN_OR_RETURN(auto model, engine->LoadModel(std::nullopt));
  engine->RefreshPopular(*model);
  auto state = std::make_shared<State>();
  state->model = std::move(model);
  engine->EmbedNewProducts(state.get());
  engine->state_ = std::move(state);
  // Customers forgotten by an earlier run that stopped (or crashed) before their erasure: their
  // records may still be in the store's files.
  if (engine->options_.finish_erasures_at_start && !store->read_only()) {
    Result<int64_t> left = store->ErasuresPending();
    if (!left.ok()) {  // not known: compact anyway
      std::fprintf(stderr,
                   "cannot tell whether forgotten customers are left in the store's files (%s): "
                   "compacting the store in the background\n",
                   left.status().ToString().c_str());
      left = 1;
    } else if (*left > 0) {
      std::fprintf(stderr,
                   "%lld forgotten customer(s) may still be in the store's files (their erasure "
                   "did not run before the last stop): compacting the store in the background\n",
                   static_cast<long long>(*left));
    }
    if (*left > 0) {
      std::lock_guard lock(engine->eraser_->mu);
      engine->eraser_->left_before = *left;
      engine->StartEraser();
    }
  }
  return engine;
}

void ServingEngine::RefreshPopular(const Model& model) {
  // Computed from the caches under a shared lock (audiences and events go on meanwhile), then
  // swapped in under an exclusive one. Purchases added in between count from the next refresh.
  const int64_t purchases = purchases_added_.load();
  std::vector<uint32_t> popular, by_prior;
  std::vector<Caches::Prior> priors;
  {
    std::shared_lock lock(caches_->mu);
    const Caches& c = *caches_;
    TopK<uint32_t> top(static_cast<size_t>(options_.popular_size));
    for (size_t p = 0; p < c.buyers.size(); ++p) {
      if (!c.buyers[p].empty())
        top.Push(static_cast<float>(c.buyers[p].size()), static_cast<uint32_t>(p));
    }
    for (const auto& [count, p] : top.Take()) popular.push_back(p);
    // Audience candidates by prior: the product-independent part of the audience model's logit
    // (its distinct products per year and its recent purchases) as of now, and the rate r that
    // turns its counts into counts per year. Candidates are chosen with them; the scores of an
    // audience read live counts.
    const std::optional<LogisticCalibration>& calibration = model.snapshot.audience;
    if (calibration) {
      priors.assign(c.purchases.size(), Caches::Prior{});
      const UnixSeconds now =
          std::max<UnixSeconds>(newest_event_.load(), model.weighting.reference_time.value_or(0));
      const auto recent_from = now - static_cast<UnixSeconds>(calibration->horizon_days * 86400);
      const ProductKeys no_keys{ItemAttributes{}};
      std::array<float, kAudienceFeatures> x{};
      std::vector<double> xd(kAudienceFeatures);
      TopK<uint32_t> best(static_cast<size_t>(options_.max_audience) *
                          static_cast<size_t>(options_.audience_candidates));
      for (uint32_t customer = 0; customer < c.purchases.size(); ++customer) {
        const std::span<const UnixSeconds> times = c.purchases.Times(customer);
        const size_t bought = c.purchases.Products(customer).size();
        if (bought == 0 || times.empty()) continue;
        KeyCounts counts;
        counts.products = static_cast<int32_t>(bought);
        counts.recent = static_cast<int32_t>(
            times.end() - std::lower_bound(times.begin(), times.end(), recent_from));
        counts.tenure_days = static_cast<double>(now - times.front()) / 86400;
        AudienceFeatures(0.0f, counts, no_keys, x);
        for (size_t k = 0; k < kAudienceFeatures; ++k) xd[k] = x[k];
        Caches::Prior& p = priors[customer];
        p.prior = static_cast<float>(calibration->Logit(xd) - calibration->intercept);
        p.rate = static_cast<float>(kRateDays / std::max(counts.tenure_days, kMinTenureDays));
        best.Push(p.prior, static_cast<uint32_t>(customer));
      }
      for (const auto& [prior, customer] : best.Take()) by_prior.push_back(customer);
    }
  }
  std::unique_lock lock(caches_->mu);
  Caches& c = *caches_;
  c.popular = std::move(popular);
  c.priors = std::move(priors);
  c.by_prior = std::move(by_prior);
  {
    // The category prospect lists rank by the old priors and lack the buyers since: computed
    // again on first use.
    std::lock_guard prospects_lock(c.prospects_mu);
    c.prospects.clear();
    c.prospects_kept = 0;
  }
  purchases_at_refresh_.store(purchases);
}

bool ServingEngine::RefreshCandidates() {
  // After a reload in progress (which refreshes them itself, with its model), never before it
  // with the model it replaces.
  std::lock_guard reload_lock(reload_mu_);
  if (purchases_added_.load() == purchases_at_refresh_.load()) return false;
  // The category lists in use, ranked again here rather than by the next audience of each
  // category (same model, so the same gains).
  std::vector<std::shared_ptr<const Caches::Prospects>> in_use;
  {
    std::lock_guard lock(caches_->prospects_mu);
    for (const auto& [key, list] : caches_->prospects) in_use.push_back(list);
  }
  std::shared_ptr<State> state = current();
  RefreshPopular(*state->model);
  Marks marks;
  const Model& model = *state->model;
  for (const auto& list : in_use) {
    // Lists ranked by another model (an audience that raced a reload) are left to be computed
    // again on first use: their gain and lift are that model's.
    if (list->model != model.generation) continue;
    // One list at a time under the shared lock, so that writers get in between.
    std::shared_lock lock(caches_->mu);
    caches_->RankedBuyers(model.generation, list->category, list->level, list->gain, list->want,
                          &marks, list->lift ? &*list->lift : nullptr, model.users(),
                          model.has_user);
  }
  return true;
}

Result<std::shared_ptr<const ServingEngine::Model>> ServingEngine::LoadModel(
    std::optional<int64_t> version) const {
  auto model = std::make_shared<Model>();
  static std::atomic<uint64_t> generations{0};
  model->generation = generations.fetch_add(1) + 1;
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
  // An audience model for other features than this server computes is not used (scores only).
  if (s.audience) {
    const std::vector<std::string> expected(kAudienceFeatureNames.begin(),
                                            kAudienceFeatureNames.end());
    if (s.audience->features != expected) {
      std::fprintf(stderr,
                   "snapshot v%lld: its audience model has other features than this server "
                   "computes; audiences are served uncalibrated\n",
                   static_cast<long long>(s.version));
      model->snapshot.audience.reset();
    }
  }
  model->solver = std::make_unique<FoldInSolver>(model->ials, &s.item_factors, s.item_weights);
  model->solver->PrepareExplanations();  // reasons without a d × d factorization per request
  model->customer_lookup = IdLookup(&s.customer_ids);
  model->product_lookup = IdLookup(&s.product_ids);
  model->item_solver =
      std::make_unique<FoldInSolver>(model->ials, &s.user_factors, Eigen::VectorXf());
  model->unit_items = s.item_factors;
  model->has_item.assign(static_cast<size_t>(model->unit_items.rows()), 0);
  for (Eigen::Index i = 0; i < model->unit_items.rows(); ++i) {
    const float norm = model->unit_items.row(i).norm();
    if (norm > 0) {
      model->unit_items.row(i) /= norm;
      model->has_item[static_cast<size_t>(i)] = 1;
    }
  }
  model->has_user.assign(static_cast<size_t>(s.user_factors.rows()), 0);
  model->has_user_id.assign(static_cast<size_t>(s.user_factors.rows()), 0);
  for (Eigen::Index u = 0; u < s.user_factors.rows(); ++u) {
    const auto row = static_cast<size_t>(u);
    model->has_user[row] = s.user_factors.row(u).squaredNorm() > 0;
    model->has_user_id[row] = row < s.customer_ids.size() && !s.customer_ids[row].empty();
  }
  {
    std::shared_lock lock(caches_->mu);
    std::unordered_map<std::string, int> counts;
    for (size_t p = 0; p < caches_->products.size(); ++p) {
      if (!NonZero(model->unit_items, static_cast<int64_t>(p))) continue;
      Caches::ForEachPrefix(caches_->products[p].category, [&](const std::string& prefix) {
        auto [it, fresh] = model->category_centroids.try_emplace(
            prefix, Eigen::VectorXf::Zero(model->unit_items.cols()));
        it->second += model->unit_items.row(static_cast<int64_t>(p)).transpose();
        auto [mean, added] =
            model->category_means.try_emplace(prefix, Eigen::VectorXf::Zero(s.item_factors.cols()));
        mean->second += s.item_factors.row(static_cast<int64_t>(p)).transpose();
        ++counts[prefix];
      });
    }
    for (auto& [path, v] : model->category_centroids) v /= static_cast<float>(counts[path]);
    for (auto& [path, v] : model->category_means) v /= static_cast<float>(counts[path]);
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

Result<CustomerId> ServingEngine::FindCustomer(const Model& model, std::string_view id) const {
  if (std::optional<uint32_t> row = model.customer_lookup.Find(id)) {
    // Unless forgotten since the snapshot (the id may then belong to a new customer).
    std::shared_lock lock(caches_->mu);
    if (*row < caches_->live.size() && caches_->live[*row]) return CustomerId{*row};
  }
  return store_->FindCustomer(id);
}

Result<ProductId> ServingEngine::FindProduct(const Model& model, std::string_view id) const {
  if (std::optional<uint32_t> row = model.product_lookup.Find(id)) return ProductId{*row};
  return store_->FindProduct(id);  // created after the snapshot
}

Result<Eigen::VectorXf> ServingEngine::Solve(const Model& model, CustomerId customer) const {
  std::vector<Event> history;
  {
    std::shared_lock lock(caches_->mu);
    history = caches_->History(customer.value);
  }
  InteractionOptions weighting = model.weighting;
  if (weighting.reference_time) {
    for (const Event& e : history)
      weighting.reference_time = std::max(*weighting.reference_time, e.time);
  }
  AFFINITY_ASSIGN_OR_RETURN(auto net, NetPurchases(history, weighting));
  std::vector<int32_t> items;
  std::vector<float> weights;
  for (const auto& [product, r] : net) {
    if (!model.HasItem(product.value)) continue;  // not in the model
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
  size_t seen = 0, seen_products = 0;
  {
    std::shared_lock lock(old->mu);
    for (const auto& [c, w] : old->overlay) first.push_back(c);
    seen = old->log.size();
    seen_products = old->product_log.size();
  }
  refold(first, /*keep_newer=*/false);
  EmbedNewProducts(next.get());
  {
    std::lock_guard lock(state_mu_);
    state_ = next;
  }
  // ... and those written to the old state after that, until it was retired.
  std::vector<uint32_t> late, late_products;
  {
    std::unique_lock lock(old->mu);
    old->retired = true;
    late.assign(old->log.begin() + static_cast<std::ptrdiff_t>(seen), old->log.end());
    late_products.assign(old->product_log.begin() + static_cast<std::ptrdiff_t>(seen_products),
                         old->product_log.end());
  }
  refold(late, /*keep_newer=*/true);
  // Products re-embedded on the old state while the new one was built: the caches they read are
  // newer than the new state's embedding, so embed them again (as of now) on the new state.
  std::sort(late_products.begin(), late_products.end());
  late_products.erase(std::unique(late_products.begin(), late_products.end()), late_products.end());
  for (uint32_t p : late_products) {
    if (model->HasItem(p)) continue;
    for (;;) {
      std::string source;
      uint32_t changes = 0;
      Eigen::VectorXf v = EmbedProduct(*model, *next, p, &source, &changes);
      std::shared_lock caches_lock(caches_->mu);  // changed meanwhile: again (RefreshNewProduct)
      if (caches_->Changes(p) != changes) continue;
      std::unique_lock lock(next->mu);
      StoreNewProduct(next.get(), p, std::move(v), std::move(source));
      break;
    }
  }
  reloads_.fetch_add(1, std::memory_order_relaxed);
  RefreshPopular(*model);
  return model->snapshot.version;
}

Result<RecommendResult> ServingEngine::Recommend(const RecommendRequest& request) const {
  if (request.k < 1) return Status::InvalidArgument("k must be >= 1", "k");
  const size_t k = static_cast<size_t>(std::min(request.k, options_.max_k));
  std::shared_ptr<State> state = current();
  const Model& model = *state->model;
  AFFINITY_ASSIGN_OR_RETURN(CustomerId customer, FindCustomer(model, request.customer));
  RecommendResult result;
  result.model_version = model.snapshot.version;

  // The customer's vector: updated since the snapshot, else the snapshot's.
  Eigen::VectorXf w;
  if (state->Overlay(customer.value, &w)) {
    result.source = "fold_in";
  } else if (model.HasUser(customer.value)) {
    w = model.users().row(customer.value).transpose();
    result.source = "model";
  }
  if (w.size() == 0) result.source = "popular";

  std::shared_lock caches_lock(caches_->mu);
  const Caches& c = *caches_;
  const std::vector<Event> history = c.History(customer.value);
  const std::span<const uint32_t> purchased = c.purchases.Products(customer.value);  // ascending
  auto eligible = [&](uint32_t p) {
    if (request.exclude_purchased && std::binary_search(purchased.begin(), purchased.end(), p)) {
      return false;
    }
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
    // No vector: popular products, those under the customer's stated interests first.
    std::vector<std::string> stated;
    if (auto it = c.interests.find(customer.value); it != c.interests.end()) stated = it->second;
    auto under_stated = [&](uint32_t p) {
      if (p >= c.products.size()) return false;
      for (const auto& path : stated) {
        if (UnderCategory(c.products[p].category, path)) return true;
      }
      return false;
    };
    if (!stated.empty()) {
      // The most-bought products under the stated categories, from the categories themselves
      // (not only the shop's most popular: a category's products may all rank below them, or
      // have no buyer yet).
      result.source = "interests";
      TopK<uint32_t> best(k);
      std::unordered_set<uint32_t> seen;
      for (const auto& path : stated) {
        auto it = c.by_category.find(path);
        if (it == c.by_category.end()) continue;
        for (uint32_t p : it->second.ids) {
          if (!eligible(p) || !seen.insert(p).second) continue;
          best.Push(static_cast<float>(p < c.buyers.size() ? c.buyers[p].size() : 0), p);
        }
      }
      top = best.Take();
    }
    for (uint32_t p : c.popular) {
      if (top.size() >= k) break;
      if (!under_stated(p) && eligible(p)) top.emplace_back(0.0f, p);
    }
    for (auto& [score, p] : top) {  // (a product created since the engine opened has no row)
      score = static_cast<float>(p < c.buyers.size() ? c.buyers[p].size() : 0);
    }
  } else if (request.category) {
    // A category is usually small: score its members exactly.
    TopK<uint32_t> best(k);
    auto it = c.by_category.find(*request.category);
    if (it != c.by_category.end()) {
      for (uint32_t p : it->second.ids) {
        if (!model.HasItem(p) || !eligible(p)) continue;
        best.Push(model.item_factors().row(p).dot(w), p);
      }
    }
    top = best.Take();
  } else {
    // Ask the index for more than k, as bought and unavailable products are dropped after (a few
    // more for the unavailable; when too many were, it asks again for four times as many).
    int64_t want = static_cast<int64_t>(k + (request.exclude_purchased ? purchased.size() : 0) + 4);
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

  // New products (no trained row yet): from their index, and those embedded since exactly.
  if (w.size() > 0) {
    TopK<uint32_t> merged(k);
    for (const auto& [score, p] : top) merged.Push(score, p);
    std::shared_ptr<const VectorIndex> index;
    // Those scored exactly here (sorted): not taken again from the index (its row of one may be
    // current again, after a re-index between the two looks at `pending`).
    std::vector<uint32_t> scored;
    {
      std::shared_lock lock(state->mu);
      auto exact = [&](uint32_t p) {
        auto it = state->new_products.find(p);
        if (it != state->new_products.end() && eligible(p)) {
          merged.Push(it->second.vector.dot(w), p);
        }
      };
      if (request.category) {
        // The category's members, exactly (as for the trained products above).
        if (auto it = c.by_category.find(*request.category); it != c.by_category.end()) {
          for (uint32_t p : it->second.ids) exact(p);
        }
      } else {
        index = state->new_index;
        scored.assign(state->pending.begin(), state->pending.end());
        std::sort(scored.begin(), scored.end());
        for (uint32_t p : scored) exact(p);
      }
    }
    if (index) {
      // Asked again for four times as many while fewer than k are eligible (bought, unavailable,
      // pending) and the index has more, as for the trained products.
      const TopK<uint32_t> before = merged;
      int64_t want =
          static_cast<int64_t>(k + (request.exclude_purchased ? purchased.size() : 0) + 4);
      for (;;) {
        AFFINITY_ASSIGN_OR_RETURN(auto hits, index->Search(w.data(), want));
        merged = before;
        size_t eligible_hits = 0;
        std::shared_lock lock(state->mu);
        for (const auto& hit : hits) {
          const auto p = static_cast<uint32_t>(hit.row);
          if (!std::binary_search(scored.begin(), scored.end(), p) && !state->pending.count(p) &&
              eligible(p)) {
            merged.Push(hit.score, p);
            ++eligible_hits;
          }
        }
        if (eligible_hits >= k || static_cast<int64_t>(hits.size()) < want) break;
        want *= 4;
      }
    }
    top = merged.Take();
  }

  // The ids of the products listed are read last, a cache miss each: asked for now, they arrive
  // while the reasons are computed.
  for (const auto& [score, p] : top) model.PrefetchProductName(p);
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
      if (it == weight_of.end() || !model.HasItem(p) || !taken.insert(p).second) {
        continue;
      }
      items.push_back(static_cast<int32_t>(p));
      weights.push_back(it->second);
      if (static_cast<int>(items.size()) >= options_.reason_history) break;
    }
    std::vector<int32_t> targets;
    std::vector<size_t> positions;
    for (size_t i = 0; i < top.size(); ++i) {
      if (model.HasItem(top[i].second)) {
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
  std::shared_ptr<State> state = current();
  const Model& model = *state->model;
  AFFINITY_ASSIGN_OR_RETURN(ProductId id, FindProduct(model, product));
  if (model_version) *model_version = model.snapshot.version;
  Eigen::VectorXf query;
  if (model.HasItem(id.value)) {
    query = model.unit_items.row(id.value).transpose();
  } else {
    std::shared_lock lock(state->mu);
    if (auto it = state->new_products.find(id.value); it != state->new_products.end()) {
      query = it->second.vector.normalized();
    }
  }
  if (query.size() == 0) {
    return Status::FailedPrecondition("product '" + std::string(product) + "' is not in model v" +
                                      std::to_string(model.snapshot.version) +
                                      " yet and has no attribute the model knows");
  }
  // New products, by cosine (their index, and those embedded since exactly), merged with the
  // trained products' answer.
  TopK<uint32_t> newest(want);
  std::shared_ptr<const VectorIndex> new_similar;
  std::vector<uint32_t> scored;  // exactly, here (sorted): not taken again from the index
  {
    std::shared_lock caches_lock(caches_->mu);  // caches before state, as everywhere
    std::shared_lock lock(state->mu);
    new_similar = state->new_similar;
    scored.assign(state->pending.begin(), state->pending.end());
    std::sort(scored.begin(), scored.end());
    for (uint32_t p : scored) {
      auto it = state->new_products.find(p);
      if (it == state->new_products.end() || p == id.value || !caches_->Available(p)) continue;
      const float norm = it->second.vector.norm();
      if (norm > 0) newest.Push(it->second.vector.dot(query) / norm, p);
    }
  }
  if (new_similar) {
    // Asked again for four times as many while fewer than `want` are eligible (the product
    // itself, unavailable, pending) and the index has more.
    const TopK<uint32_t> before = newest;
    int64_t ask = static_cast<int64_t>(want) + 8;
    for (;;) {
      AFFINITY_ASSIGN_OR_RETURN(auto hits, new_similar->Search(query.data(), ask));
      newest = before;
      size_t eligible_hits = 0;
      std::shared_lock caches_lock(caches_->mu);
      std::shared_lock lock(state->mu);
      for (const auto& hit : hits) {
        const auto p = static_cast<uint32_t>(hit.row);
        if (p == id.value || std::binary_search(scored.begin(), scored.end(), p) ||
            state->pending.count(p) || !caches_->Available(p)) {
          continue;
        }
        newest.Push(hit.score, p);
        ++eligible_hits;
      }
      if (eligible_hits >= want || static_cast<int64_t>(hits.size()) < ask) break;
      ask *= 4;
    }
  }
  const std::vector<std::pair<float, uint32_t>> extra = newest.Take();
  std::vector<SimilarProduct> out;
  int64_t ask = static_cast<int64_t>(want) + 8;
  for (;;) {
    AFFINITY_ASSIGN_OR_RETURN(auto hits, model.similar->Search(query.data(), ask));
    TopK<uint32_t> best(want);
    size_t taken = 0;
    {
      std::shared_lock lock(caches_->mu);
      for (const auto& h : hits) {
        const auto p = static_cast<uint32_t>(h.row);
        if (p == id.value || !caches_->Available(p)) continue;
        best.Push(h.score, p);
        ++taken;
      }
    }
    if (taken < want && static_cast<int64_t>(hits.size()) >= ask) {
      ask *= 4;
      continue;
    }
    for (const auto& [score, p] : extra) best.Push(score, p);
    out.clear();
    for (const auto& [score, p] : best.Take()) {
      std::string ext = model.ProductName(*store_, p);
      if (!ext.empty()) out.push_back({std::move(ext), score});
    }
    break;
  }
  return out;
}

Eigen::VectorXf ServingEngine::EmbedProduct(const Model& model, const State& state,
                                            uint32_t product, std::string* source,
                                            uint32_t* changes) const {
  (void)state;
  ItemAttributes item;
  std::vector<int32_t> rows;
  {
    std::shared_lock lock(caches_->mu);
    const Caches& c = *caches_;
    if (changes) *changes = c.Changes(product);
    if (product < c.products.size()) item = c.products[product].item;
    if (product < c.buyers.size()) {
      for (uint32_t b : c.buyers[product]) {
        if (model.HasUser(b)) rows.push_back(static_cast<int32_t>(b));
      }
    }
  }
  Eigen::VectorXf from_attributes, from_buyers;
  if (model.snapshot.cold_start) {
    auto e = model.snapshot.cold_start->Embed(item);
    if (e.ok() && e->squaredNorm() > 0) from_attributes = std::move(*e);
  }
  if (!rows.empty()) {
    const std::vector<float> ones(rows.size(), 1.0f);
    auto w = model.item_solver->Solve(rows, ones);
    if (w.ok()) from_buyers = std::move(*w);
  }
  if (from_buyers.size() == 0) {
    *source = "attributes";
    return from_attributes;
  }
  if (from_attributes.size() == 0) {
    *source = "buyers";
    return from_buyers;
  }
  *source = "blended";
  const double n = static_cast<double>(rows.size());
  const double prior = options_.prior_buyers;
  return (static_cast<float>(prior / (prior + n)) * from_attributes +
          static_cast<float>(n / (prior + n)) * from_buyers);
}

void ServingEngine::EmbedNewProducts(State* state) const {
  const auto start = std::chrono::steady_clock::now();
  const Model& model = *state->model;
  size_t products = 0;
  {
    std::shared_lock lock(caches_->mu);
    products = caches_->products.size();
  }
  std::unordered_map<uint32_t, State::NewProduct> fresh;
  for (size_t p = 0; p < products; ++p) {
    if (model.HasItem(static_cast<int64_t>(p))) continue;
    std::string source;
    Eigen::VectorXf v = EmbedProduct(model, *state, static_cast<uint32_t>(p), &source);
    if (v.size() > 0)
      fresh.emplace(static_cast<uint32_t>(p), State::NewProduct{std::move(v), source});
  }
  // Indexed like the trained products, so that a catalog of many products nobody has bought
  // does not cost a scan per request.
  std::shared_ptr<const VectorIndex> index, similar;
  if (!fresh.empty()) {
    RowMajorMatrixXf vectors =
        RowMajorMatrixXf::Zero(static_cast<int64_t>(products), model.item_factors().cols());
    for (const auto& [p, v] : fresh) vectors.row(p) = v.vector.transpose();
    std::tie(index, similar) = IndexNewProducts(model, std::move(vectors));
  }
  std::unique_lock lock(state->mu);
  for (auto& [p, v] : fresh) {
    if (!index) state->pending.insert(p);
    state->new_products.insert_or_assign(p, std::move(v));
  }
  state->new_index = std::move(index);
  state->new_similar = std::move(similar);
  state->new_products_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::pair<std::shared_ptr<const VectorIndex>, std::shared_ptr<const VectorIndex>>
ServingEngine::IndexNewProducts(const Model& model, RowMajorMatrixXf vectors) const {
  // IVF above the exact limit: products described alike have equal vectors (a catalog of unsold
  // products has many), which HNSW's graph construction handles badly.
  VectorIndexOptions o = options_.item_index;
  o.approximate = VectorIndexKind::kIvf;
  auto built = VectorIndex::Build(vectors, o, &model.users());
  for (Eigen::Index r = 0; r < vectors.rows(); ++r) {
    const float norm = vectors.row(r).norm();
    if (norm > 0) vectors.row(r) /= norm;
  }
  auto built_similar = VectorIndex::Build(vectors, o);
  if (!built.ok() || !built_similar.ok()) {
    // Not fatal: every new product is then scored exactly (pending).
    std::fprintf(stderr, "new-product index not built: %s\n",
                 (built.ok() ? built_similar.status() : built.status()).ToString().c_str());
    return {};
  }
  return {std::move(*built), std::move(*built_similar)};
}

bool ServingEngine::ReindexNewProducts() {
  // Not under reload_mu_ (a forget or reload would wait for the build): a reload that retires
  // this state meanwhile makes the swap below a no-op, and the new state indexes its own.
  std::lock_guard reindex_lock(reindex_mu_);
  constexpr size_t kMinPending = 256;
  std::shared_ptr<State> state = current();
  const Model& model = *state->model;
  RowMajorMatrixXf vectors;
  size_t logged = 0;
  {
    std::shared_lock lock(state->mu);
    const size_t pending = state->pending.size();
    if (state->retired || pending < kMinPending || 8 * pending < state->new_products.size()) {
      return false;
    }
    uint32_t rows = 0;
    for (const auto& [p, v] : state->new_products) rows = std::max(rows, p + 1);
    vectors = RowMajorMatrixXf::Zero(rows, model.item_factors().cols());
    for (const auto& [p, v] : state->new_products) vectors.row(p) = v.vector.transpose();
    logged = state->product_log.size();
  }
  auto [index, similar] = IndexNewProducts(model, std::move(vectors));
  if (!index) return false;
  std::unique_lock lock(state->mu);
  if (state->retired) return false;
  state->new_index = std::move(index);
  state->new_similar = std::move(similar);
  // Current now but for those stored since the copy.
  state->pending.clear();
  for (size_t i = logged; i < state->product_log.size(); ++i) {
    state->pending.insert(state->product_log[i]);
  }
  return true;
}

void ServingEngine::RefreshNewProduct(uint32_t product) {
  for (;;) {
    std::shared_ptr<State> state = current();
    const Model& model = *state->model;
    if (model.HasItem(product)) return;  // trained: the snapshot's row serves
    std::string source;
    uint32_t changes = 0;
    Eigen::VectorXf v = EmbedProduct(model, *state, product, &source, &changes);
    // Its attributes or buyers changed meanwhile (a concurrent purchase, forget or PUT, whose own
    // refresh may have stored already): embed again rather than store an older vector over it.
    std::shared_lock caches_lock(caches_->mu);  // caches before state, as everywhere
    if (caches_->Changes(product) != changes) continue;
    std::unique_lock lock(state->mu);
    if (state->retired) continue;  // a reload swapped models meanwhile: embed on the new one
    StoreNewProduct(state.get(), product, std::move(v), std::move(source));
    return;
  }
}

void ServingEngine::StoreNewProduct(State* state, uint32_t product, Eigen::VectorXf v,
                                    std::string source) {
  state->product_log.push_back(product);
  // The same vector again (a PUT that changed nothing the map reads, such as availability, or a
  // catalog sync re-sending the product): its index row is still current, so it is not made
  // pending (scored exactly on every request until the next reload).
  auto old = state->new_products.find(product);
  if (old == state->new_products.end()
          ? v.size() == 0
          : old->second.source == source && old->second.vector.size() == v.size() &&
                old->second.vector == v) {
    return;
  }
  if (v.size() > 0) {
    state->new_products.insert_or_assign(product, State::NewProduct{std::move(v), source});
  } else {
    state->new_products.erase(product);
  }
  state->pending.insert(product);  // its index row, if any, is stale now
}

Result<AudienceResult> ServingEngine::Audience(const AudienceRequest& request) const {
  if (request.limit < 1) return Status::InvalidArgument("limit must be >= 1", "limit");
  if (request.product.empty() == !request.attributes) {
    return Status::InvalidArgument("give a product id or a product's attributes", "product");
  }
  if (request.horizon_days && !(*request.horizon_days > 0)) {
    return Status::InvalidArgument("horizon_days must be > 0", "horizon_days");
  }
  // Capped at max_audience, but for a ranking of every customer (the campaign planner).
  const size_t limit = static_cast<size_t>(
      request.all_customers ? request.limit : std::min(request.limit, options_.max_audience));
  std::shared_ptr<State> state = current();
  const Model& model = *state->model;
  AudienceResult result;
  result.model_version = model.snapshot.version;

  // The product: its vector and attributes.
  std::optional<uint32_t> product;
  ItemAttributes item;
  Eigen::VectorXf h;
  const std::string name = request.product.empty() ? "the described product" : request.product;
  if (!request.product.empty()) {
    AFFINITY_ASSIGN_OR_RETURN(ProductId id, FindProduct(model, request.product));
    product = id.value;
    {
      std::shared_lock lock(caches_->mu);
      if (id.value < caches_->products.size()) item = caches_->products[id.value].item;
    }
    if (model.HasItem(id.value)) {
      h = model.item_factors().row(id.value).transpose();
      result.product_vector = "model";
    } else {
      std::shared_lock lock(state->mu);
      if (auto it = state->new_products.find(id.value); it != state->new_products.end()) {
        h = it->second.vector;
        result.product_vector = it->second.source;
      }
    }
  } else {
    item = ToItemAttributes(*request.attributes);
    if (model.snapshot.cold_start) {
      AFFINITY_ASSIGN_OR_RETURN(h, model.snapshot.cold_start->Embed(item));
      result.product_vector = "attributes";
    }
  }
  if (h.size() == 0 || h.squaredNorm() == 0) {
    return Status::FailedPrecondition(
        name + " has no vector in model v" + std::to_string(model.snapshot.version) +
        (model.snapshot.cold_start
             ? ": no buyer with a vector in the snapshot yet, and no attribute the model knows"
             : ": no buyer with a vector in the snapshot yet, and the snapshot has no cold-start "
               "map"));
  }
  const std::optional<LogisticCalibration>& calibration = model.snapshot.audience;
  result.calibrated = calibration.has_value();
  result.horizon_days = request.horizon_days.value_or(calibration ? calibration->horizon_days : 0);
  const float floor = request.min_score.value_or(-std::numeric_limits<float>::infinity());
  const ProductKeys keys(item);

  // The calibration was fitted on launches, scored against their attribute vectors: its score
  // feature uses the product's attribute vector whenever there is one (the served vector, which
  // may be trained or blended, chooses the index candidates). Without a model the score is
  // w_u · h itself.
  Eigen::VectorXf h_feature = h;
  if (calibration && model.snapshot.cold_start) {
    auto attr = model.snapshot.cold_start->Embed(item);
    if (attr.ok() && attr->squaredNorm() > 0) h_feature = std::move(*attr);
  }
  // w_u · h and w_u · h_feature of the customers folded in since the snapshot (their index rows
  // are stale; NaN: folded in without a vector).
  std::unordered_map<uint32_t, std::pair<float, float>> fresh;
  {
    std::shared_lock lock(state->mu);
    fresh.reserve(state->overlay.size());
    constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
    for (const auto& [customer, w] : state->overlay) {
      fresh.emplace(customer,
                    w.size() > 0 ? std::pair{w.dot(h), w.dot(h_feature)} : std::pair{kNaN, kNaN});
    }
  }
  // Candidates per source (never more than there are customers).
  const size_t per_source = std::min<size_t>(
      calibration ? std::max(limit * static_cast<size_t>(options_.audience_candidates), limit + 64)
                  : limit,
      static_cast<size_t>(model.users().rows()) + fresh.size() + 64);
  auto feature_score_of = [&](uint32_t customer) -> float {
    if (auto it = fresh.find(customer); it != fresh.end()) {
      return std::isnan(it->second.second) ? 0.0f : it->second.second;
    }
    if (customer < model.has_user.size() && model.has_user[customer]) {
      return model.users().row(customer).dot(h_feature);
    }
    return 0.0f;
  };
  // The index source looks where the audience model rewards the score: the customers with the
  // highest w_u · h, or the lowest when the model's weight on the score is negative (none when
  // it is zero). Without a model, the highest.
  auto weight = [&](size_t k) {
    return k < calibration->weights.size() ? calibration->weights[k] : 0.0;
  };
  const double score_weight = calibration ? weight(0) : 1.0;
  const float direction = score_weight < 0 ? -1.0f : 1.0f;

  // Scoring reads the caches only (no store reads): the features of new_products.h.
  const Eigen::VectorXf unit_h = h.normalized();
  const auto inv_scale = static_cast<float>(1 / model.snapshot.score_scale);
  const UnixSeconds now =
      std::max<UnixSeconds>(newest_event_.load(), model.weighting.reference_time.value_or(0));
  const UnixSeconds recent_from =
      now - static_cast<UnixSeconds>((calibration ? calibration->horizon_days : 30) * 86400);
  std::array<float, kAudienceFeatures> x{};
  const size_t logit_terms =
      calibration ? std::min(calibration->weights.size(), kAudienceFeatures) : 0;
  std::shared_lock caches_lock(caches_->mu);
  const Caches& c = *caches_;
  // Scratch from the pool, returned when done (on every path out).
  std::unique_ptr<AudienceScratch> scratch;
  {
    std::lock_guard lock(scratch_mu_);
    if (!scratch_.empty()) {
      scratch = std::move(scratch_.back());
      scratch_.pop_back();
    }
  }
  if (!scratch) scratch = std::make_unique<AudienceScratch>();
  struct Return {
    const ServingEngine* engine;
    std::unique_ptr<AudienceScratch>* scratch;
    ~Return() {
      std::lock_guard lock(engine->scratch_mu_);
      engine->scratch_.push_back(std::move(*scratch));
    }
  } give_back{this, &scratch};

  // Which of the product's keys each catalog product shares, as bits: 0-2 the category levels
  // (deepest, parent, top), 3-26 the title words, 27-31 the tags. A candidate's counts are then
  // one lookup per product they bought: the bits of the keys with few products, marked in
  // `mask` by walking their lists, and those of the keys with a bitset (KeyProducts::Dense),
  // tested in it.
  const std::string* levels[] = {&keys.category, &keys.parent, &keys.department};
  static_assert(3 + kMaxKeyWords + kMaxKeyTags <= 32, "the keys must fit one 32-bit mask");
  constexpr uint32_t kWordBits = ((1u << kMaxKeyWords) - 1) << 3;
  const size_t words = keys.words.size();  // <= kMaxKeyWords
  const size_t tags = keys.tags.size();    // <= kMaxKeyTags
  ProductBits& mask = scratch->keys;
  struct DenseKey {
    const Caches::KeyProducts* products;
    uint32_t bits;  // of each key with these products (a path of two levels repeats its top)
  };
  std::array<DenseKey, 32> dense{};
  size_t dense_keys = 0;
  if (calibration) {
    mask.Reset(c.products.size());
    auto mark = [&](const std::unordered_map<std::string, Caches::KeyProducts>& index,
                    const std::string& key, uint32_t bit) {
      auto it = index.find(key);
      if (it == index.end()) return;
      if (it->second.Dense()) {
        auto same = std::find_if(dense.begin(), dense.begin() + dense_keys,
                                 [&](const DenseKey& d) { return d.products == &it->second; });
        if (same == dense.begin() + dense_keys) dense[dense_keys++] = {&it->second, 0};
        same->bits |= 1u << bit;
      } else {
        for (uint32_t p : it->second.ids) mask.Or(p, 1u << bit);
      }
    };
    for (uint32_t l = 0; l < 3; ++l) {
      if (!levels[l]->empty()) mark(c.by_category, *levels[l], l);
    }
    for (size_t k = 0; k < words; ++k) mark(c.by_word, keys.words[k], static_cast<uint32_t>(3 + k));
    for (size_t k = 0; k < tags; ++k) mark(c.by_tag, keys.tags[k], static_cast<uint32_t>(27 + k));
  }
  // The product's keys that product p shares, as bits.
  auto shared_keys = [&](uint32_t p) {
    uint32_t m = mask.Get(p);
    for (size_t k = 0; k < dense_keys; ++k) {
      if (dense[k].products->Has(p)) m |= dense[k].bits;
    }
    return m;
  };
  constexpr float kNotListed = std::numeric_limits<float>::quiet_NaN();
  // Scores up to kScoreGroup candidates into out[0, n): the logit, or NaN for one not listed
  // (forgotten meanwhile, or below the floor). `given`: their w_u · h as the index found it, or
  // null. A candidate's data is several dependent cache misses away (the pointer to its purchase
  // record, the record, the mask entries of the products, its factor row; 1M customers do not fit
  // in cache). Taken a group at a time, stage by stage, a whole group's misses are in flight
  // together instead of one customer's after another's.
  constexpr size_t kScoreGroup = 32;
  const auto user_row_bytes = static_cast<size_t>(model.users().cols()) * sizeof(float);
  auto prefetch_row = [](const float* row, size_t bytes) {
    const char* p = reinterpret_cast<const char*>(row);
    for (size_t k = 0; k < bytes; k += 64) PrefetchLine(p + k);
  };
  auto score_group = [&](const uint32_t* group, size_t n, const float* given, float* out) {
    for (size_t j = 0; j < n; ++j) {
      const uint32_t customer = group[j];
      if (calibration && customer < c.purchases.size()) PrefetchLine(c.purchases.Slot(customer));
      if (!given && customer < model.has_user.size()) {
        prefetch_row(model.users().row(customer).data(), user_row_bytes);
      }
    }
    if (calibration) {
      for (size_t j = 0; j < n; ++j) {
        const uint32_t customer = group[j];
        if (customer >= c.purchases.size() || !c.purchases.Record(customer)) continue;
        // The record's first line (its sizes, the first products); the times' first and last
        // lines, beyond it for customers with more than a few purchases, once it has come.
        PrefetchLine(c.purchases.Record(customer));
      }
      for (size_t j = 0; j < n; ++j) {
        const uint32_t customer = group[j];
        const std::span<const UnixSeconds> times = c.purchases.Times(customer);
        if (!times.empty()) {
          PrefetchLine(times.data());
          PrefetchLine(&times.back());
        }
        for (uint32_t p : c.purchases.Products(customer)) mask.Prefetch(p);
      }
    }
    for (size_t j = 0; j < n; ++j) {
      const uint32_t customer = group[j];
      out[j] = kNotListed;
      if (customer >= c.live.size() || !c.live[customer]) continue;  // forgotten meanwhile
      const float raw = given ? given[j] : feature_score_of(customer);
      float score = raw;
      if (calibration) {
        const std::span<const uint32_t> bought = c.purchases.Products(customer);
        // PurchaseProfile's counts, for this product's keys only: per level, and over all the
        // words and all the tags (a product counts once per key it shares).
        std::array<int32_t, 3> counts{};
        int32_t word_count = 0, tag_count = 0;
        for (uint32_t p : bought) {
          const uint32_t m = shared_keys(p);
          counts[0] += static_cast<int32_t>(m & 1);
          counts[1] += static_cast<int32_t>((m >> 1) & 1);
          counts[2] += static_cast<int32_t>((m >> 2) & 1);
          // A bit at a time (a product shares few words): std::popcount is a call into libgcc
          // on the baseline x86-64 this is built for.
          for (uint32_t rest = m & ~7u; rest != 0; rest &= rest - 1) {
            ++((rest & (~rest + 1) & kWordBits) != 0 ? word_count : tag_count);
          }
        }
        // A stated interest counts as one purchase in its category (every level of it): one
        // product more, and one in each of the product's levels it is under.
        int32_t stated_paths = 0;
        if (!c.interests.empty()) {
          if (auto stated = c.interests.find(customer); stated != c.interests.end()) {
            stated_paths = static_cast<int32_t>(stated->second.size());
            for (const auto& path : stated->second) {
              for (int l = 0; l < 3; ++l) {
                counts[l] += !levels[l]->empty() && UnderCategory(path, *levels[l]);
              }
            }
          }
        }
        KeyCounts counts_of_keys;
        counts_of_keys.products = static_cast<int32_t>(bought.size()) + stated_paths;
        counts_of_keys.category = counts[0];
        counts_of_keys.parent = counts[1];
        counts_of_keys.department = counts[2];
        counts_of_keys.words = word_count;
        counts_of_keys.tags = tag_count;
        // The recent purchases are the last ones (ascending times): count back from the end,
        // touching a cache line or two where a binary search would touch ~log2(n).
        const std::span<const UnixSeconds> times = c.purchases.Times(customer);
        auto it = times.end();
        while (it != times.begin() && *(it - 1) >= recent_from) --it;
        counts_of_keys.recent = static_cast<int32_t>(times.end() - it);
        if (!times.empty()) {
          counts_of_keys.tenure_days = static_cast<double>(now - times.front()) / 86400;
        }
        AudienceFeatures(raw * inv_scale, counts_of_keys, keys, x);
        // LogisticCalibration::Logit, the same sum in the same order, without a copy into
        // doubles and a call per candidate.
        double z = calibration->intercept;
        for (size_t k = 0; k < logit_terms; ++k) z += calibration->weights[k] * x[k];
        score = static_cast<float>(z);
      }
      if (score >= floor) out[j] = score;
    }
  };
  // The best `limit` candidates so far, by logit (ties: the lower customer id first). The
  // probability is non-decreasing in the logit, so a floor on it keeps a prefix of this ranking.
  TopK<uint32_t> top(limit);
  size_t scored = 0;
  std::vector<float> list_scores;  // of the last list scored
  auto score_all = [&](const std::vector<uint32_t>& list, const float* given) {
    list_scores.resize(list.size());
    for (size_t first = 0; first < list.size(); first += kScoreGroup) {
      score_group(list.data() + first, std::min(kScoreGroup, list.size() - first),
                  given ? given + first : nullptr, list_scores.data() + first);
    }
    for (size_t i = 0; i < list.size(); ++i) {
      if (!std::isnan(list_scores[i])) top.Push(list_scores[i], list[i]);
    }
    scored += list.size();
  };

  // Every customer is scored when asked, or when the sources could gather as many (four of
  // per_source: a small shop, a large limit): no index search, and nobody is missed.
  const bool everyone = request.all_customers || (calibration && 4 * per_source >= c.live.size());
  // Customers already taken as candidates, needed only when several sources contribute.
  const bool several_sources = calibration && !everyone;
  Marks& taken = scratch->taken;
  taken.Reset(several_sources ? c.live.size() : 0);
  auto first_time = [&](uint32_t customer) {
    return !several_sources || (customer < c.live.size() && taken.Mark(customer));
  };
  auto eligible = [&](uint32_t customer) {
    return customer < c.live.size() && c.live[customer] &&
           (request.include_opted_out || !c.opted_out.count(customer)) &&
           !(product && c.Bought(*product, customer));
  };
  if (everyone) {
    std::vector<uint32_t> candidates;
    for (uint32_t customer = 0; customer < c.live.size(); ++customer) {
      if (eligible(customer)) candidates.push_back(customer);
    }
    score_all(candidates, nullptr);
  } else if (!calibration) {
    // No audience model: w_u · h ranks the audience, so the index's exact scores are the
    // answer's (Search re-scores its best rows in float); customers folded in since the snapshot
    // (stale index rows) are ranked exactly.
    TopK<uint32_t> found(per_source);
    for (const auto& [customer, scores] : fresh) {
      if (!std::isnan(scores.first) && eligible(customer)) found.Push(scores.first, customer);
    }
    int64_t ask = static_cast<int64_t>(per_source) + 64;
    for (;;) {
      AFFINITY_ASSIGN_OR_RETURN(auto hits, model.customers->Search(h.data(), ask));
      TopK<uint32_t> round = found;
      size_t n = 0;
      for (const auto& hit : hits) {
        const auto customer = static_cast<uint32_t>(hit.row);
        if (fresh.count(customer) || !eligible(customer) || !model.has_user_id[customer]) {
          continue;
        }
        round.Push(hit.score, customer);
        ++n;
      }
      if (n >= per_source || static_cast<int64_t>(hits.size()) < ask) {
        found = std::move(round);
        break;
      }
      ask *= 4;
    }
    std::vector<uint32_t> candidates;
    std::vector<float> index_scores;
    for (const auto& [score, customer] : found.Take()) {
      candidates.push_back(customer);
      index_scores.push_back(score);
    }
    score_all(candidates, index_scores.data());
  } else {
    // Sources, each a list ranked by part of the logit: the index (w_u · h; customers folded in
    // since the snapshot are ranked exactly beside it), the category's prospects at two levels,
    // the customers who stated an interest in it, and the customers by prior. They are taken in
    // rounds, a chunk from each open source per round, and every round's candidates are scored
    // before the next: a source whose whole chunk adds none to the best `limit` so far is
    // closed, as is one that has given `per_source` candidates or has no more. So a source the
    // product's audience does not come from costs one chunk, and a good one is read as deep as
    // it keeps paying.
    struct Source {
      const std::vector<uint32_t>* list = nullptr;
      size_t next = 0;   // position in *list
      size_t taken = 0;  // candidates it gave (each customer once over all sources)
      bool open = true;
      bool index = false;  // the index's rows: asked again, deeper, when read to the end
      size_t rounds = 0;   // rounds it gave candidates in
    };
    std::vector<Source> sources;
    std::vector<uint32_t> fresh_best;
    if (score_weight != 0) {
      TopK<uint32_t> top_fresh(per_source);
      for (const auto& [customer, scores] : fresh) {
        if (!std::isnan(scores.first) && eligible(customer)) {
          top_fresh.Push(direction * scores.first, customer);
        }
      }
      for (const auto& [score, customer] : top_fresh.Take()) fresh_best.push_back(customer);
    }
    if (!fresh_best.empty()) sources.push_back({&fresh_best});
    // The index's rows by their own (8-bit) ranking, without re-scoring: the model scores every
    // candidate exactly. Stale rows (folded in since) are left to fresh_best.
    const Eigen::VectorXf query = direction * h;
    std::vector<uint32_t> index_rows;
    int64_t asked = 0;
    auto ask_index = [&](int64_t ask) -> Status {
      AFFINITY_ASSIGN_OR_RETURN(auto rows, model.customers->SearchRows(query.data(), ask));
      asked = ask;
      index_rows.clear();
      for (int64_t row : rows) {
        const auto customer = static_cast<uint32_t>(row);
        if (!fresh.count(customer) && model.has_user_id[customer]) index_rows.push_back(customer);
      }
      // Fewer rows than asked: the index has no more.
      if (static_cast<int64_t>(rows.size()) < ask) asked = std::numeric_limits<int64_t>::max();
      return Status::Ok();
    };
    // Buyers in the product's category: those of its deepest level with enough buyers, best
    // prospects first (Caches::Prospects), then those of the level above it.
    std::vector<std::shared_ptr<const Caches::Prospects>> prospects;
    // The expected score term of a product of the deepest category the model has a mean vector
    // for: both levels' lists rank by it (the level above has a list per such subcategory).
    std::optional<Caches::ScoreLift> lift;
    if (score_weight != 0) {
      for (int l = 0; l < 3 && !lift; ++l) {
        if (levels[l]->empty()) continue;
        if (auto it = model.category_means.find(*levels[l]); it != model.category_means.end()) {
          lift = Caches::ScoreLift{*levels[l],
                                   static_cast<float>(score_weight) * inv_scale * it->second};
        }
      }
    }
    // A path of fewer than three levels repeats its top level (A/B: A/B, A, A); the level above
    // l is the next one that differs, if any.
    auto has_level_above = [&](int l) {
      for (int m = l + 1; m < 3; ++m) {
        if (!levels[m]->empty() && *levels[m] != *levels[l]) return true;
      }
      return false;
    };
    int levels_taken = 0;
    for (int l = 0; l < 3 && levels_taken < 2; ++l) {
      if (levels[l]->empty() || !c.by_category.count(*levels[l])) continue;
      if (l > 0 && *levels[l] == *levels[l - 1]) continue;  // the same list as the level below
      std::array<double, 3> gains{};  // the weights of this level's purchases, at each level
      for (int m = l; m < 3; ++m) {
        if (!levels[m]->empty()) gains[static_cast<size_t>(m)] = weight(2 + m);
      }
      auto ranked = c.RankedBuyers(model.generation, *levels[l], l, gains[0] + gains[1] + gains[2],
                                   2 * per_source, &scratch->in_level, lift ? &*lift : nullptr,
                                   model.users(), model.has_user);
      // Too few here to fill the source: try the level above (its buyers include these).
      if (levels_taken == 0 && ranked->buyers < per_source && has_level_above(l) &&
          !ranked->capped) {
        continue;
      }
      prospects.push_back(std::move(ranked));
      ++levels_taken;
    }
    // With a category source, the first round is a head start for it, and every other source
    // opens with a probe of kAudienceChunk (below): the index is asked for about that.
    const size_t chunk = std::max<size_t>(kAudienceChunk, limit / 4);
    const size_t first_round = prospects.empty() ? chunk : kAudienceChunk;
    if (score_weight != 0) {
      AFFINITY_RETURN_IF_ERROR(
          ask_index(static_cast<int64_t>(std::min(per_source, 2 * first_round)) + 64));
      sources.push_back({&index_rows, 0, 0, true, true});
    }
    // The first category source ranks by the largest part of the logit (the prior, its level's
    // and the levels above's counts, the expected score).
    std::optional<size_t> head;
    if (!prospects.empty()) head = sources.size();
    for (const auto& ranked : prospects) sources.push_back({&ranked->ranked});
    // Customers who stated an interest the model credits (one under a level of the product's
    // category counts as a purchase there): those under its deepest level first (its path, or
    // deeper), then those under its parent, then under its top level, so that a customer who
    // stated the product's own category is not read after thousands who stated its department.
    // At most 4 × per_source (the source gives per_source at most, some being ineligible or taken
    // by other sources).
    std::vector<uint32_t> stating;
    {
      const size_t cap = 4 * per_source;
      // A customer who stated several of these paths (Toys, Toys/Games) is listed once, at their
      // first place, rather than taking several of the list's places.
      std::unordered_set<uint32_t> listed;
      auto add = [&](const std::vector<uint32_t>& customers) {
        for (size_t i = 0; i < customers.size() && stating.size() < cap; ++i) {
          if (listed.insert(customers[i]).second) stating.push_back(customers[i]);
        }
      };
      for (int l = 0; l < 3 && stating.size() < cap; ++l) {
        const std::string& level = *levels[l];
        if (level.empty() || (l > 0 && level == *levels[l - 1])) continue;
        const std::string* below = l > 0 ? levels[l - 1] : nullptr;  // added already
        if (auto it = c.stated.find(level); it != c.stated.end()) add(it->second);
        const std::string under = level + '/';
        for (auto it = c.stated.lower_bound(under);
             it != c.stated.end() && it->first.starts_with(under) && stating.size() < cap; ++it) {
          if (!below || !UnderCategory(it->first, *below)) add(it->second);
        }
      }
    }
    if (!stating.empty()) sources.push_back({&stating});
    // The customers with the highest priors.
    sources.push_back({&c.by_prior});

    // The head start: when there is a category source, the first round is `limit` of its
    // candidates alone, so that the best `limit` is full of the category's best prospects before
    // any other source is judged (judged against a best `limit` that is not yet full, a round
    // always "enters" and a source the audience does not come from costs two rounds). Each
    // other source then opens with a probe of kAudienceChunk, and goes on in rounds of `chunk`
    // while it pays.
    std::vector<uint32_t> batch;
    std::vector<size_t> from;  // the source of each of batch
    std::vector<size_t> gave(sources.size()), entered(sources.size());
    for (size_t round = 0;; ++round) {
      batch.clear();
      from.clear();
      std::fill(gave.begin(), gave.end(), 0);
      for (size_t k = 0; k < sources.size(); ++k) {
        Source& s = sources[k];
        size_t want = chunk;
        if (head && round == 0) {
          want = k == *head ? limit : 0;
        } else if (head && s.rounds == 0) {
          want = kAudienceChunk;
        }
        while (s.open && gave[k] < want) {
          if (s.taken == per_source) {
            s.open = false;
          } else if (s.next < s.list->size()) {
            // The marks of customers a little ahead: one scattered read each, overlapped.
            constexpr size_t kAhead = 16;
            if (s.next + kAhead < s.list->size() && (*s.list)[s.next + kAhead] < c.live.size()) {
              taken.Prefetch((*s.list)[s.next + kAhead]);
            }
            const uint32_t customer = (*s.list)[s.next++];
            if (!eligible(customer) || !first_time(customer)) continue;
            batch.push_back(customer);
            from.push_back(k);
            ++gave[k];
            ++s.taken;
          } else if (s.index && asked != std::numeric_limits<int64_t>::max()) {
            // Deeper: the first rows come again (taken already, they are skipped). Twice as
            // deep, not four times: a scan costs in proportion to the rows asked, and the index
            // source usually closes soon after its first ask (docs/audiences.md).
            AFFINITY_RETURN_IF_ERROR(ask_index(2 * asked));
            s.next = 0;
          } else {
            s.open = false;
          }
        }
      }
      if (batch.empty() && !(head && round == 0)) break;
      for (size_t k = 0; k < sources.size(); ++k) sources[k].rounds += gave[k] > 0;
      score_all(batch, nullptr);
      // A source closes when none of its chunk is among the best `limit` so far.
      std::fill(entered.begin(), entered.end(), 0);
      const bool full = top.Full();
      const float bar = full ? top.Worst() : 0.0f;
      for (size_t i = 0; i < batch.size(); ++i) {
        if (!std::isnan(list_scores[i]) && (!full || list_scores[i] >= bar)) ++entered[from[i]];
      }
      for (size_t k = 0; k < sources.size(); ++k) {
        if (gave[k] > 0 && entered[k] == 0) sources[k].open = false;
      }
    }
  }
  result.candidates = static_cast<int64_t>(scored);
  const std::vector<std::pair<float, uint32_t>> ranked = top.Take();
  struct Listed {
    float score;
    uint32_t customer;
    std::optional<double> probability;
    std::string kind, reason;
  };
  std::vector<Listed> listed;
  listed.reserve(ranked.size());
  for (const auto& [score, customer] : ranked) {
    std::optional<double> probability;
    if (calibration) {
      probability = calibration->ProbabilityOfLogit(score, result.horizon_days);
      if (request.min_probability && *probability < *request.min_probability) break;
    }
    Listed l{score, customer, probability, "", ""};
    // A stated interest covering the product's category is the reason, before any purchase.
    if (!keys.category.empty() && !c.interests.empty()) {
      if (auto stated = c.interests.find(customer); stated != c.interests.end()) {
        for (const auto& path : stated->second) {
          if (UnderCategory(keys.category, path)) {
            l.kind = "stated_interest";
            l.reason = path;
            break;
          }
        }
      }
    }
    listed.push_back(std::move(l));
  }
  // The reasons: the past product closest to this one (cosine of the item vectors), unless a
  // stated interest is the reason.
  // When the listed customers bought more products than a quarter of the catalog (counting
  // repeats across customers), one product-by-product pass (a GEMV) gives every cosine at once.
  size_t bought_total = 0;
  for (size_t i = 0; i < listed.size(); ++i) {
    // The customers' purchase records, read again below: two scattered reads each (the pointer,
    // then the record), overlapped.
    constexpr size_t kAhead = 16;
    if (i + 2 * kAhead < listed.size() && listed[i + 2 * kAhead].customer < c.purchases.size()) {
      PrefetchLine(c.purchases.Slot(listed[i + 2 * kAhead].customer));
    }
    if (i + kAhead < listed.size() && listed[i + kAhead].customer < c.purchases.size()) {
      if (const void* record = c.purchases.Record(listed[i + kAhead].customer)) {
        PrefetchLine(record);
      }
    }
    const Listed& s = listed[i];
    if (s.kind.empty()) bought_total += c.purchases.Products(s.customer).size();
  }
  Eigen::VectorXf cosines;
  if (bought_total * 4 > static_cast<size_t>(model.unit_items.rows())) {
    cosines = model.unit_items * unit_h;
  }
  // Each customer's product rows are scattered cache misses (1M customers' products do not fit in
  // cache; their purchase records were read just above). Taken a group at a time, stage by stage,
  // the misses of a whole group are in flight together instead of one after another.
  constexpr size_t kGroup = 32;
  const auto row_bytes = static_cast<size_t>(model.unit_items.cols()) * sizeof(float);
  // The customers' ids, written after this loop, are fetched in its shadow too.
  const auto& customer_ids = model.snapshot.customer_ids;
  std::array<std::span<const uint32_t>, kGroup> lists{};  // empty: a stated interest's reason
  for (size_t first = 0; first < listed.size(); first += kGroup) {
    const size_t n = std::min(kGroup, listed.size() - first);
    for (size_t j = 0; j < n; ++j) {
      const Listed& s = listed[first + j];
      lists[j] = s.kind.empty() ? c.purchases.Products(s.customer) : std::span<const uint32_t>{};
      if (s.customer < customer_ids.size()) PrefetchLine(&customer_ids[s.customer]);
    }
    if (cosines.size() == 0) {
      for (size_t j = 0; j < n; ++j) {
        for (uint32_t p : lists[j]) {
          if (p >= model.unit_items.rows()) continue;
          const char* row = reinterpret_cast<const char*>(model.unit_items.row(p).data());
          for (size_t k = 0; k < row_bytes; k += 64) PrefetchLine(row + k);
        }
      }
    }
    std::array<int64_t, kGroup> closest;
    closest.fill(-1);
    for (size_t j = 0; j < n; ++j) {
      float best = -2;
      for (uint32_t p : lists[j]) {
        if (p >= model.has_item.size() || !model.has_item[p]) continue;
        const float cosine = cosines.size() > 0 ? cosines[p] : model.unit_items.row(p).dot(unit_h);
        if (cosine > best) {
          best = cosine;
          closest[j] = p;
        }
      }
    }
    // The reasons' names: one more scattered read each, overlapped the same way.
    const auto& product_ids = model.snapshot.product_ids;
    for (size_t j = 0; j < n; ++j) {
      if (closest[j] >= 0 && static_cast<size_t>(closest[j]) < product_ids.size()) {
        PrefetchLine(&product_ids[static_cast<size_t>(closest[j])]);
      }
    }
    for (size_t j = 0; j < n; ++j) {
      if (closest[j] < 0) continue;
      Listed& s = listed[first + j];
      s.reason = model.ProductName(*store_, static_cast<uint32_t>(closest[j]));
      s.kind = "purchased";
    }
  }
  caches_lock.unlock();
  result.customers.reserve(listed.size());
  constexpr size_t kAhead = 8;
  for (size_t i = 0; i < listed.size(); ++i) {
    if (i + kAhead < listed.size() && listed[i + kAhead].customer < customer_ids.size()) {
      PrefetchLine(&customer_ids[listed[i + kAhead].customer]);
    }
    Listed& s = listed[i];
    std::string id = s.customer < model.snapshot.customer_ids.size()
                         ? model.snapshot.customer_ids[s.customer]
                         : std::string();
    if (id.empty()) {
      auto ext = store_->CustomerExternalId(CustomerId{s.customer});
      if (!ext.ok()) continue;
      id = std::move(*ext);
    }
    result.expected_buyers += s.probability.value_or(0);
    result.customers.push_back(
        {std::move(id), s.score, s.probability, std::move(s.kind), std::move(s.reason)});
  }
  return result;
}

std::string AudienceResultJsonText(const AudienceResult& r, const std::string* product) {
  using N = PlainName;
  JsonWriter w(256 + 192 * r.customers.size());  // about 160 bytes per customer
  w.BeginObject();
  if (product) w.Key(N("product")).String(*product);
  w.Key(N("model_version")).Int(r.model_version).Key(N("product_vector")).String(r.product_vector);
  w.Key(N("calibrated")).Bool(r.calibrated).Key(N("horizon_days"));
  r.calibrated ? w.Number(r.horizon_days) : w.Null();
  w.Key(N("expected_buyers")).Number(r.expected_buyers).Key(N("candidates")).Int(r.candidates);
  w.Key(N("customers")).BeginArray();
  for (const AudienceMember& m : r.customers) {
    const bool purchased = m.reason_kind == "purchased";
    const bool stated = !purchased && m.reason_kind == "stated_interest";
    // Nearly always: plain ids, written in one piece (a thousand members an answer); the same
    // text as the general writer below.
    if (JsonWriter::Plain(m.customer) && JsonWriter::Plain(m.reason)) {
      using W = JsonWriter;
      const size_t max = 224 + m.customer.size() + 2 * m.reason.size();
      char* const start = w.BeginRaw(max);
      char* at = W::Copy(start, R"({"customer":")");
      at = W::Copy(at, m.customer);
      at = W::WriteNumber(W::Copy(at, R"(","score":)"), m.score);
      at = W::Copy(at, R"(,"probability":)");
      at = m.probability ? W::WriteNumber(at, *m.probability) : W::Copy(at, "null");
      if (purchased) {
        at = W::Copy(at, R"(,"reason":{"kind":"purchased","product":")");
        at = W::Copy(W::Copy(at, m.reason), R"(","text":"because you bought )");
        at = W::Copy(W::Copy(at, m.reason), R"("}})");
      } else if (stated) {
        at = W::Copy(at, R"(,"reason":{"kind":"stated_interest","category":")");
        at = W::Copy(W::Copy(at, m.reason), R"(","text":"you told us you like )");
        at = W::Copy(W::Copy(at, m.reason), R"("}})");
      } else {
        at = W::Copy(at, R"(,"reason":null})");
      }
      assert(at <= start + max);
      w.EndRaw(at);
      continue;
    }
    w.BeginObject().Key(N("customer")).String(m.customer).Key(N("score")).Number(m.score);
    w.Key(N("probability"));
    m.probability ? w.Number(*m.probability) : w.Null();
    w.Key(N("reason"));
    if (purchased) {
      w.BeginObject().Key(N("kind")).String("purchased").Key(N("product")).String(m.reason);
      w.Key(N("text")).String("because you bought ", m.reason).EndObject();
    } else if (stated) {
      w.BeginObject().Key(N("kind")).String("stated_interest").Key(N("category")).String(m.reason);
      w.Key(N("text")).String("you told us you like ", m.reason).EndObject();
    } else {
      w.Null();
    }
    w.EndObject();
  }
  w.EndArray().EndObject();
  return w.Take();
}

nlohmann::json AudienceResultJson(const AudienceResult& r, const std::string* product) {
  return nlohmann::json::parse(AudienceResultJsonText(r, product));
}

Result<std::vector<Interest>> ServingEngine::Interests(std::string_view customer, int limit) const {
  AFFINITY_ASSIGN_OR_RETURN(CustomerId id, store_->FindCustomer(customer));
  std::shared_ptr<State> state = current();
  const Model& model = *state->model;
  Eigen::VectorXf w;
  if (!state->Overlay(id.value, &w) && model.HasUser(id.value)) {
    w = model.users().row(id.value).transpose();
  }
  // History share: distinct products per category path, over all the customer's products.
  std::map<std::string, double> share;
  std::vector<std::string> stated;
  size_t bought = 0;
  {
    std::shared_lock lock(caches_->mu);
    const std::span<const uint32_t> products = caches_->purchases.Products(id.value);
    bought = products.size();
    for (uint32_t p : products) {
      if (p >= caches_->products.size()) continue;
      Caches::ForEachPrefix(caches_->products[p].category,
                            [&](const std::string& prefix) { share[prefix] += 1; });
    }
    if (auto it = caches_->interests.find(id.value); it != caches_->interests.end()) {
      stated = it->second;
    }
  }
  auto level_of = [](const std::string& path) {
    return 1 + static_cast<int>(std::count(path.begin(), path.end(), '/'));
  };
  // Embedding affinity: the positive part of w · centroid, normalized within each level.
  std::map<std::string, double> affinity;
  std::map<int, double> level_total;
  if (w.size() > 0) {
    for (const auto& [path, count] : share) {
      auto it = model.category_centroids.find(path);
      const double a =
          it == model.category_centroids.end() ? 0.0 : std::max(0.0f, w.dot(it->second));
      affinity[path] = a;
      level_total[level_of(path)] += a;
    }
  }
  std::vector<Interest> learned;
  for (const auto& [path, count] : share) {
    const double from_history = count / static_cast<double>(bought);
    double weight = from_history;
    if (w.size() > 0 && level_total[level_of(path)] > 0) {
      weight = 0.5 * from_history + 0.5 * affinity[path] / level_total[level_of(path)];
    }
    learned.push_back({path, level_of(path), weight, "learned"});
  }
  std::sort(learned.begin(), learned.end(), [](const Interest& a, const Interest& b) {
    return a.weight != b.weight ? a.weight > b.weight : a.category < b.category;
  });
  if (limit >= 0 && learned.size() > static_cast<size_t>(limit)) learned.resize(limit);
  for (const auto& path : stated) learned.push_back({path, level_of(path), 1.0, "stated"});
  return learned;
}

Result<bool> ServingEngine::SetInterests(const std::string& customer,
                                         std::vector<std::string> categories) {
  CustomerProfile profile;
  profile.interests = std::move(categories);
  return UpsertCustomer(customer, profile);
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
  for (const Event& e : result.stored.events) {  // not the events of forgotten ids
    int64_t seen = newest_event_.load();
    while (seen < e.time && !newest_event_.compare_exchange_weak(seen, e.time)) {
    }
  }
  // The caches take the events the store kept (a repeated event id changes nothing), of the
  // customers still stored: one forgotten since is not brought back (ForgetCustomer deletes from
  // the store before it clears the caches under this lock).
  std::vector<uint32_t> customers, products;
  {
    std::unique_lock lock(caches_->mu);
    std::unordered_map<uint32_t, bool> stored;
    for (const Event& e : result.stored.events) {
      const uint32_t customer = e.customer.value, product = e.product.value;
      auto [known, fresh] = stored.try_emplace(customer, false);
      if (fresh) known->second = store_->CustomerExternalId(e.customer).ok();
      if (!known->second) continue;
      customers.push_back(customer);
      if (customer >= caches_->live.size()) caches_->live.resize(customer + 1);
      caches_->live[customer] = true;
      if (e.type == EventType::kPurchase) {
        products.push_back(product);
        caches_->AddPurchase(product, customer, e.time);
        purchases_added_.fetch_add(1);
      }
      caches_->InsertIntoHistory(e);
      if (product >= caches_->products.size()) caches_->SetProduct(product, {});
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
  // Products without a trained row move from their attributes toward their buyers.
  std::sort(products.begin(), products.end());
  products.erase(std::unique(products.begin(), products.end()), products.end());
  for (uint32_t p : products) RefreshNewProduct(p);
  return result;
}

Result<bool> ServingEngine::UpsertCustomer(const std::string& id, const CustomerProfile& profile) {
  std::pair<std::string, CustomerProfile> record{id, profile};
  // Stated interests are stored as the caches use them: normalized paths.
  if (auto& interests = record.second.interests) {
    for (size_t i = 0; i < interests->size(); ++i) {
      if (JoinCategory(SplitCategory((*interests)[i])).empty()) {
        return Status::InvalidArgument("interests[" + std::to_string(i) + "] is an empty path",
                                       "interests");
      }
    }
    interests = NormalizedInterests(*interests);
  }
  int64_t forgotten = 0;
  AFFINITY_ASSIGN_OR_RETURN(int64_t created, store_->UpsertCustomers({&record, 1}, &forgotten));
  if (forgotten > 0) {
    return Status(StatusCode::kFailedPrecondition,
                  "customer '" + id +
                      "' was forgotten and is not stored again (affinity forget --allow-again)",
                  "customer");
  }
  // Read back under the lock, so concurrent upserts and forgets apply to the caches in the
  // order the store saw them.
  std::unique_lock lock(caches_->mu);
  AFFINITY_ASSIGN_OR_RETURN(CustomerId customer, store_->FindCustomer(id));
  AFFINITY_ASSIGN_OR_RETURN(CustomerProfile stored, store_->GetCustomer(customer));
  if (customer.value >= caches_->live.size()) caches_->live.resize(customer.value + 1);
  caches_->live[customer.value] = true;
  caches_->SetConsent(customer.value, stored.email, stored.opted_out.value_or(false));
  caches_->SetInterests(customer.value,
                        NormalizedInterests(stored.interests.value_or(std::vector<std::string>{})));
  return created > 0;
}

Result<bool> ServingEngine::UpsertProduct(const std::string& id,
                                          const ProductAttributes& attributes) {
  const std::pair<std::string, ProductAttributes> record{id, attributes};
  AFFINITY_ASSIGN_OR_RETURN(int64_t created, store_->UpsertProducts({&record, 1}));
  ProductId product;
  {
    std::unique_lock lock(caches_->mu);  // read back under the lock (see UpsertCustomer)
    AFFINITY_ASSIGN_OR_RETURN(product, store_->FindProduct(id));
    AFFINITY_ASSIGN_OR_RETURN(ProductAttributes stored, store_->GetProduct(product));
    caches_->SetProduct(product.value, stored);
  }
  RefreshNewProduct(product.value);  // a product without a trained row: embed it now
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
    caches_->SetConsent(customer, std::nullopt, false);  // their opt-out went with them
    caches_->SetInterests(customer, {});
    for (ProductId p : receipt.products) {
      if (p.value >= caches_->buyers.size()) continue;
      auto& v = caches_->buyers[p.value];
      auto it = std::lower_bound(v.begin(), v.end(), customer);
      if (it != v.end() && *it == customer) v.erase(it);
      caches_->Changed(p.value);
    }
    caches_->purchases.Clear(customer);
    if (customer < caches_->history.size()) caches_->history[customer] = {};
  }
  // The popular products and the candidate lists counted their purchases: the next
  // RefreshCandidates recomputes them, as after purchases added.
  purchases_added_.fetch_add(1);
  // New products they bought no longer count their vector.
  for (ProductId p : receipt.products) RefreshNewProduct(p.value);
  // Drop the overlay vector. After a reload in progress, which may have re-solved it for its new
  // model before the store forgot them (one starting later finds no history to re-solve).
  {
    std::lock_guard reload_lock(reload_mu_);
    for (;;) {
      std::shared_ptr<State> state = current();
      std::unique_lock lock(state->mu);
      if (state->retired) continue;
      const bool in_overlay = state->overlay.erase(customer) > 0;
      result.had_vector = in_overlay || NonZero(state->model->users(), customer);
      result.snapshot_version = state->model->snapshot.version;
      break;
    }
  }
  // Out of the store's files too, not only deleted: in the background (a compaction takes
  // seconds).
  {
    std::lock_guard lock(eraser_->mu);
    if (!eraser_->stop) {
      eraser_->queue.push_back(receipt);
      StartEraser();
    }
  }
  eraser_->cv.notify_all();
  // Versions published since the one served hold them as well. (A training run that checks the
  // store after this point leaves them out; one that checked it before and publishes after may
  // not.)
  if (auto versions = ListSnapshots(root_); versions.ok() && !versions->empty()) {
    result.newest_snapshot = std::max(versions->back(), result.snapshot_version);
  } else {
    result.newest_snapshot = result.snapshot_version;
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
    info.new_products = static_cast<int64_t>(state->new_products.size());
    info.new_products_pending = static_cast<int64_t>(state->pending.size());
    info.new_product_index =
        state->new_index ? index_info(*state->new_index) : IndexInfo{"none", 0, 1, 0};
    info.new_products_seconds = state->new_products_seconds;
  }
  info.loaded_at = m.loaded_at;
  return info;
}

}  // namespace affinity
