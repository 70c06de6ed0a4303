// Attention for a few queries against a KV cache (a decode step): per query head, scores
// against its key/value head (grouped-query), softmax, weighted sum of values. Reads the
// cache where it lies, through strides; MLX's fallback would first copy it for GQA and then
// run batched sgemm with one row.
#include <algorithm>
#include <cmath>

#include "mlx/cpp/cpu_kernel.h"

namespace qwen3_mlx {
namespace {

void attend(const std::vector<mx::array>& in, mx::array& out, float scale, bool causal) {
  const auto& q = in[0];
  const int64_t batch = q.shape(0), q_heads = q.shape(1), queries = q.shape(2), d = q.shape(3);
  const int64_t kv_heads = in[1].shape(1), keys = in[1].shape(2), group = q_heads / kv_heads;
  Rows q_rows(q), k_rows(in[1]), v_rows(in[2]);
  std::vector<float> scaled(d), scores(keys), qs, ks, vs;
  float* y = out.data<float>();
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t h = 0; h < q_heads; ++h) {
      const int64_t kv_row0 = (b * kv_heads + h / group) * keys;
      for (int64_t t = 0; t < queries; ++t, y += d) {
        const float* qr = q_rows.row((b * q_heads + h) * queries + t, qs);
        for (int64_t i = 0; i < d; ++i) scaled[i] = scale * qr[i];
        const int64_t seen = causal ? keys - queries + t + 1 : keys;
        float top = -INFINITY;
        for (int64_t s = 0; s < seen; ++s) {
          scores[s] = dot(scaled.data(), k_rows.row(kv_row0 + s, ks), d);
          top = std::max(top, scores[s]);
        }
        float total = 0.0f;
        for (int64_t s = 0; s < seen; ++s) total += (scores[s] = std::exp(scores[s] - top));
        std::fill(y, y + d, 0.0f);
        for (int64_t s = 0; s < seen; ++s) {
          const float p = scores[s] / total;
          const float* vr = v_rows.row(kv_row0 + s, vs);
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
