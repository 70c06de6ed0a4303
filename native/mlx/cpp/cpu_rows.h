// The row kernels behind the fused nodes, for a node that runs several of them in turn
// (fused_layer.cc): `in` and `out` as the nodes hand them over (evaluated, float32).
#pragma once

#include <vector>

#include "mlx/mlx.h"

namespace qwen3_mlx {

namespace mx = mlx::core;

// in: x [..., D], weight [D] (fused_cpu.cc).
void rms_norm_rows(const std::vector<mx::array>& in, mx::array& out, float eps);
// in: gate, up of one shape.
void swiglu_rows(const std::vector<mx::array>& in, mx::array& out);
// Whether the RoPE kernels take these start positions (int32, one or one per batch row) and
// wavelengths (float32, one per pair) (fused_rope.cc).
bool positions_fit(const mx::array& offsets, int batch, const mx::array* freqs, int half);
// in: x [B, T, H·D], offsets, weight [D], freqs (optional) → out [B, H, T, D].
void norm_rope_rows(const std::vector<mx::array>& in, mx::array& out, float eps, float base, float factor);
// in: q [B, Hq, L, D], k, v [B, Hkv, S, D] → y as fused_attention lays it out (fused_attention.cc).
void attend(const std::vector<mx::array>& in, float* y, bool merged_heads, float scale, bool causal);

}  // namespace qwen3_mlx
