// The node of kv_dequantize.h. MLX's CPU dequantize took ~4 ns a value here, which made a
// decode step over a 1,024-token 8-bit cache 5× slower than over a float one.
#include "mlx/cpp/kv_dequantize.h"

#include <vector>

#include "mlx/cpp/cpu_kernel.h"
#include "mlx/cpp/thread_pool.h"

namespace qwen3_mlx {
namespace {

// Offset (in elements) of row r of a 4-D array whose last axis is contiguous.
int64_t row_offset(const mx::array& a, int64_t r) {
  int64_t off = 0;
  for (int d = 2; d >= 0; --d) {
    off += (r % a.shape(d)) * a.strides(d);
    r /= a.shape(d);
  }
  return off;
}

// Row r's elements, where they lie when the last axis is contiguous, else gathered.
template <class T>
const T* row_of(const mx::array& a, int64_t r, std::vector<T>& gathered) {
  const T* base = a.data<T>() + row_offset(a, r);
  const int64_t step = a.strides(3), len = a.shape(3);
  if (step == 1) return base;
  gathered.resize(static_cast<size_t>(len));
  for (int64_t i = 0; i < len; ++i) gathered[i] = base[i * step];
  return gathered.data();
}

// Values are packed little-endian, the first in the lowest bits: byte by byte, one group
// (one scale and bias) at a time, in loops the compiler turns into vector code.
template <int Bits>
void decode_row(const uint32_t* packed, const float* scales, const float* biases, int64_t d, int group, float* out) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(packed);
  for (int64_t g = 0; g < d / group; ++g) {
    const float s = scales[g], b = biases[g];
    const uint8_t* in = bytes + g * group * Bits / 8;
    float* o = out + g * group;
    if constexpr (Bits == 8) {
      for (int i = 0; i < group; ++i) o[i] = s * static_cast<float>(in[i]) + b;
    } else {
      for (int i = 0; i < group / 2; ++i) {
        o[2 * i] = s * static_cast<float>(in[i] & 15) + b;
        o[2 * i + 1] = s * static_cast<float>(in[i] >> 4) + b;
      }
    }
  }
}

void run(const std::vector<mx::array>& in, mx::array& out, int group, int bits) {
  const auto &w = in[0], &scales = in[1], &biases = in[2];
  const int64_t d = out.shape(3), rows = static_cast<int64_t>(out.size()) / d;
  float* y = out.data<float>();
  auto part = [&](int64_t begin, int64_t end) {
    std::vector<uint32_t> pw;
    std::vector<float> ps, pb;
    for (int64_t r = begin; r < end; ++r) {
      const uint32_t* p = row_of(w, r, pw);
      const float* s = row_of(scales, r, ps);
      const float* b = row_of(biases, r, pb);
      if (bits == 8) {
        decode_row<8>(p, s, b, d, group, y + r * d);
      } else {
        decode_row<4>(p, s, b, d, group, y + r * d);
      }
    }
  };
  parallel_for(rows, 256, part);
}

}  // namespace

std::optional<mx::array> kv_dequantize(const mx::array& w, const mx::array& scales, const mx::array& biases,
                                       int group, int bits) {
  if (current_device() != mx::Device::cpu || !fused_cpu_enabled() || (bits != 4 && bits != 8) || w.ndim() != 4 ||
      w.dtype() != mx::uint32 || scales.dtype() != mx::float32 || biases.dtype() != mx::float32 ||
      scales.shape() != biases.shape() || group % (32 / bits) != 0) {
    return std::nullopt;
  }
  auto shape = w.shape();
  shape[3] = w.shape(3) * 32 / bits;
  if (scales.shape(3) * group != shape[3] || scales.shape(2) != w.shape(2) || w.size() == 0) return std::nullopt;
  return cpu_kernel_node("KvDequantize", shape, {static_cast<float>(group), static_cast<float>(bits)},
                         {w, scales, biases}, [group, bits](const std::vector<mx::array>& in, mx::array& out) {
                           run(in, out, group, bits);
                         });
}

}  // namespace qwen3_mlx
