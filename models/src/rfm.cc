#include "affinity/models/rfm.h"

#include <algorithm>

namespace affinity {

std::vector<int> QuintileScores(std::span<const double> values, bool higher_is_better) {
  const size_t n = values.size();
  std::vector<double> sorted(values.begin(), values.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<int> scores(n);
  for (size_t i = 0; i < n; ++i) {
    // k = number of values strictly worse than values[i].
    size_t k = higher_is_better
                   ? std::lower_bound(sorted.begin(), sorted.end(), values[i]) - sorted.begin()
                   : sorted.end() - std::upper_bound(sorted.begin(), sorted.end(), values[i]);
    scores[i] = 1 + static_cast<int>(5 * k / n);
  }
  return scores;
}

}  // namespace affinity
