// Store: the embedded RocksDB database that holds a shop's customers, products, events,
// id maps, the notification ledger and metadata. Key encodings and value formats are documented
// in docs/storage.md; keep that file in sync with engine/src/codec.h.
//
// Durability: every write is one RocksDB WriteBatch with the WAL on, so a write that returned OK
// survives a crash of the process (kill -9). With StoreOptions::sync_writes the WAL is also
// fsync'ed before the call returns, so it survives a power loss too.
//
// Thread safety: a Store is thread-safe. Reads run concurrently; writes are serialized by an
// internal mutex (id allocation and event dedup need a single writer). One process at a time may
// open a database directory (RocksDB holds a lock file).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "affinity/status.h"
#include "affinity/types.h"

namespace affinity {

struct StoreOptions {
  // Create the database (and its column families) if the directory holds none. Default true.
  bool create_if_missing = true;
  // fsync the WAL before each write returns. Default false: writes survive a process crash but
  // the last ~second may be lost on power failure; true costs one fsync per batch.
  bool sync_writes = false;
  // Open read-only (no writes, no lock; several readers may share a directory). Default false.
  bool read_only = false;
  // RocksDB block cache size in MiB, shared by all column families. Default 64.
  int block_cache_mb = 64;
};

// What a call to AppendEvents did.
struct AppendResult {
  int64_t written = 0;        // events newly stored
  int64_t duplicates = 0;     // events whose event_id was already stored (or repeated in the batch)
  int64_t new_customers = 0;  // external customer ids seen for the first time
  int64_t new_products = 0;   // external product ids seen for the first time
  int64_t forgotten = 0;      // events of forgotten customer ids, not stored (ForgetCustomer)
  int64_t bytes = 0;          // key + value bytes put into the WriteBatch
  // The events newly stored (not the duplicates), with their internal ids, in input order.
  std::vector<Event> events;
};

// What Store::ForgetCustomer removed.
struct ForgetReceipt {
  std::string customer;             // the external id that was forgotten
  uint32_t internal_id = 0;         // its internal id (a hole from now on, never reused)
  int64_t events = 0;               // events deleted (with their dedup entries)
  bool profile = false;             // a customer record was deleted
  int64_t notifications = 0;        // ledger entries deleted
  std::vector<ProductId> products;  // products the customer had events for (ascending)
  // The smallest and largest event id deleted (for EraseForgotten; empty without events).
  std::string first_event_id, last_event_id;
};

// Counts over the whole store, from StoreStats::Compute-style full scans.
struct StoreStats {
  int64_t customers = 0;  // customer profiles stored
  int64_t products = 0;   // product records stored
  int64_t events = 0;
  int64_t purchases = 0;
  int64_t returns = 0;
  int64_t other_events = 0;  // views and carts
  int64_t customers_with_events = 0;
  std::optional<UnixSeconds> first_event;
  std::optional<UnixSeconds> last_event;
  // Events per customer (customers with >= 1 event), nearest-rank percentiles.
  int64_t events_per_customer_p50 = 0;
  int64_t events_per_customer_p90 = 0;
  int64_t events_per_customer_p99 = 0;
  int64_t events_per_customer_max = 0;
};

// ---- The notification ledger (docs/storage.md, "notifications") ----

// Where a letter is in its delivery: recorded before delivery as pending, marked sent after, or
// rejected when the receiving server refused it for good (never retried).
enum class LetterStatus : uint8_t { kPending = 1, kSent = 2, kRejected = 3 };

// One product a letter tells a customer about.
struct LetterProduct {
  ProductId product;
  double probability = 0;   // calibrated P(buys it within the horizon) when planned
  std::string reason_kind;  // "purchased", "stated_interest" or ""
  std::string reason;       // the past product's external id / the stated category path
};

// One letter: one customer, one campaign. Keyed by (customer, campaign), so a customer gets at
// most one letter per campaign, and forgetting the customer deletes all of theirs.
struct LedgerLetter {
  CustomerId customer;
  std::string campaign;  // campaign id (ValidateCampaignId)
  LetterStatus status = LetterStatus::kPending;
  UnixSeconds planned_at = 0;
  UnixSeconds sent_at = 0;  // when it was sent (or rejected); 0 while pending
  std::vector<LetterProduct> products;
};

// A campaign's plan and outcome, kept in `meta` (no personal data: ids, counts, parameters).
struct CampaignRecord {
  std::string id;
  UnixSeconds created_at = 0;
  // The campaign's parameters and report as a JSON object (written by the campaign runner;
  // the store keeps it as given).
  nlohmann::json details = nlohmann::json::object();
};

// InvalidArgument (field "campaign_id") unless `id` is 1-64 characters of [A-Za-z0-9._:-],
// starting and ending with a letter or digit, without two of . _ : - in a row (so it makes a
// valid Message-ID and file name).
Status ValidateCampaignId(std::string_view id);

class Store {
 public:
  // Opens (or creates) the database in directory `path`. Fails with NotFound if there is no
  // store there and it may not create one (read_only or create_if_missing=false), IOError if
  // RocksDB cannot open it (locked by another process, unreadable), InvalidArgument for bad
  // options, or FailedPrecondition if it was written by another schema version.
  static Result<std::unique_ptr<Store>> Open(const std::string& path, const StoreOptions& options);

  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // ---- Writes (each call is one atomic WriteBatch) ----

  // Stores `events`, resolving external ids (allocating dense internal ids for new ones) and
  // skipping events whose event_id is already stored or repeats earlier in the same call. Each
  // event is validated first (non-empty ids and event_id, finite quantity > 0, finite
  // unit_price >= 0); on any invalid event nothing is written and InvalidArgument names the
  // index ("events[3].quantity") in field(). IOError if RocksDB fails (nothing written).
  // Customers and products first seen here get a record with created_at = their earliest event.
  // Events of a forgotten customer id (ForgetCustomer) are not stored: AppendResult::forgotten.
  Result<AppendResult> AppendEvents(std::span<const EventInput> events);

  // Merges profiles into stored customers by external id (creating ids as needed): fields set in
  // the update replace stored ones, unset fields are kept, created_at only moves earlier.
  // InvalidArgument for an empty id. Returns the number of customers that did not exist before.
  // The profiles of forgotten customer ids (ForgetCustomer) are not stored: counted in
  // *forgotten when given.
  Result<int64_t> UpsertCustomers(
      std::span<const std::pair<std::string, CustomerProfile>> customers,
      int64_t* forgotten = nullptr);

  // Same as UpsertCustomers, for products.
  Result<int64_t> UpsertProducts(
      std::span<const std::pair<std::string, ProductAttributes>> products);

  // Forgets a customer completely, in one atomic WriteBatch: their events and the events' dedup
  // entries, their profile, both id-map entries and every ledger entry (notifications keyed by
  // their internal id). The internal id is never handed out again. The same batch marks their
  // erasure pending (ErasuresPending), so that one a stop or crash cut short is known at the next
  // open, and marks the external id forgotten (a keyed hash of it, not the id: docs/storage.md):
  // from then on AppendEvents and UpsertCustomers store nothing for it (a re-import of an old
  // export does not bring the customer back) until AllowForgottenAgain. The store's secret, the
  // key of that hash, is made (and written on its own) at the first forget. NotFound for an
  // unknown id (MarkForgotten marks one); FailedPrecondition on a read-only store; Corruption
  // for a stored secret that is not 32 bytes; IOError (nothing deleted) if RocksDB fails.
  Result<ForgetReceipt> ForgetCustomer(std::string_view external_id);

  // Marks an external id the store does not hold as forgotten, so that nothing of it is stored
  // later (an erasure request for someone not imported yet, or forgotten by a build that kept no
  // marks). InvalidArgument (field "customer") for an id that cannot be one (ExternalIdProblem);
  // FailedPrecondition (field "customer") for an id the store holds (ForgetCustomer forgets
  // and marks it), or on a read-only store; Corruption and IOError as ForgetCustomer.
  Status MarkForgotten(std::string_view external_id);

  // Whether `external_id` is marked forgotten (ForgetCustomer, MarkForgotten) and not allowed
  // again since. Corruption for a stored secret that is not 32 bytes; IOError if RocksDB fails.
  Result<bool> IsForgotten(std::string_view external_id) const;

  // Lets a forgotten external id be stored again (the person came back and agreed), as a new
  // customer with nothing of before. NotFound (field "customer") when it is not a forgotten
  // one; FailedPrecondition on a read-only store; Corruption and IOError as IsForgotten.
  Status AllowForgottenAgain(std::string_view external_id);

  // Rewrites every file of the store without its deleted records: flushes the memtables and
  // compacts each column family down to its last level (deletes are tombstones until then: a
  // forgotten customer's records stay in the store's files until a compaction rewrites them).
  // The store's size in time (it reads and writes all of it; seconds for a few million events).
  // `cancel` as for EraseForgotten. On success the erasures pending when it started are done
  // (ErasuresPending drops by them). FailedPrecondition on a read-only store; IOError if
  // RocksDB fails (nothing is lost).
  Status Compact(std::atomic<bool>* cancel = nullptr);

  // Takes what ForgetCustomer deleted out of the store's files: flushes the memtables (so that no
  // write-ahead log still holds the customer's records) and compacts, down to the last level,
  // the key ranges that held them (their events, record and ledger prefixes, their id mappings,
  // and the span of their events' dedup entries), rewriting only the files that overlap those
  // ranges. Without it the deleted records stay in the files until RocksDB compacts them on its
  // own. `cancel` (optional): set to true from another thread, it stops the compaction early
  // (Incomplete). On success the customer's erasure is done (ErasuresPending). FailedPrecondition
  // on a read-only store; IOError if RocksDB fails (the customer stays forgotten; their bytes wait
  // for the next compaction, and stay counted).
  Status EraseForgotten(const ForgetReceipt& receipt, std::atomic<bool>* cancel = nullptr);

  // How many forgotten customers may still have records in the store's files: those whose
  // ForgetCustomer was not yet followed by their EraseForgotten or by a Compact. Each is a key in
  // the store, written with the delete (so it survives a crash) and deleted by the erasure, so
  // two erasures of the same customer take it off once. A store written before these keys
  // existed reads 0. IOError if RocksDB fails.
  Result<int64_t> ErasuresPending() const;

  // ---- Notification ledger ----

  // Records a campaign and all its planned letters (each pending) in one atomic WriteBatch:
  // after a crash either the whole plan is stored or none of it. AlreadyExists if a campaign
  // with this id is stored; InvalidArgument for a bad campaign id, a letter of another
  // campaign, a letter that is not pending, or two letters to one customer; IOError. A letter to
  // a customer forgotten since it was planned is not written (ForgetCustomer and this call are
  // serialized, so no ledger entry outlives a forget); if that leaves none, the campaign is
  // recorded without letters (a re-run resumes it with nothing to send).
  Status RecordCampaign(const CampaignRecord& campaign, std::span<const LedgerLetter> letters);
  // Replaces a stored campaign's details (the runner's report). NotFound if it is not stored.
  Status UpdateCampaign(const CampaignRecord& campaign);
  // The stored campaign, or std::nullopt. Corruption for an undecodable record.
  Result<std::optional<CampaignRecord>> GetCampaign(std::string_view id) const;
  // Every stored campaign, in id order.
  Result<std::vector<CampaignRecord>> ListCampaigns() const;
  // Marks the (customer, campaign) letter sent at `at` (one write). NotFound if there is no such
  // letter (the customer was forgotten since it was planned); a letter no longer pending keeps
  // its status and time.
  Status MarkLetterSent(CustomerId customer, std::string_view campaign, UnixSeconds at);
  // Same, for a letter the receiving server refused for good.
  Status MarkLetterRejected(CustomerId customer, std::string_view campaign, UnixSeconds at);
  // Deletes the pending (customer, campaign) letter: the campaign will not send it (its address
  // has the campaign's letter through another account). NotFound if there is no such letter;
  // FailedPrecondition if it is no longer pending (a letter sent or rejected stays on record).
  Status DropLetter(CustomerId customer, std::string_view campaign);
  // One customer's letters, in campaign-id order (one prefix scan).
  Result<std::vector<LedgerLetter>> CustomerLetters(CustomerId customer) const;
  // Streams every letter in (customer, campaign) order; stops early when `fn` returns false.
  Status ScanLetters(const std::function<bool(const LedgerLetter&)>& fn) const;
  // The store's secret for unsubscribe tokens (32 random bytes), created and stored in `meta`
  // on first use. FailedPrecondition on a read-only store that has none yet; IOError.
  Result<std::string> CampaignSecret();

  // ---- Reads ----

  // Internal id of an external id, or NotFound.
  Result<CustomerId> FindCustomer(std::string_view external_id) const;
  Result<ProductId> FindProduct(std::string_view external_id) const;
  // External id of an internal id, or NotFound.
  Result<std::string> CustomerExternalId(CustomerId id) const;
  Result<std::string> ProductExternalId(ProductId id) const;

  // Stored profile / attributes, or NotFound.
  Result<CustomerProfile> GetCustomer(CustomerId id) const;
  Result<ProductAttributes> GetProduct(ProductId id) const;

  // One customer's events, oldest first (ties by event-id hash): a single prefix scan.
  Result<std::vector<Event>> CustomerHistory(CustomerId id) const;

  // Streams every event in (customer, time) order to `fn` without materializing them; stops early
  // (returning OK) when `fn` returns false. Corruption if a stored value does not decode. The
  // scan does not fill the block cache, so a full training pass does not evict hot data.
  Status ScanEvents(const std::function<bool(const Event&)>& fn) const;

  // Streams every product (internal id, attributes) in id order.
  Status ScanProducts(const std::function<bool(ProductId, const ProductAttributes&)>& fn) const;
  // Streams every customer (internal id, profile) in id order.
  Status ScanCustomers(const std::function<bool(CustomerId, const CustomerProfile&)>& fn) const;

  // Full-scan counts (linear in the number of events; about a second per few million).
  Result<StoreStats> ComputeStats() const;

  // Number of internal ids handed out so far (ids are 0 .. n-1; forgotten ones leave holes).
  uint32_t customer_id_limit() const;
  uint32_t product_id_limit() const;

  // Whether the store was opened read-only.
  bool read_only() const;

  // Flushes memtables to SST files (used by tools before they exit; not needed for durability).
  Status Flush();

 private:
  class Impl;
  // Moves a pending letter to `status` at `at` (MarkLetterSent, MarkLetterRejected), or deletes
  // it for std::nullopt (DropLetter).
  Status MarkLetter(CustomerId customer, std::string_view campaign,
                    std::optional<LetterStatus> status, UnixSeconds at);
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace affinity
