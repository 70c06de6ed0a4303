// An embedding lookup from affine-packed rows as one CPU node (packed_rows.cc).
#pragma once

#include <optional>

#include "mlx/mlx.h"

namespace qwen3_mlx {

namespace mx = mlx::core;

// Rows of the packed matrix (w uint32 [n, k·bits/32], scales and biases [n, k / group])
// picked by integer `ids` (any shape), dequantized to float32: ids.shape + [k]. As MLX's
// take + dequantize compute it (scale · q + bias, in float32), without ~10 nodes of small
// ops; an id outside [0, n) gives a row of zeros. The node holds the matrix (it is not an
// input). nullopt where it does not apply (another device, bits other than 2/4/8, weights
// not loaded): the caller uses MLX's ops.
std::optional<mx::array> lookup_packed_rows(const mx::array& ids, const mx::array& w, const mx::array& scales,
                                            const mx::array& biases, int group, int bits);

}  // namespace qwen3_mlx
