#include "affinity/store.h"

#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/metadata.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/sst_file_reader.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "codec.h"
#include "hmac.h"
#include "rocksdb_status.h"

namespace affinity {
namespace {

using codec::IdsKey;

rocksdb::Slice ToSlice(std::string_view s) { return {s.data(), s.size()}; }

// Nearest-rank percentile of an ascending vector: v[ceil(p/100 * n) - 1].
int64_t NearestRank(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

}  // namespace

// One id space (customers or products): external <-> dense internal ids.
struct IdSpace {
  char by_external;
  char by_internal;
  const char* next_key;
  uint32_t next = 0;                                // guarded by Impl::write_mu
  std::unordered_map<std::string, uint32_t> cache;  // guarded by Impl::write_mu
};

class Store::Impl {
 public:
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // owned; destroyed before db
  rocksdb::ColumnFamilyHandle* customers = nullptr;
  rocksdb::ColumnFamilyHandle* products = nullptr;
  rocksdb::ColumnFamilyHandle* events = nullptr;
  rocksdb::ColumnFamilyHandle* ids = nullptr;
  rocksdb::ColumnFamilyHandle* notifications = nullptr;
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  rocksdb::WriteOptions write_options;
  bool read_only = false;

  std::mutex write_mu;  // serializes every write, and guards the IdSpace members
  IdSpace customer_ids{codec::kIdsCustomerByExternal, codec::kIdsCustomerByInternal,
                       codec::kMetaNextCustomerId};
  IdSpace product_ids{codec::kIdsProductByExternal, codec::kIdsProductByInternal,
                      codec::kMetaNextProductId};
  // Guarded by write_mu: the store's secret once read or made, and whether any customer id is
  // marked forgotten (checked only then, on a new customer id).
  std::optional<std::string> secret;
  bool any_forgotten = false;

  // The store's 32-byte secret (codec::kMetaCampaignSecret), made on first use. Requires write_mu.
  Result<std::string> Secret() {
    if (secret) return *secret;
    AFFINITY_ASSIGN_OR_RETURN(auto stored, Get(meta, codec::kMetaCampaignSecret));
    if (stored) {
      if (stored->size() != 32) return Status::Corruption("the store's secret is not 32 bytes");
      secret = std::move(*stored);
      return *secret;
    }
    if (read_only) {
      return Status::FailedPrecondition("the store has no secret yet and is open read-only");
    }
    std::random_device random;  // the OS's entropy source (getrandom/urandom)
    std::string made;
    while (made.size() < 32) {
      const uint32_t r = random();
      for (int b = 0; b < 4; ++b) made.push_back(static_cast<char>((r >> (8 * b)) & 0xFF));
    }
    AFFINITY_RETURN_IF_ERROR(
        FromRocksDb(db->Put(write_options, meta, codec::kMetaCampaignSecret, made)));
    secret = std::move(made);
    return *secret;
  }

  // The key marking `external` as a forgotten customer id: a keyed hash, so that the store keeps
  // no forgotten id in the clear. Requires write_mu.
  Result<std::string> ForgottenKey(std::string_view external) {
    AFFINITY_ASSIGN_OR_RETURN(std::string key, Secret());
    const std::string mac = HmacSha256(key, "forgotten-customer:" + std::string(external));
    if (mac.size() != 32) return Status::Internal("HMAC-SHA256 failed");
    return std::string(codec::kMetaForgottenPrefix) + mac;
  }

  // Whether `external` is a forgotten customer id. Requires write_mu.
  Result<bool> IsForgotten(std::string_view external) {
    if (!any_forgotten) return false;
    AFFINITY_ASSIGN_OR_RETURN(std::string key, ForgottenKey(external));
    AFFINITY_ASSIGN_OR_RETURN(auto marked, Get(meta, key));
    return marked.has_value();
  }
  // The erasures pending (codec::kMetaErasurePrefix keys).
  Result<std::vector<std::string>> PendingErasureKeys() const {
    std::vector<std::string> keys;
    const std::string_view prefix = codec::kMetaErasurePrefix;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), meta));
    for (it->Seek(ToSlice(prefix)); it->Valid() && it->key().starts_with(ToSlice(prefix));
         it->Next()) {
      keys.push_back(it->key().ToString());
    }
    AFFINITY_RETURN_IF_ERROR(FromRocksDb(it->status()));
    return keys;
  }

  // The erasures of `keys` are done: deletes them, then flushes `meta`, a change of the table
  // files that makes RocksDB write a new MANIFEST without the files the erasure compacted away
  // (max_manifest_file_size below) and delete the old one. The erasure is done whether or not
  // that flush succeeds (the next change of the files rolls the MANIFEST then).
  Status ErasuresDone(const std::vector<std::string>& keys) {
    rocksdb::WriteBatch batch;
    for (const std::string& key : keys) batch.Delete(meta, key);
    {
      std::lock_guard lock(write_mu);
      AFFINITY_RETURN_IF_ERROR(FromRocksDb(db->Write(write_options, &batch)));
    }
    rocksdb::FlushOptions flush;
    flush.wait = true;
    (void)db->Flush(flush, meta);
    return Status::Ok();
  }

  ~Impl() {
    if (db) {
      for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    }
  }

  Result<std::optional<std::string>> Get(rocksdb::ColumnFamilyHandle* cf,
                                         std::string_view key) const {
    std::string value;
    rocksdb::Status s = db->Get(rocksdb::ReadOptions(), cf, ToSlice(key), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return FromRocksDb(s);
    return std::optional<std::string>(std::move(value));
  }

  Result<uint32_t> FindId(char prefix, std::string_view external, const char* what) const {
    AFFINITY_ASSIGN_OR_RETURN(auto value, Get(ids, IdsKey(prefix, external)));
    if (!value) {
      return Status::NotFound(std::string(what) + " '" + std::string(external) + "' is unknown");
    }
    return codec::DecodeU32(*value);
  }

  Result<std::string> FindExternal(char prefix, uint32_t id, const char* what) const {
    AFFINITY_ASSIGN_OR_RETURN(auto value, Get(ids, IdsKey(prefix, id)));
    if (!value)
      return Status::NotFound(std::string(what) + " #" + std::to_string(id) + " is unknown");
    return std::move(*value);
  }

  Result<uint32_t> LoadCounter(const char* key) const {
    AFFINITY_ASSIGN_OR_RETURN(auto value, Get(meta, key));
    if (!value) return uint32_t{0};
    return codec::DecodeU32(*value);
  }

  // Ids allocated by one write call, applied to the cache only once the batch is durable.
  struct Pending {
    std::unordered_map<std::string, uint32_t> customers;
    std::unordered_map<std::string, uint32_t> products;
    uint32_t next_customer = 0;
    uint32_t next_product = 0;
  };

  // The internal id of `external` in `space`, allocated when it has none (its id-map entries put
  // into `batch`, *is_new set). With `forgotten` given, a new id that is a forgotten customer's is
  // not allocated: *forgotten is set and 0 returned. Requires write_mu.
  Result<uint32_t> Resolve(IdSpace& space, std::unordered_map<std::string, uint32_t>& pending,
                           uint32_t& next, std::string_view external, rocksdb::WriteBatch& batch,
                           bool* is_new, bool* forgotten = nullptr) {
    *is_new = false;
    if (forgotten) *forgotten = false;
    std::string key(external);
    if (auto it = space.cache.find(key); it != space.cache.end()) return it->second;
    if (auto it = pending.find(key); it != pending.end()) return it->second;
    AFFINITY_ASSIGN_OR_RETURN(auto stored, Get(ids, IdsKey(space.by_external, external)));
    if (stored) {
      AFFINITY_ASSIGN_OR_RETURN(uint32_t id, codec::DecodeU32(*stored));
      space.cache.emplace(std::move(key), id);
      return id;
    }
    if (forgotten) {
      AFFINITY_ASSIGN_OR_RETURN(*forgotten, IsForgotten(external));
      if (*forgotten) return uint32_t{0};
    }
    if (next == UINT32_MAX) return Status::FailedPrecondition("internal id space exhausted");
    uint32_t id = next++;
    batch.Put(ids, IdsKey(space.by_external, external), codec::U32Key(id));
    batch.Put(ids, IdsKey(space.by_internal, id), ToSlice(external));
    pending.emplace(std::move(key), id);
    *is_new = true;
    return id;
  }

  void PutCounters(const Pending& p, rocksdb::WriteBatch& batch) {
    if (p.next_customer != customer_ids.next) {
      batch.Put(meta, codec::kMetaNextCustomerId, codec::U32Key(p.next_customer));
    }
    if (p.next_product != product_ids.next) {
      batch.Put(meta, codec::kMetaNextProductId, codec::U32Key(p.next_product));
    }
  }

  // Commits `batch`; on success makes the pending ids visible. Requires write_mu.
  Status Commit(rocksdb::WriteBatch& batch, Pending& p) {
    if (read_only) return Status::FailedPrecondition("store is open read-only");
    AFFINITY_RETURN_IF_ERROR(FromRocksDb(db->Write(write_options, &batch)));
    for (auto& [k, v] : p.customers) customer_ids.cache.emplace(k, v);
    for (auto& [k, v] : p.products) product_ids.cache.emplace(k, v);
    customer_ids.next = p.next_customer;
    product_ids.next = p.next_product;
    return Status::Ok();
  }

  template <typename Record, typename Decode>
  Result<Record> GetRecord(rocksdb::ColumnFamilyHandle* cf, uint32_t id, Decode decode,
                           const char* what) const {
    AFFINITY_ASSIGN_OR_RETURN(auto value, Get(cf, codec::U32Key(id)));
    if (!value) return Status::NotFound(std::string(what) + " has no stored record");
    return decode(*value);
  }

  template <typename Record, typename Decode, typename Encode>
  Result<int64_t> Upsert(IdSpace& space, bool customers_space, rocksdb::ColumnFamilyHandle* cf,
                         std::span<const std::pair<std::string, Record>> records, Decode decode,
                         Encode encode, int64_t* forgotten_out = nullptr) {
    std::lock_guard lock(write_mu);
    rocksdb::WriteBatch batch;
    Pending p{.next_customer = customer_ids.next, .next_product = product_ids.next};
    std::unordered_map<uint32_t, Record> merged;  // later records in the call merge into earlier
    int64_t created = 0;
    for (size_t i = 0; i < records.size(); ++i) {
      const auto& [external, update] = records[i];
      if (external.empty()) {
        return Status::InvalidArgument("id is empty", "records[" + std::to_string(i) + "].id");
      }
      bool is_new = false;
      bool forgotten = false;
      auto& pending = customers_space ? p.customers : p.products;
      auto& next = customers_space ? p.next_customer : p.next_product;
      AFFINITY_ASSIGN_OR_RETURN(uint32_t id, Resolve(space, pending, next, external, batch, &is_new,
                                                     customers_space ? &forgotten : nullptr));
      if (forgotten) {
        if (forgotten_out) ++*forgotten_out;
        continue;
      }
      auto it = merged.find(id);
      if (it == merged.end()) {
        Record base;
        if (!is_new) {
          AFFINITY_ASSIGN_OR_RETURN(auto stored, Get(cf, codec::U32Key(id)));
          if (stored) {
            AFFINITY_ASSIGN_OR_RETURN(base, decode(*stored));
          }
        }
        created += is_new ? 1 : 0;
        it = merged.emplace(id, std::move(base)).first;
      }
      codec::MergeInto(&it->second, update);
    }
    for (const auto& [id, record] : merged) batch.Put(cf, codec::U32Key(id), encode(record));
    PutCounters(p, batch);
    AFFINITY_RETURN_IF_ERROR(Commit(batch, p));
    return created;
  }

  template <typename Decode, typename Fn>
  Status ScanRecords(rocksdb::ColumnFamilyHandle* cf, Decode decode, const Fn& fn) const {
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cf));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      AFFINITY_ASSIGN_OR_RETURN(uint32_t id, codec::DecodeU32(it->key().ToStringView()));
      AFFINITY_ASSIGN_OR_RETURN(auto record, decode(it->value().ToStringView()));
      if (!fn(id, record)) break;
    }
    return FromRocksDb(it->status());
  }

  Result<int64_t> CountKeys(rocksdb::ColumnFamilyHandle* cf) const {
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cf));
    int64_t n = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
    AFFINITY_RETURN_IF_ERROR(FromRocksDb(it->status()));
    return n;
  }
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::Open(const std::string& path, const StoreOptions& options) {
  if (options.block_cache_mb < 0) {
    return Status::InvalidArgument("block_cache_mb must be >= 0", "block_cache_mb");
  }
  auto impl = std::make_unique<Impl>();
  impl->read_only = options.read_only;
  impl->write_options.sync = options.sync_writes;
  impl->write_options.disableWAL = false;

  rocksdb::Options db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  db_options.IncreaseParallelism(2);
  db_options.OptimizeLevelStyleCompaction();
  // One memtable per flush, not OptimizeLevelStyleCompaction's two: with two, a Flush that waits
  // (an erasure's, an import's) can wait forever when another flush runs beside it, every
  // background thread idle (RocksDB issues #12094 and #13280; it hung the erasure stress test in
  // about one run of eight, docs/storage.md).
  db_options.min_write_buffer_number_to_merge = 1;
  // RocksDB's own LOG at warnings only: at its default level it writes the bounds of a compaction
  // asked for a key range (EraseForgotten's) in hex, which would put a forgotten customer's id
  // and event ids in the LOG files (docs/storage.md).
  db_options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  db_options.keep_log_file_num = 10;
  // A new MANIFEST at every change of the table files, with only the live files in it: a file
  // compacted away is then named by no MANIFEST once the next change is made (each file's entry
  // names its first and last key: after an erasure, maybe a forgotten customer's). Costs a write
  // of the file list (a few KB) per flush or compaction; an import of Online Retail took as long.
  db_options.max_manifest_file_size = 1;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(static_cast<size_t>(options.block_cache_mb) << 20);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions cf_options(db_options);
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const char* name :
       {rocksdb::kDefaultColumnFamilyName.c_str(), codec::kCfCustomers, codec::kCfProducts,
        codec::kCfEvents, codec::kCfIds, codec::kCfNotifications, codec::kCfMeta}) {
    descriptors.emplace_back(name, cf_options);
  }

  if ((options.read_only || !options.create_if_missing) &&
      !std::filesystem::exists(std::filesystem::path(path) / "CURRENT")) {
    return Status::NotFound("no store at " + path);
  }
  if (!options.read_only && options.create_if_missing) {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec)
      return Status::IOError("cannot create database directory " + path + ": " + ec.message());
  }
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  if (options.read_only) {
    // Beside a writer: the MANIFEST that CURRENT named, or a table file it lists, may be deleted
    // while this reads them (the writer starts a new MANIFEST at each flush and compaction).
    // Such a race fails the open with an IO error or a corrupt read; the next try reads the new
    // files.
    for (int attempt = 0;; ++attempt) {
      impl->handles.clear();
      s = rocksdb::DB::OpenForReadOnly(db_options, path, descriptors, &impl->handles, &raw);
      if (s.ok() || attempt == 4 || !(s.IsIOError() || s.IsCorruption() || s.IsPathNotFound())) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20 << attempt));
    }
  } else {
    s = rocksdb::DB::Open(db_options, path, descriptors, &impl->handles, &raw);
  }
  if (!s.ok()) return FromRocksDb(s).WithContext("opening store " + path);
  impl->db.reset(raw);
  impl->customers = impl->handles[1];
  impl->products = impl->handles[2];
  impl->events = impl->handles[3];
  impl->ids = impl->handles[4];
  impl->notifications = impl->handles[5];
  impl->meta = impl->handles[6];

  AFFINITY_ASSIGN_OR_RETURN(auto version, impl->Get(impl->meta, codec::kMetaSchemaVersion));
  if (version) {
    if (*version != std::to_string(codec::kSchemaVersion)) {
      return Status::FailedPrecondition("store " + path + " has schema version " + *version +
                                        "; this build reads version " +
                                        std::to_string(codec::kSchemaVersion));
    }
  } else if (!options.read_only) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    AFFINITY_RETURN_IF_ERROR(FromRocksDb(impl->db->Put(wo, impl->meta, codec::kMetaSchemaVersion,
                                                       std::to_string(codec::kSchemaVersion))));
  }
  AFFINITY_ASSIGN_OR_RETURN(impl->customer_ids.next, impl->LoadCounter(codec::kMetaNextCustomerId));
  AFFINITY_ASSIGN_OR_RETURN(impl->product_ids.next, impl->LoadCounter(codec::kMetaNextProductId));
  {
    std::unique_ptr<rocksdb::Iterator> it(
        impl->db->NewIterator(rocksdb::ReadOptions(), impl->meta));
    it->Seek(codec::kMetaForgottenPrefix);
    impl->any_forgotten =
        it->Valid() && it->key().starts_with(rocksdb::Slice(codec::kMetaForgottenPrefix));
    AFFINITY_RETURN_IF_ERROR(FromRocksDb(it->status()));
  }
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Result<AppendResult> Store::AppendEvents(std::span<const EventInput> events) {
  for (size_t i = 0; i < events.size(); ++i) {
    AFFINITY_RETURN_IF_ERROR(ValidateEventInput(events[i], i));
  }
  Impl& d = *impl_;
  std::lock_guard lock(d.write_mu);
  AppendResult result;
  rocksdb::WriteBatch batch;
  Impl::Pending p{.next_customer = d.customer_ids.next, .next_product = d.product_ids.next};
  std::unordered_set<std::string_view> batch_event_ids;
  std::unordered_set<std::string_view> forgotten_ids;  // in this batch, each checked once
  // Earliest event per touched customer / earliest purchase per touched product, for created_at.
  std::unordered_map<uint32_t, std::pair<UnixSeconds, bool>> customer_first;  // time, is_new
  std::unordered_map<uint32_t, std::pair<std::optional<UnixSeconds>, bool>> product_first;

  for (const EventInput& in : events) {
    if (!batch_event_ids.insert(in.event_id).second) {
      ++result.duplicates;
      continue;
    }
    AFFINITY_ASSIGN_OR_RETURN(auto existing, d.Get(d.ids, IdsKey(codec::kIdsEvent, in.event_id)));
    if (existing) {
      ++result.duplicates;
      continue;
    }
    bool new_customer = false;
    bool new_product = false;
    bool forgotten = forgotten_ids.count(in.customer) > 0;
    uint32_t cid = 0;
    if (!forgotten) {
      AFFINITY_ASSIGN_OR_RETURN(cid, d.Resolve(d.customer_ids, p.customers, p.next_customer,
                                               in.customer, batch, &new_customer, &forgotten));
    }
    if (forgotten) {
      // Not stored: its event id stays free for a later event of the batch.
      forgotten_ids.insert(in.customer);
      batch_event_ids.erase(in.event_id);
      ++result.forgotten;
      continue;
    }
    AFFINITY_ASSIGN_OR_RETURN(uint32_t pid, d.Resolve(d.product_ids, p.products, p.next_product,
                                                      in.product, batch, &new_product));
    result.new_customers += new_customer ? 1 : 0;
    result.new_products += new_product ? 1 : 0;

    Event e{CustomerId{cid}, ProductId{pid}, in.type,    in.time,
            in.quantity,     in.unit_price,  in.channel, in.event_id};
    std::string key = codec::EventKey(e.customer, e.time, e.event_id);
    std::string value = codec::EncodeEventValue(e);
    std::string index_key = IdsKey(codec::kIdsEvent, in.event_id);
    result.bytes += static_cast<int64_t>(key.size() + value.size() + index_key.size() + key.size());
    batch.Put(d.events, key, value);
    batch.Put(d.ids, index_key, key);
    ++result.written;
    result.events.push_back(std::move(e));

    auto [cit, cinserted] = customer_first.try_emplace(cid, in.time, new_customer);
    if (!cinserted) cit->second.first = std::min(cit->second.first, in.time);
    auto& pf = product_first.try_emplace(pid, std::nullopt, new_product).first->second;
    if (in.type == EventType::kPurchase && (!pf.first || in.time < *pf.first)) pf.first = in.time;
  }

  // created_at: new records get their first event; stored ones only move earlier.
  for (const auto& [cid, first] : customer_first) {
    CustomerProfile profile;
    if (!first.second) {
      AFFINITY_ASSIGN_OR_RETURN(auto stored, d.Get(d.customers, codec::U32Key(cid)));
      if (stored) {
        AFFINITY_ASSIGN_OR_RETURN(profile, codec::DecodeCustomer(*stored));
        if (profile.created_at && *profile.created_at <= first.first) continue;
      }
    }
    profile.created_at = first.first;
    batch.Put(d.customers, codec::U32Key(cid), codec::EncodeCustomer(profile));
  }
  for (const auto& [pid, first] : product_first) {
    ProductAttributes attrs;
    if (!first.second) {
      if (!first.first) continue;
      AFFINITY_ASSIGN_OR_RETURN(auto stored, d.Get(d.products, codec::U32Key(pid)));
      if (stored) {
        AFFINITY_ASSIGN_OR_RETURN(attrs, codec::DecodeProduct(*stored));
        if (attrs.created_at && *attrs.created_at <= *first.first) continue;
      }
    }
    if (first.first) attrs.created_at = *first.first;
    batch.Put(d.products, codec::U32Key(pid), codec::EncodeProduct(attrs));
  }
  d.PutCounters(p, batch);
  if (batch.Count() > 0) AFFINITY_RETURN_IF_ERROR(d.Commit(batch, p));
  return result;
}

Result<int64_t> Store::UpsertCustomers(
    std::span<const std::pair<std::string, CustomerProfile>> customers, int64_t* forgotten) {
  return impl_->Upsert(impl_->customer_ids, true, impl_->customers, customers,
                       codec::DecodeCustomer, codec::EncodeCustomer, forgotten);
}

Result<int64_t> Store::UpsertProducts(
    std::span<const std::pair<std::string, ProductAttributes>> products) {
  return impl_->Upsert(impl_->product_ids, false, impl_->products, products, codec::DecodeProduct,
                       codec::EncodeProduct);
}

namespace {

std::string ErasureKey(uint32_t customer) {
  return std::string(codec::kMetaErasurePrefix) + codec::U32Key(customer);
}

}  // namespace

Result<ForgetReceipt> Store::ForgetCustomer(std::string_view external_id) {
  Impl& d = *impl_;
  std::lock_guard lock(d.write_mu);
  if (d.read_only) return Status::FailedPrecondition("store is open read-only");
  AFFINITY_ASSIGN_OR_RETURN(uint32_t id,
                            d.FindId(codec::kIdsCustomerByExternal, external_id, "customer"));
  ForgetReceipt receipt;
  receipt.customer = std::string(external_id);
  receipt.internal_id = id;
  rocksdb::WriteBatch batch;
  // Events: one prefix; each event's dedup entry is found through the event id in its value.
  AFFINITY_ASSIGN_OR_RETURN(std::vector<Event> history, CustomerHistory(CustomerId{id}));
  std::vector<uint32_t> products;
  for (const Event& e : history) {
    batch.Delete(d.events, codec::EventKey(e.customer, e.time, e.event_id));
    batch.Delete(d.ids, IdsKey(codec::kIdsEvent, e.event_id));
    products.push_back(e.product.value);
    if (receipt.first_event_id.empty() || e.event_id < receipt.first_event_id) {
      receipt.first_event_id = e.event_id;
    }
    if (e.event_id > receipt.last_event_id) receipt.last_event_id = e.event_id;
  }
  receipt.events = static_cast<int64_t>(history.size());
  std::sort(products.begin(), products.end());
  products.erase(std::unique(products.begin(), products.end()), products.end());
  for (uint32_t p : products) receipt.products.push_back(ProductId{p});
  AFFINITY_ASSIGN_OR_RETURN(auto profile, d.Get(d.customers, codec::U32Key(id)));
  receipt.profile = profile.has_value();
  batch.Delete(d.customers, codec::U32Key(id));
  batch.Delete(d.ids, IdsKey(codec::kIdsCustomerByExternal, external_id));
  batch.Delete(d.ids, IdsKey(codec::kIdsCustomerByInternal, id));
  // Ledger entries start with the customer's u32 BE id (docs/storage.md).
  {
    const std::string prefix = codec::U32Key(id);
    std::unique_ptr<rocksdb::Iterator> it(
        d.db->NewIterator(rocksdb::ReadOptions(), d.notifications));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      batch.Delete(d.notifications, it->key());
      ++receipt.notifications;
    }
    AFFINITY_RETURN_IF_ERROR(FromRocksDb(it->status()));
  }
  // Marked with the delete, so that an erasure a crash or a stop cut short is still known, and
  // so that the id is not stored again (a re-import of an old export) until allowed again.
  batch.Put(d.meta, ErasureKey(id), "");
  AFFINITY_ASSIGN_OR_RETURN(std::string forgotten_key, d.ForgottenKey(external_id));
  batch.Put(d.meta, forgotten_key, "");
  AFFINITY_RETURN_IF_ERROR(FromRocksDb(d.db->Write(d.write_options, &batch)));
  d.customer_ids.cache.erase(std::string(external_id));
  d.any_forgotten = true;
  return receipt;
}

Result<bool> Store::IsForgotten(std::string_view external_id) const {
  Impl& d = *impl_;
  std::lock_guard lock(d.write_mu);
  return d.IsForgotten(external_id);
}

Status Store::MarkForgotten(std::string_view external_id) {
  Impl& d = *impl_;
  std::lock_guard lock(d.write_mu);
  if (d.read_only) return Status::FailedPrecondition("store is open read-only");
  if (const std::string problem = ExternalIdProblem(external_id); !problem.empty()) {
    return Status::InvalidArgument("the customer id " + problem, "customer");
  }
  AFFINITY_ASSIGN_OR_RETURN(auto known,
                            d.Get(d.ids, IdsKey(codec::kIdsCustomerByExternal, external_id)));
  if (known) {
    return Status(StatusCode::kFailedPrecondition,
                  "customer '" + std::string(external_id) +
                      "' is in the store: forget them (ForgetCustomer), which also marks the id",
                  "customer");
  }
  AFFINITY_ASSIGN_OR_RETURN(std::string key, d.ForgottenKey(external_id));
  AFFINITY_RETURN_IF_ERROR(FromRocksDb(d.db->Put(d.write_options, d.meta, key, "")));
  d.any_forgotten = true;
  return Status::Ok();
}

Status Store::AllowForgottenAgain(std::string_view external_id) {
  Impl& d = *impl_;
  std::lock_guard lock(d.write_mu);
  if (d.read_only) return Status::FailedPrecondition("store is open read-only");
  std::optional<std::string> marked;
  std::string key;
  if (d.any_forgotten) {
    AFFINITY_ASSIGN_OR_RETURN(key, d.ForgottenKey(external_id));
    AFFINITY_ASSIGN_OR_RETURN(marked, d.Get(d.meta, key));
  }
  if (!marked) {
    return Status(StatusCode::kNotFound,
                  "customer '" + std::string(external_id) + "' is not a forgotten one", "customer");
  }
  return FromRocksDb(d.db->Delete(d.write_options, d.meta, key));
}

namespace {

// A key range of one column family to compact; an unset bound is that end of the family.
struct CompactionRange {
  rocksdb::ColumnFamilyHandle* cf;
  std::optional<std::string> first, last;  // inclusive
  // Whether a write after the erasure may hold keys of the range again (an external id imported
  // anew, any key of a whole family): then only the files from before the erasure are checked.
  // A forgotten internal id is never reused, so no file at all may hold a key under it.
  bool rewritable = true;
};

// Automatic compactions off in every column family while it lives, back on when it goes (on
// every path out). One started by an erasure's own flush (level 0 reaching its trigger as the
// flush adds a file) runs beside the manual compaction, and RocksDB 7.8 can then leave keys of the
// manual range uncompacted (RocksDB issue #7983; docs/storage.md).
class AutoCompactionsOff {
 public:
  AutoCompactionsOff(rocksdb::DB* db, const std::vector<rocksdb::ColumnFamilyHandle*>& all)
      : db_(db), all_(all) {
    for (rocksdb::ColumnFamilyHandle* cf : all_) {
      status_ = FromRocksDb(db_->SetOptions(cf, {{"disable_auto_compactions", "true"}}));
      if (!status_.ok()) break;
    }
  }
  ~AutoCompactionsOff() {
    for (rocksdb::ColumnFamilyHandle* cf : all_) {
      db_->SetOptions(cf, {{"disable_auto_compactions", "false"}}).PermitUncheckedError();
    }
  }
  AutoCompactionsOff(const AutoCompactionsOff&) = delete;
  AutoCompactionsOff& operator=(const AutoCompactionsOff&) = delete;
  const Status& status() const { return status_; }

 private:
  rocksdb::DB* db_;
  const std::vector<rocksdb::ColumnFamilyHandle*>& all_;
  Status status_;
};

// The live table files of r's column family numbered at most `up_to` that still hold a record of
// r (a value no later record in the same file deletes), read from the files themselves: a file's
// first and last keys may span r without it holding any of r's keys, and RocksDB then need not
// rewrite it.
Result<std::vector<uint64_t>> OldFilesHolding(rocksdb::DB* db, const CompactionRange& r,
                                              uint64_t up_to) {
  std::vector<rocksdb::LiveFileMetaData> files;
  db->GetLiveFilesMetaData(&files);
  const rocksdb::Options options = db->GetOptions(r.cf);  // outlives the readers
  std::vector<uint64_t> old;
  for (const rocksdb::LiveFileMetaData& f : files) {
    if (f.column_family_name != r.cf->GetName() || f.file_number > up_to) continue;
    if (r.last && f.smallestkey > *r.last) continue;  // bytewise, as the store's keys compare
    if (r.first && f.largestkey < *r.first) continue;
    rocksdb::SstFileReader reader(options);
    AFFINITY_RETURN_IF_ERROR(FromRocksDb(reader.Open(f.db_path + f.name)));
    std::unique_ptr<rocksdb::Iterator> it(reader.NewIterator(rocksdb::ReadOptions()));
    r.first ? it->Seek(*r.first) : it->SeekToFirst();
    AFFINITY_RETURN_IF_ERROR(FromRocksDb(it->status()));
    if (it->Valid() && (!r.last || it->key().compare(*r.last) <= 0)) old.push_back(f.file_number);
  }
  return old;
}

// Flushes every column family (so that no write-ahead log still holds what was deleted), then
// compacts each range down to the last level, which is rewritten even when a single file holds
// the range: that is where deleted records' bytes are. Then checks, from the files, that none
// still holds a record of a range (of a rewritable range, none from before the flush),
// compacting it again, twice at most: an error, not a silent success, if one does.
Status FlushThenCompact(rocksdb::DB* db, const std::vector<rocksdb::ColumnFamilyHandle*>& all,
                        const std::vector<CompactionRange>& ranges, std::atomic<bool>* cancel) {
  AutoCompactionsOff off(db, all);
  AFFINITY_RETURN_IF_ERROR(off.status());
  uint64_t newest_before = 0;  // file numbers only grow: the flush's and later files are above
  {
    std::vector<rocksdb::LiveFileMetaData> files;
    db->GetLiveFilesMetaData(&files);
    for (const auto& f : files) newest_before = std::max(newest_before, f.file_number);
  }
  rocksdb::FlushOptions flush;
  flush.wait = true;
  AFFINITY_RETURN_IF_ERROR(FromRocksDb(db->Flush(flush, all)));
  rocksdb::CompactRangeOptions options;
  options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  options.canceled = cancel;
  for (const CompactionRange& r : ranges) {
    std::optional<rocksdb::Slice> first, last;
    if (r.first) first.emplace(*r.first);
    if (r.last) last.emplace(*r.last);
    for (int attempt = 0;; ++attempt) {
      AFFINITY_RETURN_IF_ERROR(FromRocksDb(
          db->CompactRange(options, r.cf, first ? &*first : nullptr, last ? &*last : nullptr)));
      AFFINITY_ASSIGN_OR_RETURN(
          std::vector<uint64_t> old,
          OldFilesHolding(db, r,
                          r.rewritable ? newest_before : std::numeric_limits<uint64_t>::max()));
      if (old.empty()) break;
      if (attempt == 2) {
        return Status::IOError("compacting column family " + r.cf->GetName() + " left table file " +
                               std::to_string(old.front()) +
                               " still holding records of the erased range");
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Status Store::EraseForgotten(const ForgetReceipt& receipt, std::atomic<bool>* cancel) {
  Impl& d = *impl_;
  if (d.read_only) return Status::FailedPrecondition("store is open read-only");
  // Keys under the customer's u32 prefix: [prefix, prefix + 0xFF...] covers every one of them.
  const std::string prefix = codec::U32Key(receipt.internal_id);
  const std::string prefix_end = prefix + std::string(32, '\xff');
  std::vector<CompactionRange> ranges;
  for (rocksdb::ColumnFamilyHandle* cf : {d.events, d.customers, d.notifications}) {
    ranges.push_back({cf, prefix, prefix_end, /*rewritable=*/false});
  }
  for (const std::string& key : {IdsKey(codec::kIdsCustomerByExternal, receipt.customer),
                                 IdsKey(codec::kIdsCustomerByInternal, receipt.internal_id)}) {
    ranges.push_back({d.ids, key, key});
  }
  if (!receipt.first_event_id.empty()) {
    ranges.push_back({d.ids, IdsKey(codec::kIdsEvent, receipt.first_event_id),
                      IdsKey(codec::kIdsEvent, receipt.last_event_id)});
  }
  AFFINITY_RETURN_IF_ERROR(FlushThenCompact(d.db.get(), d.handles, ranges, cancel));
  return d.ErasuresDone({ErasureKey(receipt.internal_id)});
}

Status Store::Compact(std::atomic<bool>* cancel) {
  Impl& d = *impl_;
  if (d.read_only) return Status::FailedPrecondition("store is open read-only");
  std::vector<CompactionRange> whole;
  for (rocksdb::ColumnFamilyHandle* cf : d.handles)
    whole.push_back({cf, std::nullopt, std::nullopt});
  // Those forgotten before the flush are erased by it; any forgotten meanwhile stay pending.
  AFFINITY_ASSIGN_OR_RETURN(std::vector<std::string> before, d.PendingErasureKeys());
  AFFINITY_RETURN_IF_ERROR(FlushThenCompact(d.db.get(), d.handles, whole, cancel));
  return d.ErasuresDone(before);
}

Result<int64_t> Store::ErasuresPending() const {
  AFFINITY_ASSIGN_OR_RETURN(std::vector<std::string> keys, impl_->PendingErasureKeys());
  return static_cast<int64_t>(keys.size());
}

Status ValidateCampaignId(std::string_view id) {
  auto alnum = [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
  };
  const auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("campaign id '" + std::string(id) + "' " + why, "campaign_id");
  };
  if (id.empty() || id.size() > 64) return bad("must have 1-64 characters");
  if (!alnum(id.front()) || !alnum(id.back()))
    return bad("must start and end with a letter or digit");
  for (size_t i = 0; i < id.size(); ++i) {
    const char ch = id[i];
    if (alnum(ch)) continue;
    if (ch != '.' && ch != '_' && ch != ':' && ch != '-') {
      return bad("may only hold letters, digits and . _ : -");
    }
    if (!alnum(id[i + 1])) return bad("may not hold two of . _ : - in a row");
  }
  return Status::Ok();
}

Status Store::RecordCampaign(const CampaignRecord& campaign,
                             std::span<const LedgerLetter> letters) {
  AFFINITY_RETURN_IF_ERROR(ValidateCampaignId(campaign.id));
  Impl& d = *impl_;
  std::lock_guard lock(d.write_mu);
  if (d.read_only) return Status::FailedPrecondition("store is open read-only");
  const std::string key = std::string(codec::kMetaCampaignPrefix) + campaign.id;
  AFFINITY_ASSIGN_OR_RETURN(auto stored, d.Get(d.meta, key));
  if (stored) return Status::AlreadyExists("campaign '" + campaign.id + "' is already recorded");
  rocksdb::WriteBatch batch;
  std::unordered_set<uint32_t> customers;
  for (size_t i = 0; i < letters.size(); ++i) {
    const LedgerLetter& letter = letters[i];
    const std::string field = "letters[" + std::to_string(i) + "]";
    if (letter.campaign != campaign.id) {
      return Status::InvalidArgument("letter of campaign '" + letter.campaign + "'", field);
    }
    if (letter.status != LetterStatus::kPending) {
      return Status::InvalidArgument("a planned letter must be pending", field);
    }
    if (!customers.insert(letter.customer.value).second) {
      return Status::InvalidArgument("a second letter to one customer", field);
    }
    // Forgotten since the plan: nothing of theirs is written again.
    auto known = d.FindExternal(codec::kIdsCustomerByInternal, letter.customer.value, "customer");
    if (!known.ok()) {
      if (known.status().code() == StatusCode::kNotFound) continue;
      return known.status();
    }
    batch.Put(d.notifications, codec::LetterKey(letter.customer, letter.campaign),
              codec::EncodeLetter(letter));
  }
  batch.Put(d.meta, key, codec::EncodeCampaign(campaign));
  return FromRocksDb(d.db->Write(d.write_options, &batch));
}

Status Store::UpdateCampaign(const CampaignRecord& campaign) {
  AFFINITY_RETURN_IF_ERROR(ValidateCampaignId(campaign.id));
  Impl& d = *impl_;
  std::lock_guard lock(d.write_mu);
  if (d.read_only) return Status::FailedPrecondition("store is open read-only");
  const std::string key = std::string(codec::kMetaCampaignPrefix) + campaign.id;
  AFFINITY_ASSIGN_OR_RETURN(auto stored, d.Get(d.meta, key));
  if (!stored) return Status::NotFound("campaign '" + campaign.id + "' is not recorded");
  return FromRocksDb(d.db->Put(d.write_options, d.meta, key, codec::EncodeCampaign(campaign)));
}

Result<std::optional<CampaignRecord>> Store::GetCampaign(std::string_view id) const {
  AFFINITY_ASSIGN_OR_RETURN(
      auto value,
      impl_->Get(impl_->meta, std::string(codec::kMetaCampaignPrefix) + std::string(id)));
  if (!value) return std::optional<CampaignRecord>();
  AFFINITY_ASSIGN_OR_RETURN(CampaignRecord record, codec::DecodeCampaign(id, *value));
  return std::optional<CampaignRecord>(std::move(record));
}

Result<std::vector<CampaignRecord>> Store::ListCampaigns() const {
  std::vector<CampaignRecord> out;
  const std::string_view prefix = codec::kMetaCampaignPrefix;
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->meta));
  for (it->Seek(ToSlice(prefix)); it->Valid() && it->key().starts_with(ToSlice(prefix));
       it->Next()) {
    AFFINITY_ASSIGN_OR_RETURN(CampaignRecord record,
                              codec::DecodeCampaign(it->key().ToStringView().substr(prefix.size()),
                                                    it->value().ToStringView()));
    out.push_back(std::move(record));
  }
  AFFINITY_RETURN_IF_ERROR(FromRocksDb(it->status()));
  return out;
}

Status Store::MarkLetter(CustomerId customer, std::string_view campaign,
                         std::optional<LetterStatus> status, UnixSeconds at) {
  Impl& d = *impl_;
  std::lock_guard lock(d.write_mu);
  if (d.read_only) return Status::FailedPrecondition("store is open read-only");
  const std::string key = codec::LetterKey(customer, campaign);
  const std::string which = "letter of campaign '" + std::string(campaign) + "' to customer #" +
                            std::to_string(customer.value);
  AFFINITY_ASSIGN_OR_RETURN(auto value, d.Get(d.notifications, key));
  if (!value) return Status::NotFound("no " + which);
  AFFINITY_ASSIGN_OR_RETURN(LedgerLetter letter, codec::DecodeLetter(key, *value));
  if (letter.status != LetterStatus::kPending) {
    return status ? Status::Ok()
                  : Status::FailedPrecondition("the " + which + " is no longer pending");
  }
  if (!status) return FromRocksDb(d.db->Delete(d.write_options, d.notifications, key));
  letter.status = *status;
  letter.sent_at = at;
  return FromRocksDb(d.db->Put(d.write_options, d.notifications, key, codec::EncodeLetter(letter)));
}

Status Store::MarkLetterSent(CustomerId customer, std::string_view campaign, UnixSeconds at) {
  return MarkLetter(customer, campaign, LetterStatus::kSent, at);
}

Status Store::MarkLetterRejected(CustomerId customer, std::string_view campaign, UnixSeconds at) {
  return MarkLetter(customer, campaign, LetterStatus::kRejected, at);
}

Status Store::DropLetter(CustomerId customer, std::string_view campaign) {
  return MarkLetter(customer, campaign, std::nullopt, 0);
}

bool Store::read_only() const { return impl_->read_only; }

// Streams the ledger entries whose keys start with `prefix` (every entry for an empty one).
static Status ForEachLetter(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                            std::string_view prefix,
                            const std::function<bool(const LedgerLetter&)>& fn) {
  rocksdb::ReadOptions ro;
  ro.fill_cache = !prefix.empty();  // a full scan does not evict hot data
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cf));
  for (it->Seek(ToSlice(prefix)); it->Valid() && it->key().starts_with(ToSlice(prefix));
       it->Next()) {
    AFFINITY_ASSIGN_OR_RETURN(LedgerLetter letter, codec::DecodeLetter(it->key().ToStringView(),
                                                                       it->value().ToStringView()));
    if (!fn(letter)) break;
  }
  return FromRocksDb(it->status());
}

Result<std::vector<LedgerLetter>> Store::CustomerLetters(CustomerId customer) const {
  std::vector<LedgerLetter> out;
  AFFINITY_RETURN_IF_ERROR(ForEachLetter(impl_->db.get(), impl_->notifications,
                                         codec::U32Key(customer.value), [&](const LedgerLetter& l) {
                                           out.push_back(l);
                                           return true;
                                         }));
  return out;
}

Status Store::ScanLetters(const std::function<bool(const LedgerLetter&)>& fn) const {
  return ForEachLetter(impl_->db.get(), impl_->notifications, "", fn);
}

Result<std::string> Store::CampaignSecret() {
  Impl& d = *impl_;
  std::lock_guard lock(d.write_mu);
  return d.Secret();
}

Result<CustomerId> Store::FindCustomer(std::string_view external_id) const {
  AFFINITY_ASSIGN_OR_RETURN(uint32_t id,
                            impl_->FindId(codec::kIdsCustomerByExternal, external_id, "customer"));
  return CustomerId{id};
}

Result<ProductId> Store::FindProduct(std::string_view external_id) const {
  AFFINITY_ASSIGN_OR_RETURN(uint32_t id,
                            impl_->FindId(codec::kIdsProductByExternal, external_id, "product"));
  return ProductId{id};
}

Result<std::string> Store::CustomerExternalId(CustomerId id) const {
  return impl_->FindExternal(codec::kIdsCustomerByInternal, id.value, "customer");
}

Result<std::string> Store::ProductExternalId(ProductId id) const {
  return impl_->FindExternal(codec::kIdsProductByInternal, id.value, "product");
}

Result<CustomerProfile> Store::GetCustomer(CustomerId id) const {
  return impl_->GetRecord<CustomerProfile>(impl_->customers, id.value, codec::DecodeCustomer,
                                           "customer");
}

Result<ProductAttributes> Store::GetProduct(ProductId id) const {
  return impl_->GetRecord<ProductAttributes>(impl_->products, id.value, codec::DecodeProduct,
                                             "product");
}

Result<std::vector<Event>> Store::CustomerHistory(CustomerId id) const {
  std::vector<Event> out;
  std::string prefix = codec::EventPrefix(id);
  rocksdb::ReadOptions ro;
  std::string upper = codec::U32Key(id.value + 1);
  rocksdb::Slice upper_slice(upper);
  if (id.value != UINT32_MAX) ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->events));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    Event e;
    AFFINITY_RETURN_IF_ERROR(
        codec::DecodeEvent(it->key().ToStringView(), it->value().ToStringView(), &e));
    out.push_back(std::move(e));
  }
  AFFINITY_RETURN_IF_ERROR(FromRocksDb(it->status()));
  return out;
}

Status Store::ScanEvents(const std::function<bool(const Event&)>& fn) const {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  ro.readahead_size = 2 << 20;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->events));
  Event e;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    AFFINITY_RETURN_IF_ERROR(
        codec::DecodeEvent(it->key().ToStringView(), it->value().ToStringView(), &e));
    if (!fn(e)) break;
  }
  return FromRocksDb(it->status());
}

Status Store::ScanProducts(
    const std::function<bool(ProductId, const ProductAttributes&)>& fn) const {
  return impl_->ScanRecords(
      impl_->products, codec::DecodeProduct,
      [&](uint32_t id, const ProductAttributes& a) { return fn(ProductId{id}, a); });
}

Status Store::ScanCustomers(
    const std::function<bool(CustomerId, const CustomerProfile&)>& fn) const {
  return impl_->ScanRecords(
      impl_->customers, codec::DecodeCustomer,
      [&](uint32_t id, const CustomerProfile& p) { return fn(CustomerId{id}, p); });
}

Result<StoreStats> Store::ComputeStats() const {
  StoreStats stats;
  AFFINITY_ASSIGN_OR_RETURN(stats.customers, impl_->CountKeys(impl_->customers));
  AFFINITY_ASSIGN_OR_RETURN(stats.products, impl_->CountKeys(impl_->products));
  std::vector<int64_t> per_customer;
  std::optional<uint32_t> current;
  AFFINITY_RETURN_IF_ERROR(ScanEvents([&](const Event& e) {
    ++stats.events;
    switch (e.type) {
      case EventType::kPurchase:
        ++stats.purchases;
        break;
      case EventType::kReturn:
        ++stats.returns;
        break;
      default:
        ++stats.other_events;
    }
    if (!stats.first_event || e.time < *stats.first_event) stats.first_event = e.time;
    if (!stats.last_event || e.time > *stats.last_event) stats.last_event = e.time;
    if (current != e.customer.value) {
      per_customer.push_back(0);
      current = e.customer.value;
    }
    ++per_customer.back();
    return true;
  }));
  std::sort(per_customer.begin(), per_customer.end());
  stats.customers_with_events = static_cast<int64_t>(per_customer.size());
  stats.events_per_customer_p50 = NearestRank(per_customer, 50);
  stats.events_per_customer_p90 = NearestRank(per_customer, 90);
  stats.events_per_customer_p99 = NearestRank(per_customer, 99);
  stats.events_per_customer_max = per_customer.empty() ? 0 : per_customer.back();
  return stats;
}

uint32_t Store::customer_id_limit() const {
  std::lock_guard lock(impl_->write_mu);
  return impl_->customer_ids.next;
}

uint32_t Store::product_id_limit() const {
  std::lock_guard lock(impl_->write_mu);
  return impl_->product_ids.next;
}

Status Store::Flush() {
  if (impl_->read_only) return Status::Ok();
  rocksdb::FlushOptions fo;
  return FromRocksDb(impl_->db->Flush(fo, impl_->handles));
}

}  // namespace affinity
