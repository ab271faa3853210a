// Request metrics in Prometheus text format: counts by route and status, and latency histograms
// by route. Lock-free on the request path (atomics only).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace affinity::server {

class RouteMetrics {
 public:
  // Upper bounds of the latency buckets, seconds (+Inf is implicit).
  static constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1.0,  2.5};
  explicit RouteMetrics(std::string name) : name_(std::move(name)) {}

  // Records one request that answered `status` after `seconds`.
  void Record(int status, double seconds);
  // Appends this route's samples to `out`.
  void Render(std::string* out) const;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::array<std::atomic<int64_t>, 600> by_status_{};                // index: HTTP status
  std::array<std::atomic<int64_t>, kBuckets.size() + 1> buckets_{};  // non-cumulative
  std::atomic<int64_t> count_{0};
  std::atomic<int64_t> sum_micros_{0};
};

// Appends the HELP/TYPE header lines of the request families.
void RenderRequestHeaders(std::string* out);

}  // namespace affinity::server
