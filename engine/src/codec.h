// Key and value encodings of the store. docs/storage.md describes the same layout for readers
// of the database; change both together and bump kSchemaVersion on any incompatible change.
//
// All integers in keys are big-endian so that RocksDB's bytewise order is numeric order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "affinity/status.h"
#include "affinity/store.h"
#include "affinity/types.h"

namespace affinity::codec {

inline constexpr int kSchemaVersion = 1;

// Column family names.
inline constexpr char kCfCustomers[] = "customers";
inline constexpr char kCfProducts[] = "products";
inline constexpr char kCfEvents[] = "events";
inline constexpr char kCfIds[] = "ids";
inline constexpr char kCfNotifications[] = "notifications";
inline constexpr char kCfMeta[] = "meta";

// meta keys.
inline constexpr char kMetaSchemaVersion[] = "schema_version";     // decimal text
inline constexpr char kMetaNextCustomerId[] = "next_customer_id";  // u32 big-endian
inline constexpr char kMetaNextProductId[] = "next_product_id";    // u32 big-endian
inline constexpr char kMetaCampaignSecret[] = "campaign_secret";   // 32 random bytes
// + u32 BE internal id -> empty: a forgotten customer whose records may still be in the store's
// files (deleted, not yet compacted away).
inline constexpr char kMetaErasurePrefix[] = "erasure/";
// + HMAC-SHA256(campaign_secret, "forgotten-customer:" + external id), 32 bytes -> empty: an
// external customer id forgotten and not to be stored again (docs/storage.md).
inline constexpr char kMetaForgottenPrefix[] = "forgotten/";
inline constexpr char kMetaCampaignPrefix[] = "campaign/";  // + id -> campaign JSON

// ids key prefixes.
inline constexpr char kIdsCustomerByExternal = 'c';  // 'c' + external id  -> u32 BE internal id
inline constexpr char kIdsCustomerByInternal = 'C';  // 'C' + u32 BE       -> external id
inline constexpr char kIdsProductByExternal = 'p';   // 'p' + external id  -> u32 BE internal id
inline constexpr char kIdsProductByInternal = 'P';   // 'P' + u32 BE       -> external id
inline constexpr char kIdsEvent = 'e';               // 'e' + event id     -> events key (20 bytes)

// Event key: u32 BE customer | u64 BE (time XOR 2^63) | u64 BE FNV-1a-64(event_id).
inline constexpr size_t kEventKeySize = 20;

void PutU32BE(std::string* out, uint32_t v);
void PutU64BE(std::string* out, uint64_t v);
uint32_t GetU32BE(const char* p);
uint64_t GetU64BE(const char* p);

// 64-bit FNV-1a: stable across platforms and releases (unlike std::hash).
uint64_t Fnv1a64(std::string_view data);

std::string U32Key(uint32_t id);
// Decodes a 4-byte big-endian value; Corruption if the size is wrong.
Result<uint32_t> DecodeU32(std::string_view value);

std::string IdsKey(char prefix, std::string_view external_id);
std::string IdsKey(char prefix, uint32_t internal_id);

std::string EventKey(CustomerId customer, UnixSeconds time, std::string_view event_id);
// Prefix of all of one customer's event keys.
std::string EventPrefix(CustomerId customer);

// Event value, format version 1:
//   u8 version (=1) | u8 event type | u32 LE product id | f64 LE quantity | f64 LE unit price |
//   varint32 len + channel bytes | varint32 len + event id bytes
std::string EncodeEventValue(const Event& event);
// Decodes key + value into `out`. Corruption on short or unknown-version input.
Status DecodeEvent(std::string_view key, std::string_view value, Event* out);

// Profiles and attributes: JSON objects with "v": 1 and only the fields that are set.
std::string EncodeCustomer(const CustomerProfile& profile);
Result<CustomerProfile> DecodeCustomer(std::string_view value);
std::string EncodeProduct(const ProductAttributes& attrs);
Result<ProductAttributes> DecodeProduct(std::string_view value);

// Ledger key: u32 BE customer id | campaign id bytes.
std::string LetterKey(CustomerId customer, std::string_view campaign);
// Ledger value: JSON {"v": 1, "status": "pending"|"sent", "planned_at", "sent_at",
// "products": [{"product": internal id, "probability", "reason_kind", "reason"}]}.
std::string EncodeLetter(const LedgerLetter& letter);
// Decodes key + value. Corruption on a short key or a bad value.
Result<LedgerLetter> DecodeLetter(std::string_view key, std::string_view value);
// Campaign record (meta "campaign/" + id): JSON {"v": 1, "created_at", "details": {...}}.
std::string EncodeCampaign(const CampaignRecord& campaign);
Result<CampaignRecord> DecodeCampaign(std::string_view id, std::string_view value);

// Field-wise merge used by upserts: set fields of `update` win, created_at keeps the earlier.
void MergeInto(CustomerProfile* stored, const CustomerProfile& update);
void MergeInto(ProductAttributes* stored, const ProductAttributes& update);

}  // namespace affinity::codec
