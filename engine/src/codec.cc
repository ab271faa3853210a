#include "codec.h"

#include <bit>
#include <cstring>
#include <nlohmann/json.hpp>

namespace affinity::codec {
namespace {

static_assert(std::endian::native == std::endian::little,
              "value encodings assume a little-endian host; add byte swaps for big-endian");

void PutVarint32(std::string* out, uint32_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool GetVarint32(std::string_view* in, uint32_t* v) {
  uint32_t result = 0;
  for (int shift = 0; shift <= 28 && !in->empty(); shift += 7) {
    auto byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    result |= static_cast<uint32_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

template <typename T>
void PutFixedLE(std::string* out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out->append(buf, sizeof(T));
}

template <typename T>
bool GetFixedLE(std::string_view* in, T* v) {
  if (in->size() < sizeof(T)) return false;
  std::memcpy(v, in->data(), sizeof(T));
  in->remove_prefix(sizeof(T));
  return true;
}

bool GetLengthPrefixed(std::string_view* in, std::string* out) {
  uint32_t len = 0;
  if (!GetVarint32(in, &len) || in->size() < len) return false;
  out->assign(in->data(), len);
  in->remove_prefix(len);
  return true;
}

template <typename T>
void SetIf(nlohmann::json& j, const char* name, const std::optional<T>& v) {
  if (v) j[name] = *v;
}

template <typename T>
void GetIf(const nlohmann::json& j, const char* name, std::optional<T>* v) {
  auto it = j.find(name);
  if (it != j.end() && !it->is_null()) *v = it->get<T>();
}

Result<nlohmann::json> ParseVersioned(std::string_view value, const char* what) {
  auto j = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Corruption(std::string(what) + " record is not a JSON object");
  }
  auto v = j.find("v");
  if (v == j.end() || !v->is_number_integer() || *v != 1) {
    return Status::Corruption(std::string(what) + " record has an unknown format version");
  }
  return j;
}

// Invalid UTF-8 in a field (e.g. a Latin-1 import file) becomes U+FFFD instead of throwing.
std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

template <typename T>
void MergeField(std::optional<T>* stored, const std::optional<T>& update) {
  if (update) *stored = update;
}

void MergeCreatedAt(std::optional<UnixSeconds>* stored, const std::optional<UnixSeconds>& update) {
  if (update && (!*stored || *update < **stored)) *stored = update;
}

}  // namespace

void PutU32BE(std::string* out, uint32_t v) {
  char buf[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                 static_cast<char>(v)};
  out->append(buf, 4);
}

void PutU64BE(std::string* out, uint64_t v) {
  PutU32BE(out, static_cast<uint32_t>(v >> 32));
  PutU32BE(out, static_cast<uint32_t>(v));
}

uint32_t GetU32BE(const char* p) {
  auto b = reinterpret_cast<const uint8_t*>(p);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
}

uint64_t GetU64BE(const char* p) { return (uint64_t{GetU32BE(p)} << 32) | GetU32BE(p + 4); }

uint64_t Fnv1a64(std::string_view data) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string U32Key(uint32_t id) {
  std::string k;
  PutU32BE(&k, id);
  return k;
}

Result<uint32_t> DecodeU32(std::string_view value) {
  if (value.size() != 4) return Status::Corruption("expected a 4-byte id");
  return GetU32BE(value.data());
}

std::string IdsKey(char prefix, std::string_view external_id) {
  std::string k(1, prefix);
  k.append(external_id);
  return k;
}

std::string IdsKey(char prefix, uint32_t internal_id) {
  std::string k(1, prefix);
  PutU32BE(&k, internal_id);
  return k;
}

std::string EventKey(CustomerId customer, UnixSeconds time, std::string_view event_id) {
  std::string k;
  k.reserve(kEventKeySize);
  PutU32BE(&k, customer.value);
  PutU64BE(&k, static_cast<uint64_t>(time) ^ (uint64_t{1} << 63));
  PutU64BE(&k, Fnv1a64(event_id));
  return k;
}

std::string EventPrefix(CustomerId customer) { return U32Key(customer.value); }

std::string EncodeEventValue(const Event& event) {
  std::string v;
  v.reserve(24 + event.channel.size() + event.event_id.size());
  v.push_back(1);
  v.push_back(static_cast<char>(event.type));
  PutFixedLE<uint32_t>(&v, event.product.value);
  PutFixedLE<double>(&v, event.quantity);
  PutFixedLE<double>(&v, event.unit_price);
  PutVarint32(&v, static_cast<uint32_t>(event.channel.size()));
  v.append(event.channel);
  PutVarint32(&v, static_cast<uint32_t>(event.event_id.size()));
  v.append(event.event_id);
  return v;
}

Status DecodeEvent(std::string_view key, std::string_view value, Event* out) {
  if (key.size() != kEventKeySize) return Status::Corruption("event key has the wrong size");
  out->customer = CustomerId{GetU32BE(key.data())};
  out->time = static_cast<UnixSeconds>(GetU64BE(key.data() + 4) ^ (uint64_t{1} << 63));
  if (value.size() < 2 || value[0] != 1) {
    return Status::Corruption("event value has an unknown format version");
  }
  auto type = static_cast<uint8_t>(value[1]);
  if (type < 1 || type > 4) return Status::Corruption("event value has an unknown event type");
  out->type = static_cast<EventType>(type);
  value.remove_prefix(2);
  uint32_t product = 0;
  if (!GetFixedLE(&value, &product) || !GetFixedLE(&value, &out->quantity) ||
      !GetFixedLE(&value, &out->unit_price) || !GetLengthPrefixed(&value, &out->channel) ||
      !GetLengthPrefixed(&value, &out->event_id) || !value.empty()) {
    return Status::Corruption("event value is truncated or has trailing bytes");
  }
  out->product = ProductId{product};
  return Status::Ok();
}

std::string EncodeCustomer(const CustomerProfile& p) {
  nlohmann::json j = {{"v", 1}};
  SetIf(j, "email", p.email);
  SetIf(j, "name", p.name);
  SetIf(j, "country", p.country);
  SetIf(j, "opted_out", p.opted_out);
  SetIf(j, "interests", p.interests);
  SetIf(j, "created_at", p.created_at);
  return Dump(j);
}

Result<CustomerProfile> DecodeCustomer(std::string_view value) {
  AFFINITY_ASSIGN_OR_RETURN(nlohmann::json j, ParseVersioned(value, "customer"));
  CustomerProfile p;
  try {
    GetIf(j, "email", &p.email);
    GetIf(j, "name", &p.name);
    GetIf(j, "country", &p.country);
    GetIf(j, "opted_out", &p.opted_out);
    GetIf(j, "interests", &p.interests);
    GetIf(j, "created_at", &p.created_at);
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption(std::string("customer record has a field of the wrong type: ") +
                              e.what());
  }
  return p;
}

std::string EncodeProduct(const ProductAttributes& a) {
  nlohmann::json j = {{"v", 1}};
  SetIf(j, "title", a.title);
  SetIf(j, "description", a.description);
  SetIf(j, "category", a.category);
  SetIf(j, "brand", a.brand);
  SetIf(j, "price", a.price);
  SetIf(j, "tags", a.tags);
  SetIf(j, "created_at", a.created_at);
  SetIf(j, "available", a.available);
  return Dump(j);
}

Result<ProductAttributes> DecodeProduct(std::string_view value) {
  AFFINITY_ASSIGN_OR_RETURN(nlohmann::json j, ParseVersioned(value, "product"));
  ProductAttributes a;
  try {
    GetIf(j, "title", &a.title);
    GetIf(j, "description", &a.description);
    GetIf(j, "category", &a.category);
    GetIf(j, "brand", &a.brand);
    GetIf(j, "price", &a.price);
    GetIf(j, "tags", &a.tags);
    GetIf(j, "created_at", &a.created_at);
    GetIf(j, "available", &a.available);
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption(std::string("product record has a field of the wrong type: ") +
                              e.what());
  }
  return a;
}

std::string LetterKey(CustomerId customer, std::string_view campaign) {
  std::string key = U32Key(customer.value);
  key.append(campaign);
  return key;
}

std::string EncodeLetter(const LedgerLetter& letter) {
  nlohmann::json products = nlohmann::json::array();
  for (const LetterProduct& p : letter.products) {
    products.push_back({{"product", p.product.value},
                        {"probability", p.probability},
                        {"reason_kind", p.reason_kind},
                        {"reason", p.reason}});
  }
  return Dump({{"v", 1},
               {"status", letter.status == LetterStatus::kSent       ? "sent"
                          : letter.status == LetterStatus::kRejected ? "rejected"
                                                                     : "pending"},
               {"planned_at", letter.planned_at},
               {"sent_at", letter.sent_at},
               {"products", std::move(products)}});
}

Result<LedgerLetter> DecodeLetter(std::string_view key, std::string_view value) {
  if (key.size() <= 4) return Status::Corruption("ledger key is too short");
  AFFINITY_ASSIGN_OR_RETURN(nlohmann::json j, ParseVersioned(value, "ledger"));
  LedgerLetter letter;
  letter.customer = CustomerId{GetU32BE(key.data())};
  letter.campaign = std::string(key.substr(4));
  try {
    const std::string status = j.at("status").get<std::string>();
    if (status == "pending") {
      letter.status = LetterStatus::kPending;
    } else if (status == "sent") {
      letter.status = LetterStatus::kSent;
    } else if (status == "rejected") {
      letter.status = LetterStatus::kRejected;
    } else {
      return Status::Corruption("ledger record has an unknown status '" + status + "'");
    }
    letter.planned_at = j.at("planned_at").get<UnixSeconds>();
    letter.sent_at = j.at("sent_at").get<UnixSeconds>();
    for (const auto& p : j.at("products")) {
      letter.products.push_back(
          {ProductId{p.at("product").get<uint32_t>()}, p.at("probability").get<double>(),
           p.at("reason_kind").get<std::string>(), p.at("reason").get<std::string>()});
    }
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption(std::string("ledger record is malformed: ") + e.what());
  }
  return letter;
}

std::string EncodeCampaign(const CampaignRecord& c) {
  return Dump({{"v", 1},
               {"created_at", c.created_at},
               {"details", c.details.is_null() ? nlohmann::json::object() : c.details}});
}

Result<CampaignRecord> DecodeCampaign(std::string_view id, std::string_view value) {
  AFFINITY_ASSIGN_OR_RETURN(nlohmann::json j, ParseVersioned(value, "campaign"));
  CampaignRecord c;
  c.id = std::string(id);
  try {
    c.created_at = j.at("created_at").get<UnixSeconds>();
    c.details = j.at("details");
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption(std::string("campaign record is malformed: ") + e.what());
  }
  if (!c.details.is_object()) return Status::Corruption("campaign details are not an object");
  return c;
}

void MergeInto(CustomerProfile* stored, const CustomerProfile& u) {
  MergeField(&stored->email, u.email);
  MergeField(&stored->name, u.name);
  MergeField(&stored->country, u.country);
  MergeField(&stored->opted_out, u.opted_out);
  MergeField(&stored->interests, u.interests);
  MergeCreatedAt(&stored->created_at, u.created_at);
}

void MergeInto(ProductAttributes* stored, const ProductAttributes& u) {
  MergeField(&stored->title, u.title);
  MergeField(&stored->description, u.description);
  MergeField(&stored->category, u.category);
  MergeField(&stored->brand, u.brand);
  MergeField(&stored->price, u.price);
  MergeField(&stored->tags, u.tags);
  MergeCreatedAt(&stored->created_at, u.created_at);
  MergeField(&stored->available, u.available);
}

}  // namespace affinity::codec
