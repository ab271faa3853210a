#include "metrics.h"

#include <cstdio>

namespace affinity::server {

void RouteMetrics::Record(int status, double seconds) {
  if (status >= 0 && status < static_cast<int>(by_status_.size())) {
    by_status_[static_cast<size_t>(status)].fetch_add(1, std::memory_order_relaxed);
  }
  size_t bucket = 0;
  while (bucket < kBuckets.size() && seconds > kBuckets[bucket]) ++bucket;
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<int64_t>(seconds * 1e6), std::memory_order_relaxed);
}

void RenderRequestHeaders(std::string* out) {
  *out +=
      "# HELP affinity_http_requests_total HTTP requests answered, by route and status.\n"
      "# TYPE affinity_http_requests_total counter\n"
      "# HELP affinity_http_request_duration_seconds Time from routing to the response, by "
      "route.\n"
      "# TYPE affinity_http_request_duration_seconds histogram\n";
}

void RouteMetrics::Render(std::string* out) const {
  char line[256];
  for (size_t status = 0; status < by_status_.size(); ++status) {
    const int64_t n = by_status_[status].load(std::memory_order_relaxed);
    if (n == 0) continue;
    std::snprintf(line, sizeof line,
                  "affinity_http_requests_total{route=\"%s\",status=\"%zu\"} %lld\n", name_.c_str(),
                  status, static_cast<long long>(n));
    *out += line;
  }
  int64_t cumulative = 0;
  for (size_t b = 0; b <= kBuckets.size(); ++b) {
    cumulative += buckets_[b].load(std::memory_order_relaxed);
    if (b < kBuckets.size()) {
      std::snprintf(line, sizeof line,
                    "affinity_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %lld\n",
                    name_.c_str(), kBuckets[b], static_cast<long long>(cumulative));
    } else {
      std::snprintf(
          line, sizeof line,
          "affinity_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %lld\n",
          name_.c_str(), static_cast<long long>(cumulative));
    }
    *out += line;
  }
  std::snprintf(line, sizeof line,
                "affinity_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                "affinity_http_request_duration_seconds_count{route=\"%s\"} %lld\n",
                name_.c_str(), static_cast<double>(sum_micros_.load()) / 1e6, name_.c_str(),
                static_cast<long long>(count_.load()));
  *out += line;
}

}  // namespace affinity::server
