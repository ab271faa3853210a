#include "affinity/interactions.h"

#include <cmath>
#include <map>

namespace affinity {

Result<CsrMatrix> ReadPurchaseMatrix(const Store& store, const InteractionOptions& options) {
  if (options.half_life_days && !(*options.half_life_days > 0)) {
    return Status::InvalidArgument("half_life_days must be > 0", "half_life_days");
  }
  std::optional<UnixSeconds> reference =
      options.reference_time ? options.reference_time : options.to;
  if (options.half_life_days && !reference) {
    AFFINITY_ASSIGN_OR_RETURN(StoreStats stats, store.ComputeStats());
    reference = stats.last_event.value_or(0);
  }
  // Read the limits first: ids allocated by concurrent writers after this point are skipped.
  const int64_t rows = store.customer_id_limit();
  const int64_t cols = store.product_id_limit();
  CsrBuilder builder(cols);
  Status add_status;
  AFFINITY_RETURN_IF_ERROR(store.ScanEvents([&](const Event& e) {
    if (options.from && e.time < *options.from) return true;
    if (options.to && e.time >= *options.to) return true;
    if (e.customer.value >= rows || e.product.value >= cols) return true;
    float sign = 0;
    if (e.type == EventType::kPurchase) sign = 1;
    if (e.type == EventType::kReturn && options.subtract_returns) sign = -1;
    if (sign == 0) return true;
    double weight = e.quantity;
    if (options.half_life_days) {
      const double age_days = static_cast<double>(*reference - e.time) / 86400.0;
      weight *= std::exp2(-age_days / *options.half_life_days);
    }
    add_status = builder.Add(e.customer.value, static_cast<int32_t>(e.product.value),
                             sign * static_cast<float>(weight));
    return add_status.ok();
  }));
  AFFINITY_RETURN_IF_ERROR(add_status);
  return builder.Finish(rows);
}

Result<std::vector<std::pair<ProductId, float>>> NetPurchases(std::span<const Event> history,
                                                              const InteractionOptions& options) {
  if (options.half_life_days && !(*options.half_life_days > 0)) {
    return Status::InvalidArgument("half_life_days must be > 0", "half_life_days");
  }
  std::optional<UnixSeconds> reference =
      options.reference_time ? options.reference_time : options.to;
  if (!reference) {
    reference = 0;
    for (const Event& e : history) reference = std::max(*reference, e.time);
  }
  std::map<uint32_t, float> net;  // summed in float, as CsrBuilder sums what training sees
  for (const Event& e : history) {
    if (options.from && e.time < *options.from) continue;
    if (options.to && e.time >= *options.to) continue;
    double sign = 0;
    if (e.type == EventType::kPurchase) sign = 1;
    if (e.type == EventType::kReturn && options.subtract_returns) sign = -1;
    if (sign == 0) continue;
    double weight = e.quantity;
    if (options.half_life_days) {
      const double age_days = static_cast<double>(*reference - e.time) / 86400.0;
      weight *= std::exp2(-age_days / *options.half_life_days);
    }
    net[e.product.value] += static_cast<float>(sign * weight);
  }
  std::vector<std::pair<ProductId, float>> out;
  for (const auto& [product, r] : net) {
    if (r > 0) out.emplace_back(ProductId{product}, r);
  }
  return out;
}

}  // namespace affinity
