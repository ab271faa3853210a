#include "affinity/types.h"

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

}  // namespace affinity
