// Row-wise float32 math built on an 8-lane exp, where the CPU has AVX2 and FMA.
#pragma once

#include <cstdint>

#include "mlx/types/half_types.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace qwen3_mlx {

namespace mx = mlx::core;

#if defined(__x86_64__)
// Σ of v's 8 lanes, for AVX2 kernels.
__attribute__((target("avx2,fma"))) inline float lanes_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}
#endif

// row[..n] ← exp(row - max) / Σ exp(row - max).
void softmax_in_place(float* row, int64_t n);

// out[s] ← q · keys[s] for s < rows, key s starting at keys + s·ld, each d values long
// (float32, or float16 widened: the same sums as of its float32 copy).
void dots_with_rows(const float* q, const float* keys, int64_t ld, int64_t rows, int64_t d, float* out);
void dots_with_rows(const float* q, const mx::float16_t* keys, int64_t ld, int64_t rows, int64_t d, float* out);

// y[..d] ← Σ_s p[s] · values[s] for s < rows, value s starting at values + s·ld.
void weighted_sum_of_rows(const float* p, const float* values, int64_t ld, int64_t rows, int64_t d, float* y);
void weighted_sum_of_rows(const float* p, const mx::float16_t* values, int64_t ld, int64_t rows, int64_t d,
                          float* y);

// y[..d] ← row / sqrt(mean(row²) + eps) · weight, normalized in float32 then scaled (MLX's order).
void rms_norm_row(const float* row, const float* weight, int64_t d, float eps, float* y);

// y[..n] ← silu(gate) · up = gate / (1 + exp(-gate)) · up.
void swiglu_row(const float* gate, const float* up, float* y, int64_t n);

}  // namespace qwen3_mlx
