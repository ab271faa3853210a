#include "affinity/types.h"

#include <cmath>

namespace affinity {

std::string_view EventTypeName(EventType type) {
  switch (type) {
    case EventType::kPurchase:
      return "purchase";
    case EventType::kReturn:
      return "return";
    case EventType::kView:
      return "view";
    case EventType::kCart:
      return "cart";
  }
  return "unknown";
}

Result<EventType> ParseEventType(std::string_view name) {
  for (EventType t :
       {EventType::kPurchase, EventType::kReturn, EventType::kView, EventType::kCart}) {
    if (name == EventTypeName(t)) return t;
  }
  return Status::InvalidArgument(
      "unknown event type '" + std::string(name) + "' (expected purchase, return, view or cart)",
      "type");
}

// True if `s` is well-formed UTF-8 (no overlong forms, surrogates or code points > U+10FFFF).
bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (size_t k = 1; k < n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc >> 6) != 0x2) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n;
  }
  return true;
}

bool HasControlChars(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

std::string ExternalIdProblem(std::string_view id) {
  if (id.empty()) return "is empty";
  if (id.size() > kMaxExternalIdBytes) return "is longer than 256 bytes";
  if (HasControlChars(id)) return "contains control characters";
  if (!IsValidUtf8(id)) return "is not valid UTF-8";
  return "";
}

std::string LineBreaksAsSpaces(std::string_view text) {
  std::string out(text);
  for (char& ch : out) {
    if (ch == '\n' || ch == '\r' || ch == '\t') ch = ' ';
  }
  return out;
}

std::string JoinCategory(const std::vector<std::string>& levels) {
  std::string out;
  for (const auto& level : levels) {
    if (!out.empty()) out += '/';
    out += level;
  }
  return out;
}

std::vector<std::string> SplitCategory(std::string_view path) {
  std::vector<std::string> levels;
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view level = path.substr(0, slash);
    while (!level.empty() && level.front() == ' ') level.remove_prefix(1);
    while (!level.empty() && level.back() == ' ') level.remove_suffix(1);
    if (!level.empty()) levels.emplace_back(level);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return levels;
}

Status ValidateEventInput(const EventInput& e, size_t index) {
  auto field = [index](const char* name) {
    return "events[" + std::to_string(index) + "]." + name;
  };
  if (e.customer.empty()) return Status::InvalidArgument("customer id is empty", field("customer"));
  if (e.product.empty()) return Status::InvalidArgument("product id is empty", field("product"));
  if (e.event_id.empty()) return Status::InvalidArgument("event id is empty", field("event_id"));
  if (!std::isfinite(e.quantity) || e.quantity <= 0) {
    return Status::InvalidArgument("quantity must be a finite number > 0", field("quantity"));
  }
  if (!std::isfinite(e.unit_price) || e.unit_price < 0) {
    return Status::InvalidArgument("unit price must be a finite number >= 0", field("unit_price"));
  }
  // ±2^40 s (±35,000 years): far beyond any real time, and no overflow in time differences.
  constexpr int64_t kTimeLimit = int64_t{1} << 40;
  if (e.time < -kTimeLimit || e.time > kTimeLimit) {
    return Status::InvalidArgument("time is out of range", field("time"));
  }
  auto type = static_cast<uint8_t>(e.type);
  if (type < 1 || type > 4) return Status::InvalidArgument("unknown event type", field("type"));
  return Status::Ok();
}

}  // namespace affinity
