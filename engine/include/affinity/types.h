// Core value types shared by the store, the importers and (later) the models and the server.
//
// Ids: customers and products have an external string id (what the shop uses) and a dense
// internal id (0, 1, 2, ... in order of first sight) that is stable across restarts and retrains.
// Typed wrappers keep customer and product ids from being mixed up.
//
// Time: Unix seconds (UTC), int64.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "affinity/status.h"

namespace affinity {

using UnixSeconds = int64_t;

struct CustomerId {
  uint32_t value = 0;
  auto operator<=>(const CustomerId&) const = default;
};

struct ProductId {
  uint32_t value = 0;
  auto operator<=>(const ProductId&) const = default;
};

enum class EventType : uint8_t {
  kPurchase = 1,  // the customer bought `quantity` units
  kReturn = 2,    // the customer returned or cancelled `quantity` units (quantity stays positive)
  kView = 3,      // a product page view
  kCart = 4,      // an add-to-cart
};

// "purchase", "return", "view", "cart".
std::string_view EventTypeName(EventType type);
// Parses a name as written by EventTypeName. InvalidArgument (field "type") for anything else.
Result<EventType> ParseEventType(std::string_view name);

// An event as the caller supplies it: external ids, not yet resolved.
struct EventInput {
  std::string customer;  // external customer id; required, non-empty
  std::string product;   // external product id; required, non-empty
  EventType type = EventType::kPurchase;
  UnixSeconds time = 0;
  double quantity = 1.0;    // > 0
  double unit_price = 0.0;  // >= 0, in the shop's currency
  std::string channel;      // "web", "app", "store", ...; may be empty
  std::string event_id;     // required: client-supplied or derived (invoice + line); dedup key
};

// Checks an event before it is stored: non-empty ids and event_id, finite quantity > 0, finite
// unit_price >= 0, a known type. InvalidArgument whose field names the event and the member
// ("events[3].quantity" for index 3).
Status ValidateEventInput(const EventInput& event, size_t index);

// An event as stored, with internal ids resolved.
struct Event {
  CustomerId customer;
  ProductId product;
  EventType type = EventType::kPurchase;
  UnixSeconds time = 0;
  double quantity = 1.0;
  double unit_price = 0.0;
  std::string channel;
  std::string event_id;
};

// Customer profile. Every field is optional so that an upsert can set some fields and leave the
// rest as stored (see Store::UpsertCustomers). Personal fields: email, name.
struct CustomerProfile {
  std::optional<std::string> email;
  std::optional<std::string> name;
  std::optional<std::string> country;
  std::optional<bool> opted_out;                      // true: never contact
  std::optional<std::vector<std::string>> interests;  // stated interest topics (category paths)
  std::optional<UnixSeconds> created_at;              // an upsert never moves it later
};

// Text checks shared by the import, the HTTP API and the CLI.
// True if `s` is well-formed UTF-8 (no overlong forms, surrogates or code points > U+10FFFF).
bool IsValidUtf8(std::string_view s);
// True if `s` holds an ASCII control character (below 0x20, or 0x7F).
bool HasControlChars(std::string_view s);
// External ids (customers, products, events): 1-256 bytes of UTF-8 without control characters.
inline constexpr size_t kMaxExternalIdBytes = 256;
// Why `id` cannot be an external id: "" if it can, else "is empty", "is longer than 256 bytes",
// "contains control characters" or "is not valid UTF-8".
std::string ExternalIdProblem(std::string_view id);

// Product attributes; same optional/upsert semantics as CustomerProfile.
inline constexpr size_t kMaxDescriptionBytes = 8192;
// `text` with its line breaks and tabs as spaces: what the checks for control characters see of
// a description, which may run over lines.
std::string LineBreaksAsSpaces(std::string_view text);

struct ProductAttributes {
  std::optional<std::string> title;
  // Longer free text (at most kMaxDescriptionBytes; line breaks and tabs allowed); its first
  // words place a new product (cold start) beside its title's.
  std::optional<std::string> description;
  std::optional<std::vector<std::string>>
      category;  // path from the root: {"Home", "Kitchen", "Mugs"}
  std::optional<std::string> brand;
  std::optional<double> price;
  std::optional<std::vector<std::string>> tags;
  std::optional<UnixSeconds> created_at;  // an upsert never moves it later
  std::optional<bool> available;
};

// Joins a category path with '/' ("Home/Kitchen/Mugs").
std::string JoinCategory(const std::vector<std::string>& levels);
// Splits "Home/Kitchen/Mugs" into levels, trimming spaces and dropping empty levels.
std::vector<std::string> SplitCategory(std::string_view path);

}  // namespace affinity
