// Rotary position embedding over whole heads (Qwen3's non-traditional layout: element i
// turns with element i + D/2), each batch row starting at its own position; and the same
// after each head's rms_norm, from the projection's [B, T, H·D] straight to [B, H, T, D].
#include <cmath>

#include "mlx/cpp/cpu_kernel.h"
#include "mlx/cpp/cpu_rows.h"
#include "mlx/cpp/vector_math.h"

namespace qwen3_mlx {
namespace {

// Angles as MLX's fallback forms them, in float32: position · exp(-i · ln(base) / (D/2)), or
// position / freqs[i] when the caller gives each pair's wavelength (YaRN). A decode step
// rotates q and k of every layer at one position: the last table made on this thread is
// kept, and the next one for the same wavelengths and positions is that table (the same
// values, without 2 × 64 sines and cosines per rotation).
class Angles {
 public:
  Angles(const std::vector<mx::array>& in, size_t freqs_at, int64_t half, int64_t tokens, float base, float scale)
      : offsets_(in[1]), half_(half), tokens_(tokens), scale_(scale), inv_freq_(half) {
    if (in.size() > freqs_at) {
      const float* freqs = in[freqs_at].data<float>();
      for (int64_t i = 0; i < half; ++i) inv_freq_[i] = 1.0f / freqs[i * in[freqs_at].strides(0)];
    } else {
      const float step = static_cast<float>(std::log(static_cast<double>(base)) / static_cast<double>(half));
      for (int64_t i = 0; i < half; ++i) inv_freq_[i] = std::exp(static_cast<float>(-i) * step);
    }
  }

  // The cosines and sines of batch row b's tokens.
  void for_row(int64_t b) {
    const int32_t* start = offsets_.data<int32_t>();
    const float first = static_cast<float>(start[offsets_.size() == 1 ? 0 : b * offsets_.strides(0)]);
    Table& t = last_table();
    if (t.first == first && t.tokens == tokens_ && t.scale == scale_ && t.inv_freq == inv_freq_) return;
    t = {first, tokens_, scale_, inv_freq_, std::vector<float>(tokens_ * half_), std::vector<float>(tokens_ * half_)};
    for (int64_t k = 0; k < tokens_; ++k) {
      const float position = (static_cast<float>(k) + first) * scale_;
      for (int64_t i = 0; i < half_; ++i) {
        const float theta = position * inv_freq_[i];
        t.cos[k * half_ + i] = std::cos(theta);
        t.sin[k * half_ + i] = std::sin(theta);
      }
    }
  }

  // y ← token t's rotation of r (element i turns with element i + D/2).
  void rotate(const float* r, int64_t t, float* y) const {
    const Table& table = last_table();
    const float* c = &table.cos[t * half_];
    const float* s = &table.sin[t * half_];
    for (int64_t i = 0; i < half_; ++i) {
      y[i] = r[i] * c[i] - r[i + half_] * s[i];
      y[i + half_] = r[i] * s[i] + r[i + half_] * c[i];
    }
  }

 private:
  struct Table {
    float first = 0;
    int64_t tokens = 0;  // none: matches no table asked for
    float scale = 0;
    std::vector<float> inv_freq, cos, sin;
  };
  static Table& last_table() {
    thread_local Table table;
    return table;
  }

  const mx::array& offsets_;
  int64_t half_, tokens_;
  float scale_;
  std::vector<float> inv_freq_;
};

// in: x [B, H, T, D], offsets, freqs (optional).
void rope_rows(const std::vector<mx::array>& in, mx::array& out, float base, float scale) {
  const auto& x = in[0];
  const int64_t batch = x.shape(0), heads = x.shape(1), tokens = x.shape(2), d = x.shape(3);
  Angles angles(in, 2, d / 2, tokens, base, scale);
  Rows rows(x);
  std::vector<float> xs;
  float* y = out.data<float>();
  for (int64_t b = 0; b < batch; ++b) {
    angles.for_row(b);
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t t = 0; t < tokens; ++t, y += d) angles.rotate(rows.row((b * heads + h) * tokens + t, xs), t, y);
  }
}

}  // namespace

bool positions_fit(const mx::array& offsets, int batch, const mx::array* freqs, int half) {
  return offsets.dtype() == mx::int32 && (offsets.size() == 1 || (offsets.ndim() == 1 && offsets.shape(0) == batch)) &&
         (!freqs || (freqs->dtype() == mx::float32 && freqs->ndim() == 1 && freqs->shape(0) == half));
}

// in: x [B, T, H·D], offsets, weight [D], freqs (optional) → out [B, H, T, D]: each head
// normed, times `factor` (YaRN's; 1: none), then rotated.
void norm_rope_rows(const std::vector<mx::array>& in, mx::array& out, float eps, float base, float factor) {
  const auto& x = in[0];
  const int64_t batch = out.shape(0), heads = out.shape(1), tokens = out.shape(2), d = out.shape(3);
  Angles angles(in, 3, d / 2, tokens, base, 1.0f);
  Rows rows(x), w(in[2]);
  std::vector<float> xs, ws, normed(d);
  const float* weight = w.row(0, ws);
  float* y = out.data<float>();
  for (int64_t b = 0; b < batch; ++b) {
    angles.for_row(b);
    for (int64_t t = 0; t < tokens; ++t) {
      const float* row = rows.row(b * tokens + t, xs);
      for (int64_t h = 0; h < heads; ++h) {
        rms_norm_row(row + h * d, weight, d, eps, normed.data());
        if (factor != 1.0f)
          for (int64_t i = 0; i < d; ++i) normed[i] *= factor;
        angles.rotate(normed.data(), t, y + ((b * heads + h) * tokens + t) * d);
      }
    }
  }
}

std::optional<mx::array> fused_rope(const mx::array& x, int dims, bool traditional, float base, float scale,
                                    const mx::array& offsets, const mx::array* freqs) {
  const bool fits = !traditional && x.ndim() == 4 && dims == x.shape(3) && dims % 2 == 0 && x.size() > 0 &&
                    positions_fit(offsets, x.shape(0), freqs, dims / 2);
  if (!fits || !fused_cpu_applies({&x})) return std::nullopt;
  std::vector<mx::array> inputs{x, offsets};
  if (freqs) inputs.push_back(*freqs);
  return cpu_kernel_node("FusedRope", x.shape(), {base, scale}, std::move(inputs),
                         [base, scale](const std::vector<mx::array>& in, mx::array& out) {
                           rope_rows(in, out, base, scale);
                         });
}

std::optional<mx::array> fused_norm_rope(const mx::array& x, const mx::array& weight, float eps, int heads, float base,
                                         const mx::array& offsets, const mx::array* freqs, float factor) {
  if (x.ndim() != 3 || weight.ndim() != 1 || heads <= 0) return std::nullopt;
  const int d = weight.shape(0);
  const bool fits =
      d % 2 == 0 && x.shape(2) == heads * d && x.size() > 0 && positions_fit(offsets, x.shape(0), freqs, d / 2);
  if (!fits || !fused_cpu_applies({&x, &weight})) return std::nullopt;
  std::vector<mx::array> inputs{x, offsets, weight};
  if (freqs) inputs.push_back(*freqs);
  return cpu_kernel_node("FusedNormRope", {x.shape(0), heads, x.shape(1), d}, {eps, base, factor}, std::move(inputs),
                         [eps, base, factor](const std::vector<mx::array>& in, mx::array& out) {
                           norm_rope_rows(in, out, eps, base, factor);
                         });
}

}  // namespace qwen3_mlx
