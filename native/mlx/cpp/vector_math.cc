// MLX's CPU softmax evaluates exp one float at a time (simd::exp<float, 1>, with fmaf as a
// library call); in a 512-token prefill that was a quarter of the time. Here exp runs the
// usual range reduction and degree-5 polynomial (Cephes' constants, ≤ 2 ulp) on 8 lanes.
#include "mlx/cpp/vector_math.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "mlx/cpp/cpu_kernel.h"
#include "mlx/cpp/few_rows.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace qwen3_mlx {
namespace {

inline float widen(float v) { return v; }
inline float widen(mx::float16_t v) { return static_cast<float>(v); }

bool cpu_runs_half_kernels() {
#if defined(__x86_64__)
  static const bool ok = cpu_has_avx2_fma() && __builtin_cpu_supports("f16c");
  return ok;
#else
  return false;
#endif
}

#if defined(__x86_64__)
// exp(x) = 2^n · exp(r), n = round(x / ln 2), r = x - n ln 2 (ln 2 split in two for accuracy).
__attribute__((target("avx2,fma"))) inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i scale = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(scale));
}

// Σ of row[i] ← exp(row[i] - max).
__attribute__((target("avx2,fma"))) float exp_shifted_avx2(float* row, int64_t n, float max) {
  const __m256 shift = _mm256_set1_ps(max);
  __m256 sum8 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + i), shift));
    _mm256_storeu_ps(row + i, e);
    sum8 = _mm256_add_ps(sum8, e);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum8);
  float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; i < n; ++i) sum += (row[i] = std::exp(row[i] - max));
  return sum;
}

// 8 values as float32: float32 as they are, float16 widened (F16C; exact).
__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const mx::float16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Four keys at a time: q's vectors are loaded once for four independent FMA chains. Keys
// of float16 go through the same arithmetic once widened, so the result equals that of
// their float32 copy to the bit.
template <class T>
__attribute__((target("avx2,fma,f16c"))) void dots_avx2(const float* q, const T* keys, int64_t ld, int64_t rows,
                                                        int64_t d, float* out) {
  const int64_t body = d - d % 8;
  int64_t s = 0;
  for (; s + 4 <= rows; s += 4) {
    const T* k = keys + s * ld;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t c = 0; c < body; c += 8) {
      const __m256 qv = _mm256_loadu_ps(q + c);
      a0 = _mm256_fmadd_ps(qv, load8(k + c), a0);
      a1 = _mm256_fmadd_ps(qv, load8(k + ld + c), a1);
      a2 = _mm256_fmadd_ps(qv, load8(k + 2 * ld + c), a2);
      a3 = _mm256_fmadd_ps(qv, load8(k + 3 * ld + c), a3);
    }
    const __m256 sums[4] = {a0, a1, a2, a3};
    for (int r = 0; r < 4; ++r) {
      float sum = lanes_sum(sums[r]);
      for (int64_t c = body; c < d; ++c) sum += q[c] * widen(k[r * ld + c]);
      out[s + r] = sum;
    }
  }
  for (; s < rows; ++s) {
    const T* k = keys + s * ld;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t c = 0; c < body; c += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), load8(k + c), acc);
    float sum = lanes_sum(acc);
    for (int64_t c = body; c < d; ++c) sum += q[c] * widen(k[c]);
    out[s] = sum;
  }
}

// Columns in chunks of 64 held in eight accumulators across all the rows.
template <class T>
__attribute__((target("avx2,fma,f16c"))) void weighted_sum_avx2(const float* p, const T* values, int64_t ld,
                                                                int64_t rows, int64_t d, float* y) {
  int64_t c0 = 0;
  for (; c0 + 64 <= d; c0 += 64) {
    __m256 acc[8];
    for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t s = 0; s < rows; ++s) {
      const __m256 ps = _mm256_set1_ps(p[s]);
      const T* v = values + s * ld + c0;
      for (int i = 0; i < 8; ++i) acc[i] = _mm256_fmadd_ps(ps, load8(v + 8 * i), acc[i]);
    }
    for (int i = 0; i < 8; ++i) _mm256_storeu_ps(y + c0 + 8 * i, acc[i]);
  }
  for (int64_t c = c0; c < d; ++c) {
    float sum = 0.0f;
    for (int64_t s = 0; s < rows; ++s) sum += p[s] * widen(values[s * ld + c]);
    y[c] = sum;
  }
}

__attribute__((target("avx2,fma"))) void swiglu_avx2(const float* gate, const float* up, float* y, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 sigmoid = _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, g))));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(g, sigmoid), _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) y[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}
#endif

float exp_shifted(float* row, int64_t n, float max) {
#if defined(__x86_64__)
  if (cpu_has_avx2_fma()) return exp_shifted_avx2(row, n, max);
#endif
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += (row[i] = std::exp(row[i] - max));
  return sum;
}

}  // namespace

void softmax_in_place(float* row, int64_t n) {
  if (n <= 0) return;
  const float max = *std::max_element(row, row + n);
  const float inv = 1.0f / exp_shifted(row, n, max);
  for (int64_t i = 0; i < n; ++i) row[i] *= inv;
}

namespace {

// The same without AVX2.
template <class T>
void dots_of(const float* q, const T* keys, int64_t ld, int64_t rows, int64_t d, float* out) {
  for (int64_t s = 0; s < rows; ++s) {
    float sum = 0.0f;
    for (int64_t c = 0; c < d; ++c) sum += q[c] * widen(keys[s * ld + c]);
    out[s] = sum;
  }
}

template <class T>
void weighted_sum_of(const float* p, const T* values, int64_t ld, int64_t rows, int64_t d, float* y) {
  std::fill(y, y + d, 0.0f);
  for (int64_t s = 0; s < rows; ++s)
    for (int64_t c = 0; c < d; ++c) y[c] += p[s] * widen(values[s * ld + c]);
}

// The AVX2 kernels where this CPU runs them for T's rows (float16 needs F16C too), else
// the loops above.
template <class T>
bool avx2_runs() {
  if constexpr (std::is_same_v<T, float>) {
    return cpu_has_avx2_fma();
  } else {
    return cpu_runs_half_kernels();
  }
}

template <class T>
void dots_any(const float* q, const T* keys, int64_t ld, int64_t rows, int64_t d, float* out) {
#if defined(__x86_64__)
  if (avx2_runs<T>()) return dots_avx2(q, keys, ld, rows, d, out);
#endif
  dots_of(q, keys, ld, rows, d, out);
}

template <class T>
void weighted_sum_any(const float* p, const T* values, int64_t ld, int64_t rows, int64_t d, float* y) {
#if defined(__x86_64__)
  if (avx2_runs<T>()) return weighted_sum_avx2(p, values, ld, rows, d, y);
#endif
  weighted_sum_of(p, values, ld, rows, d, y);
}

}  // namespace

void dots_with_rows(const float* q, const float* keys, int64_t ld, int64_t rows, int64_t d, float* out) {
  dots_any(q, keys, ld, rows, d, out);
}

void dots_with_rows(const float* q, const mx::float16_t* keys, int64_t ld, int64_t rows, int64_t d, float* out) {
  dots_any(q, keys, ld, rows, d, out);
}

void weighted_sum_of_rows(const float* p, const float* values, int64_t ld, int64_t rows, int64_t d, float* y) {
  weighted_sum_any(p, values, ld, rows, d, y);
}

void weighted_sum_of_rows(const float* p, const mx::float16_t* values, int64_t ld, int64_t rows, int64_t d,
                          float* y) {
  weighted_sum_any(p, values, ld, rows, d, y);
}

void rms_norm_row(const float* row, const float* weight, int64_t d, float eps, float* y) {
  const float inv = 1.0f / std::sqrt(dot(row, row, d) / static_cast<float>(d) + eps);
  for (int64_t i = 0; i < d; ++i) y[i] = (row[i] * inv) * weight[i];
}

void swiglu_row(const float* gate, const float* up, float* y, int64_t n) {
#if defined(__x86_64__)
  if (cpu_has_avx2_fma()) return swiglu_avx2(gate, up, y, n);
#endif
  for (int64_t i = 0; i < n; ++i) y[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace qwen3_mlx
