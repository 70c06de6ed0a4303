// Attention for a few queries against a KV cache (a decode step): per query head, scores
// against its key/value head (grouped-query), softmax, weighted sum of values. Reads the
// cache where it lies, through strides; MLX's fallback would first copy it for GQA and then
// run batched sgemm with one row.
#include <algorithm>
#include <cmath>
#include <vector>

#include "mlx/cpp/cpu_kernel.h"

namespace qwen3_mlx {
namespace {

// Keys or values of one (batch, head) as rows `s * step` apart; gathered when a row's
// elements are not adjacent.
class HeadRows {
 public:
  HeadRows(const mx::array& a, int64_t b, int64_t h) : step_(a.strides(2)), len_(a.shape(3)) {
    const float* base = a.data<float>() + b * a.strides(0) + h * a.strides(1);
    if (a.strides(3) == 1) {
      data_ = base;
      return;
    }
    copy_.resize(a.shape(2) * len_);
    for (int64_t s = 0; s < a.shape(2); ++s)
      for (int64_t i = 0; i < len_; ++i) copy_[s * len_ + i] = base[s * step_ + i * a.strides(3)];
    data_ = copy_.data();
    step_ = len_;
  }

  const float* row(int64_t s) const { return data_ + s * step_; }

 private:
  const float* data_;
  int64_t step_, len_;
  std::vector<float> copy_;
};

void attend(const std::vector<mx::array>& in, mx::array& out, float scale, bool causal) {
  const auto& q = in[0];
  const int64_t batch = q.shape(0), q_heads = q.shape(1), queries = q.shape(2), d = q.shape(3);
  const int64_t kv_heads = in[1].shape(1), keys = in[1].shape(2), group = q_heads / kv_heads;
  Rows q_rows(q);
  std::vector<float> scaled(d), scores(keys), qs;
  float* y = out.data<float>();
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t h = 0; h < q_heads; ++h) {
      const HeadRows k(in[1], b, h / group), v(in[2], b, h / group);
      for (int64_t t = 0; t < queries; ++t, y += d) {
        const float* qr = q_rows.row((b * q_heads + h) * queries + t, qs);
        for (int64_t i = 0; i < d; ++i) scaled[i] = scale * qr[i];
        const int64_t seen = causal ? keys - queries + t + 1 : keys;
        float top = -INFINITY;
        for (int64_t s = 0; s < seen; ++s) {
          scores[s] = dot(scaled.data(), k.row(s), d);
          top = std::max(top, scores[s]);
        }
        float total = 0.0f;
        for (int64_t s = 0; s < seen; ++s) total += (scores[s] = std::exp(scores[s] - top));
        std::fill(y, y + d, 0.0f);
        for (int64_t s = 0; s < seen; ++s) {
          const float p = scores[s] / total;
          const float* vr = v.row(s);
          for (int64_t i = 0; i < d; ++i) y[i] += p * vr[i];
        }
      }
    }
  }
}

}  // namespace

std::optional<mx::array> fused_attention(const mx::array& q, const mx::array& k, const mx::array& v, float scale,
                                         bool causal) {
  if (q.ndim() != 4 || k.ndim() != 4 || v.shape() != k.shape()) return std::nullopt;
  const bool fits = q.shape(0) == k.shape(0) && q.shape(3) == k.shape(3) && k.shape(1) > 0 &&
                    q.shape(1) % k.shape(1) == 0 && q.shape(2) >= 1 && q.shape(2) <= kFusedAttentionQueries &&
                    k.shape(2) >= q.shape(2) && q.size() > 0;
  if (!fits || !fused_cpu_applies({&q, &k, &v})) return std::nullopt;
  return cpu_kernel_node("FusedAttention", q.shape(), {scale, causal ? 1.0f : 0.0f}, {q, k, v},
                         [scale, causal](const std::vector<mx::array>& in, mx::array& out) {
                           attend(in, out, scale, causal);
                         });
}

}  // namespace qwen3_mlx
