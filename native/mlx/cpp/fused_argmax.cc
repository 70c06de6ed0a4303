// Two passes over each row: the largest value over 16 lanes (a comparison a NaN always
// loses, so it is skipped as MLX's `x > best` skips it), then the first index holding it.
#include "mlx/cpp/fused_argmax.h"

#include <algorithm>

#include "mlx/cpp/cpu_kernel.h"

namespace qwen3_mlx {
namespace {

constexpr int kLanes = 16;

uint32_t first_largest(const float* x, int64_t n) {
  float lane[kLanes];
  std::fill(lane, lane + kLanes, x[0]);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lane[j] = x[i + j] > lane[j] ? x[i + j] : lane[j];
  float best = x[0];
  for (int j = 0; j < kLanes; ++j) best = lane[j] > best ? lane[j] : best;
  for (; i < n; ++i) best = x[i] > best ? x[i] : best;
  // x[0] NaN: nothing compares greater, MLX keeps index 0 (as `best == x[0]` is false).
  if (best != best) return 0;
  for (int64_t k = 0; k < n; ++k)
    if (x[k] == best) return static_cast<uint32_t>(k);
  return 0;
}

}  // namespace

std::optional<mx::array> fused_argmax(const mx::array& x) {
  if (x.ndim() < 1 || x.shape(-1) == 0 || !fused_cpu_applies({&x})) return std::nullopt;
  auto shape = x.shape();
  shape.pop_back();
  return cpu_kernel_node(
      "FusedArgmax", std::move(shape), {}, {x},
      [](const std::vector<mx::array>& in, mx::array& out) {
        const Rows rows(in[0]);
        const int64_t n = rows.len(), count = static_cast<int64_t>(in[0].size()) / n;
        std::vector<float> scratch;
        uint32_t* y = out.data<uint32_t>();
        for (int64_t r = 0; r < count; ++r) y[r] = first_largest(rows.row(r, scratch), n);
      },
      nullptr, mx::uint32);
}

}  // namespace qwen3_mlx
