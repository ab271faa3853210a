// RFM scoring: quintile scores 1..5 of a per-customer metric.
#pragma once

#include <span>
#include <vector>

namespace affinity {

// Score of each value in 1..5 by its rank among `values`: score = 1 + floor(5 · k / n), where k
// is the number of values strictly worse than it (so equal values share a score, the lower one
// of the ranks they span). With higher_is_better, larger values score higher (frequency,
// monetary); otherwise smaller values do (recency in days since the last purchase).
std::vector<int> QuintileScores(std::span<const double> values, bool higher_is_better);

}  // namespace affinity
