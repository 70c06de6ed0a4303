// x · W[e]ᵀ for a stack of expert matrices W [E, n, k], each row multiplied only by the
// experts `indices` picks for it: what a mixture-of-experts layer runs after its router.
// x is [..., X, k] with X = 1 (every picked expert sees the same row) or X = top_k (a row
// per picked expert); indices is [..., top_k]; the result is [..., top_k, n].
#pragma once

#include "mlx/mlx.h"

namespace qwen3_mlx {

namespace mx = mlx::core;

// Float32 x on the CPU with weights the packed kernels read (bf16/f16, or affine at bits and
// groups they take): one node that reads each picked expert's weights once, for all the rows
// that picked it. Anything else: MLX's gather_mm / gather_qmm.
mx::array expert_linear(const mx::array& x, const mx::array& w, const mx::array& indices, mx::Device device);
mx::array expert_quantized_linear(const mx::array& x, const mx::array& w, const mx::array& scales,
                                  const mx::array& biases, const mx::array& indices, int group, int bits,
                                  mx::Device device);

}  // namespace qwen3_mlx
