// x · Wᵀ for float32 x on the CPU with W as the checkpoint stores it, one graph node:
// affine-quantized (packed uint32 + scales + biases) or bfloat16/float16. Up to 32 rows
// (decode, batched decode, short prompts and prefill chunks) run the packed kernels, split
// across the cores; more rows (prefill) dequantize W a tile at a time into float32 for BLAS
// sgemm, so the whole float32 matrix never exists.
#pragma once

#include <optional>
#include <span>
#include <string>

#include "mlx/cpp/packed_kernels.h"
#include "mlx/mlx.h"

namespace qwen3_mlx {

namespace mx = mlx::core;

// nullopt where this does not apply (another device, x not float32, shapes that do not
// fit, bits the kernels do not take): the caller uses MLX's own op. `int8`: through the
// int8 kernels (int8_kernels.h) where this CPU runs them and they take the layout.
std::optional<mx::array> packed_affine_linear(const mx::array& x, const mx::array& w, const mx::array& scales,
                                              const mx::array& biases, int group, int bits, bool int8 = false);
std::optional<mx::array> packed_half_linear(const mx::array& x, const mx::array& w);

// Products that share x (q/k/v, gate/up): `parts` holds each matrix's weight, scales and
// biases in turn, all of one layout; one node with an output per matrix, x prepared once
// and all their rows split across the cores in one hand-out. nullopt where
// packed_affine_linear would not take each of them alike.
std::optional<std::vector<mx::array>> packed_affine_linears(const mx::array& x, const std::vector<mx::array>& parts,
                                                           int group, int bits, bool int8 = false);

// What expert_linear.cc shares: the kernels in effect on this thread for `bits`/`group`
// (null if none), the kernels' name for a dtype, one product of `rows` row-contiguous float32
// rows (all fields of `p` but x and rows set), and an input made row-contiguous (loaded
// weights already are and are used as they are: a node per product would cost more).
const PackedIsa* isa_for(int bits, int group);
std::optional<Stored> stored_type(mx::Dtype t);
void packed_rows_product(const PackedIsa& isa, PackedProduct p, const float* x, int64_t rows);
mx::array row_contiguous(const mx::array& a);

// The columns (input features) of affine weights w (packed uint32 words), with a scale and
// a bias of one stored type per group of `group`; 0 where they do not have that layout.
int64_t affine_columns(const mx::array& w, const mx::array& scales, const mx::array& biases, int group, int bits);

// Whether products of `rows` rows with these weights run the int8 kernels, as
// packed_affine_linears picks them (`int8` asked for, the CPU and layout take them).
bool int8_products_for(int bits, int group, int64_t k, int64_t rows, bool int8);

// One matrix of affine weights by address, as a product reads it: w [n, k·bits/8] bytes,
// scales and biases [n, k / group] of `type`, all row-contiguous.
struct AffineWeights {
  const void *w, *scales, *biases;
  int64_t n;
  Stored type;
};

// What one node of packed_affine_linears(x, weights…) computes, inside another node's run
// (fused_layer.cc): x row-contiguous [rows, k], ys[i] the output rows of weights[i].
void packed_products(int bits, int group, bool int8, std::span<const AffineWeights> weights, const float* x,
                     int64_t rows, int64_t k, std::span<float* const> ys);

// Whether the CPU kernels take affine weights of `bits` in groups of `group`.
bool packed_supported(int bits, int group);

// The instruction set the kernels use on this thread's graphs: "avx512", "avx2",
// "portable", or "" for the best this CPU runs. False (and unchanged) if it cannot run it.
bool set_packed_isa(const std::string& name);
// The one in use on this thread.
std::string packed_isa_name();

}  // namespace qwen3_mlx
