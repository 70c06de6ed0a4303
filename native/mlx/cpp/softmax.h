// Softmax of one row of float32 in place, 8 lanes at a time where the CPU has AVX2.
#pragma once

#include <cstdint>

namespace qwen3_mlx {

// row[..n] ← exp(row - max) / Σ exp(row - max).
void softmax_in_place(float* row, int64_t n);

}  // namespace qwen3_mlx
