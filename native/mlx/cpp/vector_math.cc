// MLX's CPU softmax evaluates exp one float at a time (simd::exp<float, 1>, with fmaf as a
// library call); in a 512-token prefill that was a quarter of the time. Here exp runs the
// usual range reduction and degree-5 polynomial (Cephes' constants, ≤ 2 ulp) on 8 lanes.
#include "mlx/cpp/vector_math.h"

#include <algorithm>
#include <cmath>

#include "mlx/cpp/few_rows.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace qwen3_mlx {
namespace {

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

void swiglu_row(const float* gate, const float* up, float* y, int64_t n) {
#if defined(__x86_64__)
  if (cpu_has_avx2_fma()) return swiglu_avx2(gate, up, y, n);
#endif
  for (int64_t i = 0; i < n; ++i) y[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace qwen3_mlx
