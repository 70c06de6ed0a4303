// Attention against a KV cache on the CPU, without the copies and the one-float-at-a-time
// softmax of MLX's fallback (which also copies the cache for grouped-query heads).
// - A few queries (a decode step): per query head, scores against its key/value head by
//   dot products, softmax, weighted sum of the values; key/value heads split across threads.
// - More (a prefill): per head, blocks of queries through BLAS sgemm (scores, then
//   probabilities × values), with the causal limit applied between the two.
// Keys and values are read where they lie in the cache, through their strides; a decode
// step (the layer node) also reads them as float16, widened in the kernels.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "mlx/cpp/blas.h"
#include "mlx/cpp/cpu_kernel.h"
#include "mlx/cpp/cpu_rows.h"
#include "mlx/cpp/thread_pool.h"
#include "mlx/cpp/vector_math.h"

namespace qwen3_mlx {
namespace {

// The rows (last axis) of array[b, h] as a matrix with leading dimension `ld`; gathered into
// `copy_` when BLAS cannot read them in place.
template <class T = float>
class HeadMatrix {
 public:
  HeadMatrix(const mx::array& a, int64_t b, int64_t h) : ld_(a.strides(2)) {
    const T* base = a.data<T>() + b * a.strides(0) + h * a.strides(1);
    // BLAS needs adjacent elements and rows at least a row apart (no broadcast rows).
    if (a.strides(3) == 1 && (a.shape(2) == 1 || a.strides(2) >= a.shape(3))) {
      data_ = base;
      return;
    }
    const int64_t rows = a.shape(2), len = a.shape(3);
    copy_.resize(rows * len);
    for (int64_t s = 0; s < rows; ++s)
      for (int64_t i = 0; i < len; ++i) copy_[s * len + i] = base[s * ld_ + i * a.strides(3)];
    data_ = copy_.data();
    ld_ = len;
  }

  const T* row(int64_t s) const { return data_ + s * ld_; }
  const T* data() const { return data_; }
  int ld() const { return static_cast<int>(ld_); }

 private:
  const T* data_;
  int64_t ld_;
  std::vector<T> copy_;
};

struct Shapes {
  int64_t batch, q_heads, queries, d, kv_heads, keys, group;
  explicit Shapes(const std::vector<mx::array>& in)
      : batch(in[0].shape(0)),
        q_heads(in[0].shape(1)),
        queries(in[0].shape(2)),
        d(in[0].shape(3)),
        kv_heads(in[1].shape(1)),
        keys(in[1].shape(2)),
        group(q_heads / kv_heads) {}
  // Keys query t sees: all, or with a causal mask those up to its own position.
  int64_t seen(int64_t t, bool causal) const { return causal ? keys - queries + t + 1 : keys; }
};

// Where head h of batch row b writes its queries' outputs: [B, Hq, L, D] (a query's row
// D floats after the last), or merged [B, L, Hq·D] (Hq·D floats after).
struct OutputRows {
  float* y;
  bool merged;
  float* first(const Shapes& n, int64_t b, int64_t h) const {
    return merged ? y + (b * n.queries * n.q_heads + h) * n.d : y + (b * n.q_heads + h) * n.queries * n.d;
  }
  int64_t stride(const Shapes& n) const { return merged ? n.q_heads * n.d : n.d; }
};

// Key rows below which attend_few stays on one thread (a few microseconds of work).
constexpr int64_t kKeyRowsToSplit = 256;

// Pieces of (batch row, key/value head): the group's query heads read that head's keys and
// values one after the other, while they are still in the core's cache. Keys and values of
// T (float32 or float16).
template <class T>
void attend_few(const std::vector<mx::array>& in, const OutputRows& out, float scale, bool causal) {
  const Shapes n(in);
  const int64_t key_rows = std::max<int64_t>(1, n.keys * n.group * n.queries);
  auto piece = [&](int64_t u0, int64_t u1) {
    std::vector<float> scaled(n.d), scores(n.keys);
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t b = u / n.kv_heads, kv = u % n.kv_heads;
      const HeadMatrix<T> k(in[1], b, kv), v(in[2], b, kv);
      for (int64_t h = kv * n.group; h < (kv + 1) * n.group; ++h) {
        const HeadMatrix q(in[0], b, h);
        float* y = out.first(n, b, h);
        for (int64_t t = 0; t < n.queries; ++t, y += out.stride(n)) {
          const float* qr = q.row(t);
          for (int64_t i = 0; i < n.d; ++i) scaled[i] = scale * qr[i];
          const int64_t seen = n.seen(t, causal);
          dots_with_rows(scaled.data(), k.data(), k.ld(), seen, n.d, scores.data());
          softmax_in_place(scores.data(), seen);
          weighted_sum_of_rows(scores.data(), v.data(), v.ld(), seen, n.d, y);
        }
      }
    }
  };
  const int64_t units = n.batch * n.kv_heads;
  parallel_for(units, units * key_rows < kKeyRowsToSplit ? units : 1, piece);
}

// Queries per sgemm block: bounds the score buffer at 256 × keys floats.
constexpr int64_t kQueryBlock = 256;

void attend_many(const std::vector<mx::array>& in, const OutputRows& out, float scale, bool causal) {
  const Shapes n(in);
  const Sgemm sgemm = blas_sgemm();
  std::vector<float> scores(std::min(n.queries, kQueryBlock) * n.keys);
  for (int64_t b = 0; b < n.batch; ++b) {
    for (int64_t h = 0; h < n.q_heads; ++h) {
      const HeadMatrix q(in[0], b, h), k(in[1], b, h / n.group), v(in[2], b, h / n.group);
      float* y = out.first(n, b, h);
      const int64_t ldy = out.stride(n);
      for (int64_t t0 = 0; t0 < n.queries; t0 += kQueryBlock) {
        const int64_t rows = std::min(kQueryBlock, n.queries - t0), cols = n.seen(t0 + rows - 1, causal);
        const int m = static_cast<int>(rows), kk = static_cast<int>(cols), d = static_cast<int>(n.d);
        sgemm(kRowMajor, kNoTrans, kTrans, m, kk, d, scale, q.row(t0), q.ld(), k.data(), k.ld(), 0.0f,
              scores.data(), kk);
        for (int64_t r = 0; r < rows; ++r) {
          float* row = scores.data() + r * cols;
          const int64_t seen = n.seen(t0 + r, causal);
          softmax_in_place(row, seen);
          std::fill(row + seen, row + cols, 0.0f);
        }
        sgemm(kRowMajor, kNoTrans, kNoTrans, m, d, kk, 1.0f, scores.data(), kk, v.data(), v.ld(), 0.0f,
              y + t0 * ldy, static_cast<int>(ldy));
      }
    }
  }
}

}  // namespace

void attend(const std::vector<mx::array>& in, float* y, bool merged_heads, float scale, bool causal) {
  const OutputRows out{y, merged_heads};
  if (in[1].dtype() == mx::float16) {
    if (in[0].shape(2) > kFusedAttentionQueries) throw std::invalid_argument("attend: float16 keys for a prompt");
    return attend_few<mx::float16_t>(in, out, scale, causal);
  }
  const auto run = in[0].shape(2) <= kFusedAttentionQueries ? attend_few<float> : attend_many;
  run(in, out, scale, causal);
}

std::optional<mx::array> fused_attention(const mx::array& q, const mx::array& k, const mx::array& v, float scale,
                                         bool causal, bool merged_heads) {
  if (q.ndim() != 4 || k.ndim() != 4 || v.shape() != k.shape()) return std::nullopt;
  const bool fits = q.shape(0) == k.shape(0) && q.shape(3) == k.shape(3) && k.shape(1) > 0 &&
                    q.shape(1) % k.shape(1) == 0 && q.shape(2) >= 1 && k.shape(2) >= q.shape(2) && q.size() > 0;
  const bool few = q.shape(2) <= kFusedAttentionQueries;
  if (!fits || (!few && blas_sgemm() == nullptr) || !fused_cpu_applies({&q, &k, &v})) return std::nullopt;
  const mx::Shape shape =
      merged_heads ? mx::Shape{q.shape(0), q.shape(2), q.shape(1) * q.shape(3)} : q.shape();
  return cpu_kernel_node("FusedAttention", shape, {scale, causal ? 1.0f : 0.0f, merged_heads ? 1.0f : 0.0f}, {q, k, v},
                         [scale, causal, merged_heads](const std::vector<mx::array>& in, mx::array& out) {
                           attend(in, out.data<float>(), merged_heads, scale, causal);
                         });
}

}  // namespace qwen3_mlx
