// Each id's row, every value scale · q + bias in float32 as MLX's dequantize computes it
// (the rows equal take + dequantize's to the bit: tests/packed_rows.rs).
#include "mlx/cpp/packed_rows.h"

#include <memory>

#include "mlx/cpp/cpu_kernel.h"
#include "mlx/cpp/packed_linear.h"
#include "mlx/cpp/stored_values.inc"
#include "mlx/cpp/thread_pool.h"

namespace qwen3_mlx {
namespace {

// The integer id at flat position i of an evaluated array, whatever its strides.
int64_t id_at(const mx::array& ids, int64_t i) {
  const int64_t at = element_offset(ids.shape(), ids.strides(), i);
  switch (ids.dtype()) {
    case mx::int32:
      return ids.data<int32_t>()[at];
    case mx::uint32:
      return ids.data<uint32_t>()[at];
    case mx::int64:
      return ids.data<int64_t>()[at];
    default:
      return -1;
  }
}

struct RowsRun {
  std::shared_ptr<const std::vector<mx::array>> held;  // w, scales, biases
  AffineWeights m;
  int64_t k;
  int group, bits;

  void row(int64_t id, float* out) const {
    if (id < 0 || id >= m.n) {
      std::fill(out, out + k, 0.0f);
      return;
    }
    const int64_t groups = k / group, words = k * bits / 32;
    const auto* w = static_cast<const uint32_t*>(m.w) + id * words;
    const uint32_t mask = (uint32_t{1} << bits) - 1;
    const int per_word = 32 / bits;
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t at = id * groups + g;
      const float scale = stored_at(m.scales, m.type, at), bias = stored_at(m.biases, m.type, at);
      for (int64_t j = g * group; j < (g + 1) * group; ++j) {
        const uint32_t q = (w[j / per_word] >> ((j % per_word) * bits)) & mask;
        const float scaled = scale * static_cast<float>(q);
        out[j] = scaled + bias;
      }
    }
  }

  void operator()(const std::vector<mx::array>& in, mx::array& out) const {
    const mx::array& ids = in[0];
    float* y = out.data<float>();
    auto part = [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) row(id_at(ids, i), y + i * k);
    };
    parallel_for(static_cast<int64_t>(ids.size()), 16, part);
  }
};

}  // namespace

std::optional<mx::array> lookup_packed_rows(const mx::array& ids, const mx::array& w, const mx::array& scales,
                                            const mx::array& biases, int group, int bits) {
  const bool integer = ids.dtype() == mx::int32 || ids.dtype() == mx::uint32 || ids.dtype() == mx::int64;
  if (!integer || (bits != 2 && bits != 4 && bits != 8) || !fused_cpu_enabled() ||
      current_device() != mx::Device::cpu) {
    return std::nullopt;
  }
  const int64_t k = affine_columns(w, scales, biases, group, bits);
  if (k == 0 || !loaded_row_contiguous(w) || !loaded_row_contiguous(scales) || !loaded_row_contiguous(biases)) {
    return std::nullopt;
  }
  RowsRun run{std::make_shared<const std::vector<mx::array>>(std::vector<mx::array>{w, scales, biases}),
              {w.data<void>(), scales.data<void>(), biases.data<void>(), w.shape(0), *stored_type(scales.dtype())},
              k,
              group,
              bits};
  auto shape = ids.shape();
  shape.push_back(static_cast<int>(k));
  const void* identity = run.m.w;
  return cpu_kernel_node("PackedRows", std::move(shape), {static_cast<float>(group), static_cast<float>(bits)}, {ids},
                         std::move(run), identity);
}

}  // namespace qwen3_mlx
