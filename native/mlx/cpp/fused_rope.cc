// Rotary position embedding over whole heads (Qwen3's non-traditional layout: element i
// turns with element i + D/2), each batch row starting at its own position.
#include <cmath>

#include "mlx/cpp/cpu_kernel.h"

namespace qwen3_mlx {
namespace {

// Angles as MLX's fallback forms them, in float32: position · exp(-i · ln(base) / (D/2)), or
// position / freqs[i] when the caller gives each pair's wavelength (YaRN).
void rope_rows(const std::vector<mx::array>& in, mx::array& out, float base, float scale) {
  const auto& x = in[0];
  const auto& offsets = in[1];
  const int64_t batch = x.shape(0), heads = x.shape(1), tokens = x.shape(2), d = x.shape(3), half = d / 2;
  const float step = static_cast<float>(std::log(static_cast<double>(base)) / static_cast<double>(half));
  std::vector<float> inv_freq(half), cos_t(tokens * half), sin_t(tokens * half), xs;
  if (in.size() > 2) {
    const float* freqs = in[2].data<float>();
    for (int64_t i = 0; i < half; ++i) inv_freq[i] = 1.0f / freqs[i * in[2].strides(0)];
  } else {
    for (int64_t i = 0; i < half; ++i) inv_freq[i] = std::exp(static_cast<float>(-i) * step);
  }
  Rows rows(x);
  const int32_t* start = offsets.data<int32_t>();
  float* y = out.data<float>();
  for (int64_t b = 0; b < batch; ++b) {
    const float first = static_cast<float>(start[offsets.size() == 1 ? 0 : b * offsets.strides(0)]);
    for (int64_t t = 0; t < tokens; ++t) {
      const float position = (static_cast<float>(t) + first) * scale;
      for (int64_t i = 0; i < half; ++i) {
        const float theta = position * inv_freq[i];
        cos_t[t * half + i] = std::cos(theta);
        sin_t[t * half + i] = std::sin(theta);
      }
    }
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t t = 0; t < tokens; ++t, y += d) {
        const float* r = rows.row((b * heads + h) * tokens + t, xs);
        const float* c = &cos_t[t * half];
        const float* s = &sin_t[t * half];
        for (int64_t i = 0; i < half; ++i) {
          y[i] = r[i] * c[i] - r[i + half] * s[i];
          y[i + half] = r[i] * s[i] + r[i + half] * c[i];
        }
      }
    }
  }
}

}  // namespace

std::optional<mx::array> fused_rope(const mx::array& x, int dims, bool traditional, float base, float scale,
                                    const mx::array& offsets, const mx::array* freqs) {
  const bool fits = !traditional && x.ndim() == 4 && dims == x.shape(3) && dims % 2 == 0 && x.size() > 0 &&
                    offsets.dtype() == mx::int32 &&
                    (offsets.size() == 1 || (offsets.ndim() == 1 && offsets.shape(0) == x.shape(0))) &&
                    (!freqs || (freqs->dtype() == mx::float32 && freqs->ndim() == 1 && freqs->shape(0) == dims / 2));
  if (!fits || !fused_cpu_applies({&x})) return std::nullopt;
  std::vector<mx::array> inputs{x, offsets};
  if (freqs) inputs.push_back(*freqs);
  return cpu_kernel_node("FusedRope", x.shape(), {base, scale}, std::move(inputs),
                         [base, scale](const std::vector<mx::array>& in, mx::array& out) {
                           rope_rows(in, out, base, scale);
                         });
}

}  // namespace qwen3_mlx
