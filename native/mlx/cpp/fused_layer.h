// A whole dense Qwen3 decoder layer as one CPU node, for up to kFusedAttentionQueries tokens
// per row with affine-packed weights (fused_layer.cc).
#pragma once

#include <optional>
#include <vector>

#include "mlx/cpp/fused_cpu.h"

namespace qwen3_mlx {

struct FusedLayerParams {
  float eps;     // every rms_norm's
  float base;    // RoPE's, unless freqs are given
  float factor;  // YaRN's factor on the normed q and k (1: none)
  float scale;   // attention's, head_dim^-0.5
  int heads, kv_heads;
  int slot;  // the cache slot of the first new token (its position is in the positions vector)
  int bits, group;
  bool int8;       // products through the int8 kernels where packed_affine_linears would take them
  bool has_freqs;  // vectors[5] holds RoPE's wavelengths
};

// x [B, L, hidden] → {y, keys', values'}: the layer's output [B, L, hidden], and the cache
// buffers `keys` and `values` ([B, kv_heads, slots, D], float32 or float16) into which the
// node writes the L new tokens' keys and values in place at `slot`, as arrays that come
// after the write. vectors: input norm, q norm, k norm, post-attention norm, positions
// (int32 [1] or [B]), freqs; matrices: weight, scales and biases of q, k, v, o, gate, up,
// down. The node holds the norms, freqs and matrices (loaded arrays) itself: its graph
// inputs are x, the positions and the two buffers. nullopt where it
// does not apply (another device or dtype, more tokens, shapes or layouts it does not take):
// the caller builds the layer op by op.
std::optional<std::vector<mx::array>> fused_decoder_layer(const mx::array& x, const std::vector<mx::array>& vectors,
                                                          const mx::array& keys, const mx::array& values,
                                                          const std::vector<mx::array>& matrices,
                                                          const FusedLayerParams& p);

// One layer of a stack: its vectors (as above, the positions the same array for all) and
// matrices, and its cache's buffers.
struct StackLayer {
  std::vector<mx::array> vectors;
  mx::array keys, values;
  std::vector<mx::array> matrices;
};

// Consecutive layers as one node, for a decode step: x → {y, then each layer's keys' and
// values'}, each layer as fused_decoder_layer runs it, their caches at one slot (p.slot).
// Between the layers a step has no hand-offs on the CPU stream and few nodes to build.
std::optional<std::vector<mx::array>> fused_decoder_stack(const mx::array& x, const std::vector<StackLayer>& layers,
                                                          const FusedLayerParams& p);

// Whether this thread builds the layer as one node (default on; tests turn it off to build
// the same layer op by op). Returns the previous setting.
bool set_fused_layer(bool on);
bool fused_layer_applies();

}  // namespace qwen3_mlx
