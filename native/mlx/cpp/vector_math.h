// Row-wise float32 math built on an 8-lane exp, where the CPU has AVX2 and FMA.
#pragma once

#include <cstdint>

namespace qwen3_mlx {

// row[..n] ← exp(row - max) / Σ exp(row - max).
void softmax_in_place(float* row, int64_t n);

// y[..n] ← silu(gate) · up = gate / (1 + exp(-gate)) · up.
void swiglu_row(const float* gate, const float* up, float* y, int64_t n);

}  // namespace qwen3_mlx
