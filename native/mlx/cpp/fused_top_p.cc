// Nucleus (top-p) filtering of [B, V] float32 logits without sorting the vocabulary. MLX's
// CPU argsort of 151,936 logits takes ~25 ms, and the nucleus is usually a small part of
// it. One pass sums the probability mass in buckets of logit distance from the maximum;
// only the tokens down to the bucket where the mass reaches p (and the next) get sorted,
// and the exact cut is made among them, in order.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "mlx/cpp/cpu_kernel.h"

namespace qwen3_mlx {
namespace {

constexpr int kBuckets = 1024;
constexpr float kBucketsPerLogit = 16.0f;  // the last bucket takes every logit below max - 64

struct Scratch {
  std::vector<float> key;  // the logit, NaN as -inf
  std::vector<uint16_t> bucket;
  std::vector<int32_t> kept;
};

// Fills `s.kept` with the tokens that stay (those whose more likely tokens hold < p;
// ties: lower id first) and returns true, or returns false when every token stays.
bool nucleus(const float* x, int64_t vocab, double p, Scratch& s) {
  s.key.resize(vocab);
  s.bucket.resize(vocab);
  float max = -INFINITY;
  for (int64_t i = 0; i < vocab; ++i) max = std::max(max, s.key[i] = std::isnan(x[i]) ? -INFINITY : x[i]);
  // All -inf, or an infinite logit: no finite probabilities, nothing to cut.
  if (!std::isfinite(max)) return false;
  std::array<double, kBuckets> mass{};
  double total = 0.0;
  for (int64_t i = 0; i < vocab; ++i) {
    const float w = std::exp(s.key[i] - max), distance = (max - s.key[i]) * kBucketsPerLogit;
    const int b = distance < kBuckets - 1 ? static_cast<int>(distance) : kBuckets - 1;
    s.bucket[i] = static_cast<uint16_t>(b);
    mass[b] += w;
    total += w;
  }
  int cut = 0;
  for (double above = mass[0]; above < p * total && cut < kBuckets - 1;) above += mass[++cut];
  const auto more_likely = [&k = s.key](int32_t a, int32_t b) { return k[a] > k[b] || (k[a] == k[b] && a < b); };
  // The bucket sums round differently from the ordered sum: one bucket more covers that,
  // and if it ever does not, all the buckets.
  for (int last : {std::min(cut + 1, kBuckets - 1), kBuckets - 1}) {
    s.kept.clear();
    for (int64_t i = 0; i < vocab; ++i)
      if (s.bucket[i] <= last) s.kept.push_back(static_cast<int32_t>(i));
    std::sort(s.kept.begin(), s.kept.end(), more_likely);
    double before = 0.0;
    for (size_t j = 0; j < s.kept.size(); ++j) {
      if (before >= p) {
        s.kept.resize(j);
        return true;
      }
      before += std::exp(s.key[s.kept[j]] - max) / total;
    }
  }
  return false;
}

void top_p_rows(const std::vector<mx::array>& in, mx::array& out, float p) {
  Rows rows(in[0]);
  const int64_t vocab = rows.len(), count = static_cast<int64_t>(in[0].size()) / vocab;
  std::vector<float> gathered;
  Scratch scratch;
  float* y = out.data<float>();
  for (int64_t r = 0; r < count; ++r, y += vocab) {
    const float* x = rows.row(r, gathered);
    if (!nucleus(x, vocab, p, scratch)) {
      std::copy_n(x, vocab, y);
      continue;
    }
    std::fill_n(y, vocab, -INFINITY);
    for (int32_t id : scratch.kept) y[id] = x[id];
  }
}

}  // namespace

std::optional<mx::array> fused_top_p(const mx::array& logits, float p) {
  if (logits.ndim() != 2 || logits.size() == 0 || logits.shape(1) > INT32_MAX || !fused_cpu_applies({&logits})) {
    return std::nullopt;
  }
  return cpu_kernel_node("FusedTopP", logits.shape(), {p}, {logits},
                         [p](const std::vector<mx::array>& in, mx::array& out) { top_p_rows(in, out, p); });
}

}  // namespace qwen3_mlx
