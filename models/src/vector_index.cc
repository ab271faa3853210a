#include "affinity/models/vector_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/utils/Heap.h>
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <functional>
#include <limits>
#include <random>
#include <string_view>
#include <unordered_set>

namespace affinity {

struct VectorIndex::Faiss {
  std::unique_ptr<faiss::Index> index;  // HNSW's graph (IVF keeps its cells in VectorIndex)
};

namespace {

using FaissIdx = faiss::Index::idx_t;

// a·b over d floats. Debian builds Faiss for the x86-64 baseline, where its distance kernels are
// scalar loops; this one is cloned for Haswell (AVX2 + FMA) and picked at load time, and is what
// every query spends its time in.
__attribute__((target_clones("arch=haswell", "default"))) float Dot(const float* a, const float* b,
                                                                    int d) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < d; ++i) s += a[i] * b[i];
  return s;
}

// Rows of a scan: floats (any stride) or 8-bit codes (consecutive). Each kind adds how to load 8
// values as floats (Load8) and one (At).
template <typename E>
struct RowsOf {
  using Element = E;
  const E* base;
  size_t stride;
  const E* Row(size_t i) const { return base + i * stride; }
};
struct FloatRows : RowsOf<float> {
  __attribute__((target("avx2,fma,f16c"), always_inline)) static __m256 Load8(const float* p) {
    return _mm256_loadu_ps(p);
  }
  static float At(const float* p, int j) { return p[j]; }
};
// 8-bit codes (d per row): a scan of them reads a quarter of the float bytes.
struct ByteRows : RowsOf<uint8_t> {
  __attribute__((target("avx2,fma,f16c"), always_inline)) static __m256 Load8(const uint8_t* p) {
    return _mm256_cvtepi32_ps(
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static float At(const uint8_t* p, int j) { return static_cast<float>(p[j]); }
};
// out[i] = q·row_i for n rows of d values. Four rows at a time with AVX2 FMA (one query load
// feeds four accumulators; one horizontal reduction for the four), so a scan of an IVF cell or
// of the exact index runs at memory speed rather than at the cost of one call and one reduction
// per row.
template <typename Rows>
__attribute__((target("avx2,fma,f16c"))) void DotRowsAvx2(const float* q, Rows rows, size_t n,
                                                          int d, float* out) {
  using E = typename Rows::Element;
  const int d8 = d & ~7;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const E* r0 = rows.Row(i);
    const E* r1 = rows.Row(i + 1);
    const E* r2 = rows.Row(i + 2);
    const E* r3 = rows.Row(i + 3);
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
           a3 = _mm256_setzero_ps();
    for (int j = 0; j < d8; j += 8) {
      const __m256 qv = _mm256_loadu_ps(q + j);
      a0 = _mm256_fmadd_ps(qv, Rows::Load8(r0 + j), a0);
      a1 = _mm256_fmadd_ps(qv, Rows::Load8(r1 + j), a1);
      a2 = _mm256_fmadd_ps(qv, Rows::Load8(r2 + j), a2);
      a3 = _mm256_fmadd_ps(qv, Rows::Load8(r3 + j), a3);
    }
    // [a0 a1 a2 a3] → their four sums: pairwise adds within lanes, then the two 128-bit halves.
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    __m128 sums = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    if (d8 < d) {
      alignas(16) std::array<float, 4> tail{};
      for (int j = d8; j < d; ++j) {
        tail[0] += q[j] * Rows::At(r0, j);
        tail[1] += q[j] * Rows::At(r1, j);
        tail[2] += q[j] * Rows::At(r2, j);
        tail[3] += q[j] * Rows::At(r3, j);
      }
      sums = _mm_add_ps(sums, _mm_load_ps(tail.data()));
    }
    _mm_storeu_ps(out + i, sums);
  }
  for (; i < n; ++i) {
    float sum = 0;
    for (int j = 0; j < d; ++j) sum += q[j] * Rows::At(rows.Row(i), j);
    out[i] = sum;
  }
}

// The kernel above where the CPU has AVX2, FMA and F16C (checked once); else a plain loop.
template <typename Rows>
void DotRowsAny(const float* q, Rows rows, size_t n, int d, float* out) {
  static const bool simd = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                           __builtin_cpu_supports("f16c");
  if (simd) {
    DotRowsAvx2(q, rows, n, d, out);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    float sum = 0;
    for (int j = 0; j < d; ++j) sum += q[j] * Rows::At(rows.Row(i), j);
    out[i] = sum;
  }
}

// out[i] = q·row_i for n rows of d floats, row i at base + i·stride.
void DotRows(const float* q, const float* base, size_t n, size_t stride, int d, float* out) {
  DotRowsAny(q, FloatRows{{base, stride}}, n, d, out);
}

// Rows of m as 8-bit codes per dimension over m's range, row-major: m_ij ≈ min_j + step_j · code
// (the scans rank rows by q · code, the q · min term being the same for every row). Code row r is
// m's row order[r], or row r when `order` is empty.
std::vector<uint8_t> Quantize(const Eigen::Ref<const RowMajorMatrixXf>& m,
                              std::span<const int64_t> order, Eigen::VectorXf* step) {
  const auto d = m.cols();
  std::vector<uint8_t> codes(static_cast<size_t>(m.size()));
  step->resize(d);
  if (m.rows() == 0) return codes;
  const Eigen::RowVectorXf lo = m.colwise().minCoeff();
  const Eigen::RowVectorXf hi = m.colwise().maxCoeff();
  for (Eigen::Index j = 0; j < d; ++j) {
    const float range = hi(j) - lo(j);
    (*step)(j) = range > 0 ? range / 255.0f : 1.0f;
  }
  for (Eigen::Index r = 0; r < m.rows(); ++r) {
    const Eigen::Index i = order.empty() ? r : order[static_cast<size_t>(r)];
    for (Eigen::Index j = 0; j < d; ++j) {
      const float code = std::round((m(i, j) - lo(j)) / (*step)(j));
      codes[static_cast<size_t>(r * d + j)] = static_cast<uint8_t>(std::clamp(code, 0.0f, 255.0f));
    }
  }
  return codes;
}

// Whether the AVX-512 kernels run: the CPU has AVX-512 F, BW, DQ and VNNI, and AFFINITY_NO_AVX512
// is unset (or 0) in the environment; with it set, the AVX2 kernels run instead (the tests run
// both on one machine, and a load run can compare them).
bool Avx512() {
  static const bool use = [] {
    const char* off = std::getenv("AFFINITY_NO_AVX512");
    if (off != nullptr && *off != '\0' && std::string_view(off) != "0") return false;
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
  }();
  return use;
}

// A query for scans of 8-bit codes: q scaled by the codes' steps (q_j · step_j), and, where the
// CPU has AVX-512 VNNI, the same quantized to signed bytes, q_j · step_j ≈ unit · byte_j, so that
// a row's score is one multiply-add of 64 byte pairs per instruction (VPDPBUSD: unsigned codes by
// signed query bytes, summed in 32-bit lanes; at most d · 255 · 127, no overflow below d = 66,000).
// The bytes' rounding moves a score by at most unit/2 · Σ code_j: the scan only picks candidates
// for the exact re-scoring, and recall is measured on the result (Build).
class ByteQuery {
 public:
  ByteQuery(const float* q, const Eigen::VectorXf& step) {
    const int d = static_cast<int>(step.size());
    scaled_ = Eigen::Map<const Eigen::VectorXf>(q, d).cwiseProduct(step);
    if (!Avx512()) return;
    const float top = scaled_.cwiseAbs().maxCoeff();
    unit_ = top > 0 ? top / 127.0f : 1.0f;
    // Padded with zeros to whole 64-byte blocks: the kernel reads the query without a mask.
    bytes_.assign((static_cast<size_t>(d) + 63) / 64 * 64, 0);
    for (int j = 0; j < d; ++j) {
      bytes_[static_cast<size_t>(j)] = static_cast<int8_t>(std::lround(scaled_(j) / unit_));
    }
  }

  // out[i] ≈ (q · step) · code_i for n consecutive rows of d codes at base.
  void Score(const uint8_t* base, size_t n, int d, float* out) const;

 private:
  Eigen::VectorXf scaled_;
  std::vector<int8_t> bytes_;  // empty without AVX-512
  float unit_ = 1;
};

// GCC 12's AVX-512 headers build the 256-bit extracts on _mm256_undefined_si256(), which its
// -Wmaybe-uninitialized then reports inside them (a known false positive); silenced for this
// block only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define AFFINITY_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) inline

// The two 256-bit halves of v, added.
AFFINITY_VNNI __m256i AddHalves(__m512i v) {
  return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

// Sums of the 16 lanes of each of a, b, c, d, as the four lanes of the result.
AFFINITY_VNNI __m128i Sum4(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(AddHalves(a), AddHalves(b)),
                                      _mm256_hadd_epi32(AddHalves(c), AddHalves(d)));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// Block b (64 codes) of a row of `blocks`; the last under `tail` (zeros past d, and nothing is
// read past the row).
AFFINITY_VNNI __m512i LoadBlock(const uint8_t* row, int b, int blocks, __mmask64 tail) {
  return b + 1 < blocks ? _mm512_loadu_si512(row + b * 64)
                        : _mm512_maskz_loadu_epi8(tail, row + b * 64);
}

// The VNNI scan: four rows at a time, 64 codes per instruction.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void ScoreBytesVnni(
    const int8_t* q, float unit, const uint8_t* base, size_t n, int d, float* out) {
  const int blocks = (d + 63) / 64;
  const __mmask64 tail = d % 64 == 0 ? ~__mmask64{0} : (__mmask64{1} << (d % 64)) - 1;
  const auto stride = static_cast<size_t>(d);
  const __m128 scale = _mm_set1_ps(unit);
  size_t i = 0;
  // Rows kPrefetch ahead are asked for while these are scored (a cell's first rows otherwise
  // wait on memory one after another: at load, the scan stalled on its loads).
  constexpr size_t kPrefetch = 16;
  const size_t lines = (stride + 63) / 64;
  for (; i + 4 <= n; i += 4) {
    const uint8_t* r = base + i * stride;
    if (i + kPrefetch < n) {
      const uint8_t* ahead = r + kPrefetch * stride;
      for (size_t l = 0; l < 4 * lines; ++l) _mm_prefetch(ahead + l * 64, _MM_HINT_T0);
    }
    __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512(), a2 = _mm512_setzero_si512(),
            a3 = _mm512_setzero_si512();
    for (int b = 0; b < blocks; ++b) {
      const __m512i qv = _mm512_loadu_si512(q + b * 64);
      a0 = _mm512_dpbusd_epi32(a0, LoadBlock(r, b, blocks, tail), qv);
      a1 = _mm512_dpbusd_epi32(a1, LoadBlock(r + stride, b, blocks, tail), qv);
      a2 = _mm512_dpbusd_epi32(a2, LoadBlock(r + 2 * stride, b, blocks, tail), qv);
      a3 = _mm512_dpbusd_epi32(a3, LoadBlock(r + 3 * stride, b, blocks, tail), qv);
    }
    _mm_storeu_ps(out + i, _mm_mul_ps(_mm_cvtepi32_ps(Sum4(a0, a1, a2, a3)), scale));
  }
  for (; i < n; ++i) {
    __m512i a = _mm512_setzero_si512();
    for (int b = 0; b < blocks; ++b) {
      a = _mm512_dpbusd_epi32(a, LoadBlock(base + i * stride, b, blocks, tail),
                              _mm512_loadu_si512(q + b * 64));
    }
    const __m512i zero = _mm512_setzero_si512();
    out[i] = static_cast<float>(_mm_cvtsi128_si32(Sum4(a, zero, zero, zero))) * unit;
  }
}
#pragma GCC diagnostic pop
#undef AFFINITY_VNNI

void ByteQuery::Score(const uint8_t* base, size_t n, int d, float* out) const {
  if (!bytes_.empty()) {
    ScoreBytesVnni(bytes_.data(), unit_, base, n, d, out);
  } else {
    DotRowsAny(scaled_.data(), ByteRows{{base, static_cast<size_t>(d)}}, n, d, out);
  }
}

// HNSW minimizes distances: the inner product enters negated (as Faiss's own IP search does).
class NegativeInnerProduct final : public faiss::DistanceComputer {
 public:
  NegativeInnerProduct(const float* base, int d) : base_(base), d_(d) {}
  void set_query(const float* x) override { query_ = x; }
  float operator()(idx_t i) override { return -Dot(query_, base_ + i * d_, d_); }
  float symmetric_dis(idx_t i, idx_t j) override {
    return -Dot(base_ + i * d_, base_ + j * d_, d_);
  }

 private:
  const float* base_;
  const float* query_ = nullptr;
  int d_;
};

// The best k of a stream of (score, position). Pushes append to a buffer of up to 2k; a full
// buffer is cut to its best k (nth_element), which raises the bar a push must clear. Amortized
// O(1) per push, and a push below the bar is one comparison (NaN scores are dropped). Each entry
// is one 64-bit key, the score's bits made order-preserving above the position's 32 bits, so a cut
// compares and moves plain integers (pairs of float and int64 cost twice the bytes and a two-step
// comparison, and the cuts were a sixth of a query's time at load). Ties at the bar keep the
// higher position, as the final order (score, then position, descending) does; -0 ranks below +0.
class Best {
 public:
  // Room for 2k keys and one block of 16 more (PushAll adds a block before it cuts).
  explicit Best(size_t k) : k_(std::max<size_t>(k, 1)), keys_(2 * k_ + kBlock) {}

  void Push(float score, int64_t pos) {
    if (!(score >= bar_)) return;  // below the bar, or NaN
    keys_[size_++] = Key(score, pos);
    if (size_ >= 2 * k_) Cut();
  }
  // Pushes positions first + i for the n scores in `scores`. Most of a scan's scores fall below
  // the bar: with AVX-512, 16 are compared with it at once and those above become keys and are
  // appended in the same few instructions (no branch per score); otherwise 4 at once (SSE2) and
  // the ones above pushed one by one.
  void PushAll(const float* scores, size_t n, int64_t first) {
    if (Avx512()) return PushAll16(scores, n, first);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
      unsigned above = static_cast<unsigned>(
          _mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(scores + i), _mm_set1_ps(bar_))));
      while (above != 0) {
        const auto lane = static_cast<size_t>(std::countr_zero(above));
        above &= above - 1;
        Push(scores[i + lane], first + static_cast<int64_t>(i + lane));  // re-checks the bar
      }
    }
    for (; i < n; ++i) Push(scores[i], first + static_cast<int64_t>(i));
  }
  // The best k pushed (at most k) as (score, position), best first.
  std::vector<std::pair<float, int64_t>> Take() {
    const auto end = keys_.begin() + static_cast<std::ptrdiff_t>(size_);
    std::sort(keys_.begin(), end, std::greater<>());
    std::vector<std::pair<float, int64_t>> out;
    out.reserve(std::min(size_, k_));
    for (size_t i = 0; i < std::min(size_, k_); ++i) {
      out.emplace_back(ScoreOf(keys_[i]), static_cast<int64_t>(keys_[i] & 0xffffffffu));
    }
    return out;
  }

 private:
  static constexpr size_t kBlock = 16;

  // Float bits → an unsigned order of the same direction: negatives flipped, positives offset.
  static uint64_t Key(float score, int64_t pos) {
    const auto bits = std::bit_cast<uint32_t>(score);
    const uint32_t ordered = bits & 0x80000000u ? ~bits : bits | 0x80000000u;
    return uint64_t{ordered} << 32 | static_cast<uint32_t>(pos);
  }
  static float ScoreOf(uint64_t key) {
    const auto ordered = static_cast<uint32_t>(key >> 32);
    return std::bit_cast<float>(ordered & 0x80000000u ? ordered & 0x7fffffffu : ~ordered);
  }

  // (GCC 12's AVX-512 header false positive, as at ScoreBytesVnni.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
  // PushAll with AVX-512, a block of 16 scores at a time: the lanes at or above the bar (an
  // ordered compare, so NaN fails) are turned into keys as Key does, compressed to the front of
  // a register and stored after the buffer's last key (whole registers, into the block of room
  // kept past 2k; a compress straight to memory is microcoded and slow on AMD Zen 4).
  __attribute__((target("avx512f,avx512dq"))) void PushAll16(const float* scores, size_t n,
                                                             int64_t first) {
    const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
    const __m512i lanes = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    for (size_t i = 0; i < n; i += kBlock) {
      const auto in = static_cast<__mmask16>(
          n - i >= kBlock ? 0xffffu : (1u << static_cast<unsigned>(n - i)) - 1);
      const __m512 s = _mm512_maskz_loadu_ps(in, scores + i);
      const __mmask16 above = _mm512_mask_cmp_ps_mask(in, s, _mm512_set1_ps(bar_), _CMP_GE_OQ);
      if (above == 0) continue;
      const __m512i bits = _mm512_castps_si512(s);
      const __mmask16 negative = _mm512_movepi32_mask(bits);
      const __m512i ordered =
          _mm512_mask_xor_epi32(_mm512_or_si512(bits, sign), negative, bits, _mm512_set1_epi32(-1));
      const __m512i pos =
          _mm512_add_epi64(lanes, _mm512_set1_epi64(first + static_cast<int64_t>(i)));
      const __m512i low = _mm512_or_si512(
          _mm512_slli_epi64(_mm512_cvtepu32_epi64(_mm512_castsi512_si256(ordered)), 32), pos);
      const __m512i high = _mm512_or_si512(
          _mm512_slli_epi64(_mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(ordered, 1)), 32),
          _mm512_add_epi64(pos, _mm512_set1_epi64(8)));
      const auto low_above = static_cast<__mmask8>(above & 0xff);
      const auto high_above = static_cast<__mmask8>(above >> 8);
      _mm512_storeu_si512(keys_.data() + size_, _mm512_maskz_compress_epi64(low_above, low));
      size_ += static_cast<size_t>(std::popcount(static_cast<unsigned>(low_above)));
      _mm512_storeu_si512(keys_.data() + size_, _mm512_maskz_compress_epi64(high_above, high));
      size_ += static_cast<size_t>(std::popcount(static_cast<unsigned>(high_above)));
      if (size_ >= 2 * k_) Cut();
    }
  }
#pragma GCC diagnostic pop

  void Cut() {
    const auto end = keys_.begin() + static_cast<std::ptrdiff_t>(size_);
    std::nth_element(keys_.begin(), keys_.begin() + static_cast<std::ptrdiff_t>(k_ - 1), end,
                     std::greater<>());
    size_ = k_;
    bar_ = ScoreOf(keys_[k_ - 1]);
  }

  size_t k_;
  float bar_ = -std::numeric_limits<float>::infinity();
  std::vector<uint64_t> keys_;  // the first size_ are the pushed keys
  size_t size_ = 0;
};

// The exact top k of `query` against `vectors` (Eigen GEMV + partial sort), for the recall check.
std::vector<int64_t> ExactTop(const RowMajorMatrixXf& vectors, const float* query, int64_t k) {
  const Eigen::Map<const Eigen::VectorXf> q(query, vectors.cols());
  const Eigen::VectorXf scores = vectors * q;
  std::vector<int64_t> order(static_cast<size_t>(scores.size()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  k = std::min<int64_t>(k, scores.size());
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int64_t a, int64_t b) { return scores(a) > scores(b); });
  order.resize(static_cast<size_t>(k));
  return order;
}

}  // namespace

std::string_view VectorIndexKindName(VectorIndexKind kind) {
  switch (kind) {
    case VectorIndexKind::kAuto:
      return "auto";
    case VectorIndexKind::kExact:
      return "exact";
    case VectorIndexKind::kHnsw:
      return "hnsw";
    case VectorIndexKind::kIvf:
      return "ivf";
  }
  return "?";
}

Result<VectorIndexKind> ParseVectorIndexKind(std::string_view name) {
  for (auto kind : {VectorIndexKind::kAuto, VectorIndexKind::kExact, VectorIndexKind::kHnsw,
                    VectorIndexKind::kIvf}) {
    if (name == VectorIndexKindName(kind)) return kind;
  }
  return Status::InvalidArgument("index kind must be auto, exact, hnsw or ivf", "kind");
}

Status VectorIndexOptions::Validate() const {
  auto bad = [](const char* field, const char* what) {
    return Status::InvalidArgument(std::string(field) + " " + what, field);
  };
  if (exact_limit < 0) return bad("exact_limit", "must be >= 0");
  if (approximate == VectorIndexKind::kAuto) return bad("approximate", "must name a kind");
  if (hnsw_m < 2) return bad("hnsw_m", "must be >= 2");
  if (hnsw_ef_construction < 1) return bad("hnsw_ef_construction", "must be >= 1");
  if (hnsw_ef_search < 1) return bad("hnsw_ef_search", "must be >= 1");
  if (ivf_nlist < 0) return bad("ivf_nlist", "must be >= 0");
  if (ivf_nprobe < 1) return bad("ivf_nprobe", "must be >= 1");
  if (!(ivf_scan_factor >= 0)) return bad("ivf_scan_factor", "must be >= 0");
  if (recall_queries < 0) return bad("recall_queries", "must be >= 0");
  return Status::Ok();
}

VectorIndex::~VectorIndex() = default;

Result<std::unique_ptr<VectorIndex>> VectorIndex::Build(const RowMajorMatrixXf& vectors,
                                                        const VectorIndexOptions& options,
                                                        const RowMajorMatrixXf* queries) {
  AFFINITY_RETURN_IF_ERROR(options.Validate());
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<VectorIndex> out(new VectorIndex());
  out->options_ = options;
  out->factors_ = static_cast<int>(vectors.cols());
  const int d = out->factors_;
  for (Eigen::Index r = 0; r < vectors.rows(); ++r) {
    if (vectors.row(r).squaredNorm() > 0) out->rows_.push_back(r);
  }
  const auto n = static_cast<int64_t>(out->rows_.size());
  if (n > int64_t{UINT32_MAX}) {
    return Status::InvalidArgument("at most 2^32 - 1 non-zero rows can be indexed", "vectors");
  }
  out->vectors_.resize(n, d);
  for (int64_t i = 0; i < n; ++i) out->vectors_.row(i) = vectors.row(out->rows_[i]);

  VectorIndexKind kind = options.kind;
  if (kind == VectorIndexKind::kAuto) {
    kind = n <= options.exact_limit ? VectorIndexKind::kExact : options.approximate;
  }
  out->kind_ = kind;
  out->faiss_ = std::make_unique<Faiss>();
  try {
    if (kind == VectorIndexKind::kExact) {
      // Nothing to build: a query scans the rows (Search).
    } else if (kind == VectorIndexKind::kHnsw) {
      // The graph is built on inner-product similarity directly (Faiss's HNSW supports it).
      auto hnsw =
          std::make_unique<faiss::IndexHNSWFlat>(d, options.hnsw_m, faiss::METRIC_INNER_PRODUCT);
      hnsw->hnsw.efConstruction = options.hnsw_ef_construction;
      hnsw->add(n, out->vectors_.data());
      out->faiss_->index = std::move(hnsw);
    } else {
      // The MIPS-to-NN reduction: x' = [x, sqrt(M² - ‖x‖²)], then L2 k-means cells.
      const Eigen::VectorXf norms2 = out->vectors_.rowwise().squaredNorm();
      const float max_norm2 = n > 0 ? norms2.maxCoeff() : 0.0f;
      RowMajorMatrixXf augmented(n, d + 1);
      augmented.leftCols(d) = out->vectors_;
      augmented.col(d) = (max_norm2 - norms2.array()).max(0.0f).sqrt().matrix();
      const int64_t nlist_wanted =
          options.ivf_nlist > 0
              ? options.ivf_nlist
              : std::clamp<int64_t>(static_cast<int64_t>(4 * std::sqrt(static_cast<double>(n))), 1,
                                    1024);
      // k-means needs at least one row per cell.
      const int64_t cells = std::max<int64_t>(1, std::min<int64_t>(nlist_wanted, n));
      out->nlist_ = cells;
      faiss::IndexFlatL2 quantizer(d + 1);
      faiss::IndexIVFFlat ivf(&quantizer, d + 1, static_cast<size_t>(cells));
      // k-means on a sample of at most 64 rows per cell (Faiss's own cap is 256).
      const int64_t sample = std::min<int64_t>(n, 64 * cells);
      ivf.cp.max_points_per_centroid = 64;
      ivf.cp.seed = static_cast<int>(options.seed);
      ivf.verbose = false;
      if (n > 0) {
        RowMajorMatrixXf train(sample, d + 1);
        std::vector<int64_t> pick(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) pick[static_cast<size_t>(i)] = i;
        std::mt19937_64 rng(options.seed);
        std::shuffle(pick.begin(), pick.end(), rng);
        for (int64_t i = 0; i < sample; ++i) train.row(i) = augmented.row(pick[i]);
        ivf.train(sample, train.data());
        // Each row's cell, from Faiss's quantizer; then the cells as contiguous runs of
        // 8-bit codes (Search scans those, then re-scores its candidates exactly).
        std::vector<FaissIdx> cell_of(static_cast<size_t>(n));
        quantizer.assign(n, augmented.data(), cell_of.data());
        const Eigen::Map<const RowMajorMatrixXf> centroids(quantizer.get_xb(), cells, d + 1);
        // Centroids as 8-bit codes too: every query scans all of them, and they only choose
        // cells (each cell's rows are re-scored).
        out->centroid_codes_ = Quantize(centroids.leftCols(d), {}, &out->centroid_step_);
        out->centroid_norms2_ = centroids.rowwise().squaredNorm();
        out->cell_start_.assign(static_cast<size_t>(cells) + 1, 0);
        for (FaissIdx c : cell_of) ++out->cell_start_[static_cast<size_t>(c) + 1];
        for (size_t c = 0; c < static_cast<size_t>(cells); ++c) {
          out->cell_start_[c + 1] += out->cell_start_[c];
        }
        std::vector<int64_t> fill(out->cell_start_.begin(), out->cell_start_.end() - 1);
        out->cell_pos_.resize(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) {
          out->cell_pos_[static_cast<size_t>(fill[static_cast<size_t>(cell_of[i])]++)] = i;
        }
        out->cell_codes_ = Quantize(out->vectors_, out->cell_pos_, &out->code_step_);
      } else {
        out->nlist_ = 0;
      }
    }
  } catch (const std::exception& e) {
    return Status::Internal(std::string("faiss: ") + e.what());
  }
  out->build_seconds_ =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // Recall@10 against exact search.
  if (kind == VectorIndexKind::kExact) {
    out->recall_at_10_ = 1.0;
  } else if (options.recall_queries == 0 || n == 0) {
    out->recall_at_10_ = std::numeric_limits<double>::quiet_NaN();
  } else {
    const RowMajorMatrixXf& pool = queries != nullptr && queries->rows() > 0 && queries->cols() == d
                                       ? *queries
                                       : out->vectors_;
    std::mt19937_64 rng(options.seed + 1);
    std::uniform_int_distribution<Eigen::Index> pick(0, pool.rows() - 1);
    int64_t found = 0, wanted = 0;
    for (int q = 0; q < options.recall_queries; ++q) {
      const Eigen::Index row = pick(rng);
      if (pool.row(row).squaredNorm() == 0) continue;
      const Eigen::VectorXf query = pool.row(row).transpose();
      const std::vector<int64_t> truth = ExactTop(out->vectors_, query.data(), 10);
      AFFINITY_ASSIGN_OR_RETURN(std::vector<Hit> hits, out->Search(query.data(), 10));
      std::unordered_set<int64_t> got;
      for (const Hit& h : hits) got.insert(h.row);
      for (int64_t t : truth) found += got.count(out->rows_[static_cast<size_t>(t)]);
      wanted += static_cast<int64_t>(truth.size());
    }
    out->recall_at_10_ = wanted > 0 ? static_cast<double>(found) / static_cast<double>(wanted)
                                    : std::numeric_limits<double>::quiet_NaN();
  }
  return out;
}

std::vector<std::pair<float, int64_t>> VectorIndex::ScanCells(const float* query, int64_t k,
                                                              size_t want) const {
  const int d = factors_;
  // Cells: the nprobe centroids nearest to q' = [q, 0] in L2, i.e. with the largest
  // q·c - ‖c‖²/2 (the augmented coordinate of q' is 0), nprobe enough for k rows. Then every
  // row of those cells is scored by q·x on its 8-bit codes, and the best `want` kept.
  const double cell = static_cast<double>(size()) / static_cast<double>(nlist_);
  const auto nprobe = static_cast<size_t>(std::min<double>(
      static_cast<double>(nlist_),
      std::max<double>(options_.ivf_nprobe,
                       std::ceil(options_.ivf_scan_factor * static_cast<double>(k) / cell))));
  thread_local std::vector<float> scores;
  scores.resize(static_cast<size_t>(nlist_));
  ByteQuery(query, centroid_step_)
      .Score(centroid_codes_.data(), static_cast<size_t>(nlist_), d, scores.data());
  Eigen::Map<Eigen::VectorXf>(scores.data(), nlist_) -= 0.5f * centroid_norms2_;
  Best cells(nprobe);
  cells.PushAll(scores.data(), static_cast<size_t>(nlist_), 0);
  // Nearest cells first (Take sorts): their rows raise the candidates' bar at once, so the
  // rows of the farther cells mostly fail one comparison instead of filling the buffer.
  const auto nearest = cells.Take();
  // q·x ≈ q·min + Σ_j (q_j step_j) code_j; the first term is the same for every row, so
  // the rows are ranked by the second.
  const ByteQuery scaled(query, code_step_);
  // The cells' first rows are asked for at once: each cell's scan otherwise starts with a
  // wait on memory (the rest of a cell streams behind its start).
  for (const auto& [unused, c] : nearest) {
    const int64_t first = cell_start_[static_cast<size_t>(c)];
    const int64_t rows = std::min<int64_t>(4, cell_start_[static_cast<size_t>(c) + 1] - first);
    const uint8_t* at = cell_codes_.data() + first * d;
    for (int64_t b = 0; b < rows * d; b += 64) _mm_prefetch(at + b, _MM_HINT_T0);
  }
  // Candidates are pushed by their slot in cell order; only the picked ones are looked up
  // in cell_pos_ (reading it for every scanned row was a cache miss a row).
  Best candidates(want);
  for (const auto& [unused, c] : nearest) {
    const int64_t first = cell_start_[static_cast<size_t>(c)];
    const auto n = static_cast<size_t>(cell_start_[static_cast<size_t>(c) + 1] - first);
    if (scores.size() < n) scores.resize(n);
    scaled.Score(cell_codes_.data() + first * d, n, d, scores.data());
    candidates.PushAll(scores.data(), n, first);
  }
  auto picked = candidates.Take();
  for (auto& [unused, slot] : picked) slot = cell_pos_[static_cast<size_t>(slot)];
  return picked;
}

Result<std::vector<int64_t>> VectorIndex::SearchRows(const float* query, int64_t k) const {
  if (k < 0) return Status::InvalidArgument("k must be >= 0", "k");
  std::vector<int64_t> rows;
  k = std::min<int64_t>(k, size());
  if (k == 0) return rows;
  if (kind_ != VectorIndexKind::kIvf) {
    AFFINITY_ASSIGN_OR_RETURN(auto hits, Search(query, k));
    rows.reserve(hits.size());
    for (const Hit& hit : hits) rows.push_back(hit.row);
    return rows;
  }
  for (const auto& [unused, pos] : ScanCells(query, k, static_cast<size_t>(k))) {
    rows.push_back(rows_[static_cast<size_t>(pos)]);
  }
  return rows;
}

Result<std::vector<VectorIndex::Hit>> VectorIndex::Search(const float* query, int64_t k) const {
  if (k < 0) return Status::InvalidArgument("k must be >= 0", "k");
  std::vector<Hit> hits;
  k = std::min<int64_t>(k, size());
  if (k == 0) return hits;
  const int d = factors_;
  const float* base = vectors_.data();
  Best best(static_cast<size_t>(k));
  try {
    if (kind_ == VectorIndexKind::kExact) {
      constexpr int64_t kBlock = 1024;
      std::array<float, kBlock> scores;
      for (int64_t first = 0; first < size(); first += kBlock) {
        const auto n = static_cast<size_t>(std::min<int64_t>(kBlock, size() - first));
        DotRows(query, base + first * d, n, static_cast<size_t>(d), d, scores.data());
        best.PushAll(scores.data(), n, first);
      }
    } else if (kind_ == VectorIndexKind::kHnsw) {
      // Faiss's graph walk with this file's distance kernel, and one visited-table per thread
      // (Faiss's own search allocates one of `size()` bytes per query).
      const auto& index = static_cast<const faiss::IndexHNSWFlat&>(*faiss_->index);
      thread_local std::unique_ptr<faiss::VisitedTable> visited;
      if (!visited || visited->visited.size() < static_cast<size_t>(index.ntotal)) {
        visited = std::make_unique<faiss::VisitedTable>(static_cast<int>(index.ntotal));
      }
      NegativeInnerProduct distance(base, d);
      distance.set_query(query);
      std::vector<float> distances(static_cast<size_t>(k));
      std::vector<FaissIdx> labels(static_cast<size_t>(k));
      faiss::maxheap_heapify(static_cast<size_t>(k), distances.data(), labels.data());
      faiss::SearchParametersHNSW params;
      params.efSearch = static_cast<int>(std::max<int64_t>(options_.hnsw_ef_search, k + 16));
      index.hnsw.search(distance, static_cast<int>(k), labels.data(), distances.data(), *visited,
                        &params);
      visited->advance();
      for (size_t i = 0; i < labels.size(); ++i) {
        if (labels[i] >= 0) best.Push(-distances[i], labels[i]);
      }
    } else {
      // The rows of the best k + margin by their codes, then those rows exactly.
      auto picked = ScanCells(query, k, static_cast<size_t>(k + std::max<int64_t>(16, k / 4)));
      // The exact rows are scattered over the whole base: a group at a time, every cache line
      // of the group's rows is asked for before the first is used, so the misses overlap.
      constexpr size_t kGroup = 32;
      for (size_t first = 0; first < picked.size(); first += kGroup) {
        const size_t end = std::min(picked.size(), first + kGroup);
        for (size_t j = first; j < end; ++j) {
          const float* row = base + picked[j].second * d;
          for (int64_t line = 0; line < d; line += 16) __builtin_prefetch(row + line);
        }
        for (size_t j = first; j < end; ++j) {
          best.Push(Dot(query, base + picked[j].second * d, d), picked[j].second);
        }
      }
    }
  } catch (const std::exception& e) {
    return Status::Internal(std::string("faiss: ") + e.what());
  }
  const auto found = best.Take();
  hits.reserve(found.size());
  for (const auto& [score, pos] : found) hits.push_back({rows_[static_cast<size_t>(pos)], score});
  return hits;
}

}  // namespace affinity
