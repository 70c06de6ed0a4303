// A quantized KV cache's slots as float32, on the CPU: one node that decodes the packed
// values (4 or 8 bits, groups along the last axis, as mx::quantize writes them) row by row,
// split across the cores, reading the cache's slices where they lie.
#pragma once

#include <optional>

#include "mlx/mlx.h"

namespace qwen3_mlx {

namespace mx = mlx::core;

// nullopt where it does not apply (another device, scales not float32, other bits): the
// caller uses mx::dequantize.
std::optional<mx::array> kv_dequantize(const mx::array& w, const mx::array& scales, const mx::array& biases,
                                       int group, int bits);

}  // namespace qwen3_mlx
