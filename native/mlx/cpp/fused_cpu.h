// Fused float32 CPU kernels. MLX's CPU backend has no kernels of its own for rms_norm, RoPE
// or attention: mlx::core::fast falls back to graphs of 7–20 small ops each, about 110 graph
// nodes per decoder layer in all (≈ 35 with these kernels), and on small models evaluating
// those nodes costs more than the arithmetic. Each builder below returns one node instead,
// or nothing when its case is not covered (another device or dtype, a partial or
// traditional RoPE, a mask array); the caller then uses MLX's own op.
#pragma once

#include <optional>

#include "mlx/mlx.h"

namespace qwen3_mlx {

namespace mx = mlx::core;

// Whether this thread builds the fused kernels (default on; off with QWEN3_FUSED_CPU=0).
// Returns the previous setting; tests turn it off to build MLX's graphs for reference.
bool set_fused_cpu(bool on);
bool fused_cpu_enabled();

// x: [..., D]; weight: [D]. MLX's rms_norm: x / sqrt(mean(x²) + eps) · weight.
std::optional<mx::array> fused_rms_norm(const mx::array& x, const mx::array& weight, float eps);

// x: [B, H, T, D], rotated over all `dims` == D in non-traditional halves; offsets: int32
// [1] or [B], the position of token 0 of each row; freqs (float32 [D/2], optional): each
// pair's wavelength in place of base^(2i/D), as mx::fast::rope takes them.
std::optional<mx::array> fused_rope(const mx::array& x, int dims, bool traditional, float base, float scale,
                                    const mx::array& offsets, const mx::array* freqs = nullptr);

// x: [B, T, H·D] (a projection's output), weight: [D] → [B, H, T, D]: each head
// rms_norm'd with `weight`, times `factor`, then rotated as fused_rope does (scale 1): the
// reshape, norm, transpose and RoPE of q and k in one node.
std::optional<mx::array> fused_norm_rope(const mx::array& x, const mx::array& weight, float eps, int heads, float base,
                                         const mx::array& offsets, const mx::array* freqs, float factor);

// q: [B, Hq, L, D], k and v: [B, Hkv, S, D] with Hq a multiple of Hkv, L ≤ S. Causal: query
// t sees keys ..S - L + t. Up to kFusedAttentionQueries queries run as dot products, more
// through BLAS sgemm. The output is [B, Hq, L, D], or with `merged_heads` [B, L, Hq·D] (the
// heads side by side, as the output projection takes them: no transpose and copy after).
constexpr int kFusedAttentionQueries = 8;
std::optional<mx::array> fused_attention(const mx::array& q, const mx::array& k, const mx::array& v, float scale,
                                         bool causal, bool merged_heads = false);

// Logits [B, V] with every token outside row's nucleus set to -inf: a token stays while
// the probability of the tokens more likely than it is below p (ties: lower id first).
std::optional<mx::array> fused_top_p(const mx::array& logits, float p);

// silu(gate) · up, element-wise, same shapes.
std::optional<mx::array> fused_swiglu(const mx::array& gate, const mx::array& up);

}  // namespace qwen3_mlx
