// The graph node of expert_linear.h: rows grouped by expert, each group one product through
// the packed kernels (few rows directly, many rows through dequantized tiles and sgemm).
#include "mlx/cpp/expert_linear.h"

#include <optional>
#include <vector>

#include "mlx/cpp/cpu_kernel.h"
#include "mlx/cpp/packed_linear.h"

namespace qwen3_mlx {
namespace {

// Buffers reused between calls by the thread that runs the kernels (MLX's CPU stream).
struct Scratch {
  std::vector<float> x, y, row;
  std::vector<int64_t> order, starts;
};
thread_local Scratch scratch;

struct Layout {
  int bits, group;  // bits 0: bf16/f16 weights
  int64_t experts, n, k, x_per_row, top_k;
};

// Bytes of one expert's weights.
int64_t weight_bytes(const Layout& l) { return l.bits > 0 ? l.n * l.k * l.bits / 8 : l.n * l.k * 2; }

void run_experts(const PackedIsa& isa, const Layout& l, const std::vector<mx::array>& in, mx::array& out) {
  const auto& x = in[0];
  const auto& indices = in.back();
  const uint32_t* picked = indices.data<uint32_t>();
  const int64_t pairs = static_cast<int64_t>(indices.size());
  float* y = out.data<float>();

  // Pairs (row, slot) bucketed by expert; an index past the stack gives a zero row.
  auto& s = scratch;
  s.starts.assign(static_cast<size_t>(l.experts + 2), 0);
  for (int64_t i = 0; i < pairs; ++i) s.starts[std::min<int64_t>(picked[i], l.experts) + 1]++;
  for (int64_t e = 0; e <= l.experts; ++e) s.starts[e + 1] += s.starts[e];
  s.order.resize(static_cast<size_t>(pairs));
  std::vector<int64_t> next(s.starts.begin(), s.starts.end() - 1);
  for (int64_t i = 0; i < pairs; ++i) s.order[next[std::min<int64_t>(picked[i], l.experts)]++] = i;
  for (int64_t j = s.starts[l.experts]; j < pairs; ++j) std::fill_n(y + s.order[j] * l.n, l.n, 0.0f);

  Rows rows(x);
  const auto* w = in[1].data<uint8_t>();
  const int64_t groups = l.bits > 0 ? l.k / l.group : 0;
  const int64_t scale_bytes = l.bits > 0 ? l.n * groups * static_cast<int64_t>(in[2].itemsize()) : 0;
  for (int64_t e = 0; e < l.experts; ++e) {
    const int64_t begin = s.starts[e], m = s.starts[e + 1] - begin;
    if (m == 0) continue;
    s.x.resize(static_cast<size_t>(m * l.k));
    for (int64_t j = 0; j < m; ++j) {
      const int64_t pair = s.order[begin + j];
      const int64_t row = l.x_per_row == 1 ? pair / l.top_k : pair;
      const float* src = rows.row(row, s.row);
      std::copy(src, src + l.k, s.x.begin() + j * l.k);
    }
    s.y.resize(static_cast<size_t>(m * l.n));
    PackedProduct p{};
    p.w = w + e * weight_bytes(l);
    p.bits = l.bits;
    p.group = l.group;
    p.n = l.n;
    p.k = l.k;
    p.y = s.y.data();
    if (l.bits > 0) {
      p.scales = in[2].data<uint8_t>() + e * scale_bytes;
      p.biases = in[3].data<uint8_t>() + e * scale_bytes;
      p.type = *stored_type(in[2].dtype());
    } else {
      p.type = *stored_type(in[1].dtype());
    }
    packed_rows_product(isa, p, s.x.data(), m);
    for (int64_t j = 0; j < m; ++j) std::copy_n(s.y.data() + j * l.n, l.n, y + s.order[begin + j] * l.n);
  }
}

// x [..., X, k] and indices [..., top_k] with the same leading axes and X ∈ {1, top_k}.
bool shapes_fit(const mx::array& x, const mx::array& indices) {
  if (x.ndim() < 2 || indices.ndim() != x.ndim() - 1) return false;
  for (size_t a = 0; a + 2 < x.ndim(); ++a)
    if (x.shape(a) != indices.shape(a)) return false;
  const int x_per_row = x.shape(-2);
  return x_per_row == 1 || x_per_row == indices.shape(-1);
}

std::optional<mx::array> packed_node(const mx::array& x, const std::vector<mx::array>& weights,
                                     const mx::array& indices, int bits, int group, int64_t k,
                                     mx::Device device) {
  const auto& w = weights[0];
  const auto* isa = isa_for(bits, group);
  const bool integer = mx::issubdtype(indices.dtype(), mx::integer);
  if (!isa || device != mx::Device::cpu || x.dtype() != mx::float32 || x.shape(-1) != k || !integer ||
      !shapes_fit(x, indices) || x.size() == 0) {
    return std::nullopt;
  }
  Layout l{bits, group, w.shape(0), w.shape(1), k, x.shape(-2), indices.shape(-1)};
  auto shape = indices.shape();
  shape.push_back(w.shape(1));
  std::vector<mx::array> inputs{x};
  for (const auto& a : weights) inputs.push_back(row_contiguous(a));
  inputs.push_back(row_contiguous(mx::astype(indices, mx::uint32, mx::Device::cpu)));
  return cpu_kernel_node("ExpertLinear", std::move(shape),
                         {static_cast<float>(bits), static_cast<float>(group), static_cast<float>(isa->lanes)},
                         std::move(inputs), [isa, l](const std::vector<mx::array>& in, mx::array& out) {
                           run_experts(*isa, l, in, out);
                         });
}

}  // namespace

mx::array expert_linear(const mx::array& x, const mx::array& w, const mx::array& indices, mx::Device device) {
  if (w.ndim() != 3) throw std::invalid_argument("expert weights must be [experts, n, k]");
  if (w.dtype() == mx::bfloat16 || w.dtype() == mx::float16) {
    if (auto node = packed_node(x, {w}, indices, 0, 0, w.shape(2), device)) return *node;
  }
  // MLX's CPU gather_mm takes float32 only: half precision goes through it widened (slow,
  // as it widens the whole stack; the CPU's default float32 compute does not come here).
  if (device == mx::Device::cpu && x.dtype() != mx::float32) {
    auto wide = expert_linear(mx::astype(x, mx::float32, device), mx::astype(w, mx::float32, device), indices, device);
    return mx::astype(wide, x.dtype(), device);
  }
  auto y = mx::gather_mm(mx::expand_dims(x, -2, device), mx::swapaxes(w, -1, -2, device), std::nullopt, indices,
                         false, device);
  return mx::squeeze(y, -2, device);
}

mx::array expert_quantized_linear(const mx::array& x, const mx::array& w, const mx::array& scales,
                                  const mx::array& biases, const mx::array& indices, int group, int bits,
                                  mx::Device device) {
  if (w.ndim() != 3 || w.dtype() != mx::uint32 || bits <= 0 || group <= 0)
    throw std::invalid_argument("packed expert weights must be uint32 [experts, n, k·bits/32]");
  const int64_t k = static_cast<int64_t>(w.shape(2)) * 32 / bits;
  const mx::Shape groups{w.shape(0), w.shape(1), static_cast<int>(k / group)};
  if (scales.shape() == groups && biases.shape() == groups && scales.dtype() == biases.dtype() &&
      stored_type(scales.dtype()) && k % group == 0) {
    if (auto node = packed_node(x, {w, scales, biases}, indices, bits, group, k, device)) return *node;
  }
  // MLX wants the scales in x's dtype.
  auto s = scales.dtype() == x.dtype() ? scales : mx::astype(scales, x.dtype(), device);
  auto b = biases.dtype() == x.dtype() ? biases : mx::astype(biases, x.dtype(), device);
  auto y = mx::gather_qmm(mx::expand_dims(x, -2, device), w, s, b, std::nullopt, indices, true, group, bits,
                          "affine", std::nullopt, false, device);
  return mx::squeeze(y, -2, device);
}

}  // namespace qwen3_mlx
