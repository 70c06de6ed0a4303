// y[r, j] = x[r, :] · W[j, :] for 1–8 rows of float32 on the CPU, reading W once.
#pragma once

namespace qwen3_mlx {

constexpr int kFewRowsMax = 8;

// Whether this CPU is x86-64 with AVX2 and FMA, which the kernel (and vector_math.cc) use.
bool cpu_has_avx2_fma();
bool few_rows_supported();  // the same

// x: [rows, k], w: [n, k], y: [rows, n], all row-contiguous; 1 ≤ rows ≤ kFewRowsMax.
// Weights under 4 MiB run on the calling thread alone.
void few_rows_times_matrix_t(const float* x, int rows, const float* w, int n, int k, float* y);

}  // namespace qwen3_mlx
