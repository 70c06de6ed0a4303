// Products of float32 rows with weights kept as the checkpoint stores them: MLX's affine
// quantization (2, 4 or 8 bits packed little-endian into uint32, a scale and a bias per
// group of 32/64/128) or bfloat16/float16. The same source (packed_kernels.inc) is
// compiled once per instruction set; `packed_isa()` picks the best one this CPU runs.
#pragma once

#include <cstdint>

namespace qwen3_mlx {

// The element type of a stored weight, scale or bias.
enum class Stored : int { F32 = 0, BF16 = 1, F16 = 2 };

// y[r, j] = Σ_c x[r, c] · W[j, c] for the rows of x, over output features [j0, j1).
struct PackedProduct {
  // Input rows: as given for dequantize_rows; for rows_times, in prepare_rows' layout.
  const float* x;
  const float* x_group_sums;  // [rows, k / group]: Σ x over each group (affine only)
  int rows;
  // Affine: w is [n, k·bits/8] bytes; scales and biases [n, k / group].
  // Half: w is [n, k] of `type`; scales and biases unused.
  const uint8_t* w;
  const void* scales;
  const void* biases;
  Stored type;  // the scales' and biases' type (affine), or the weights' (half)
  int bits;     // 0 for half weights
  int group;
  int64_t n, k;
  float* y;  // [rows, n]
};

// One instruction set's kernels.
struct PackedIsa {
  const char* name;
  int lanes;
  int row_block;  // input rows rows_times takes at a time
  // Whether rows_times handles this layout (bits 0 = half weights).
  bool (*supports)(int bits, int group);
  // x [rows, k] (row-contiguous) → `out` as the kernels read it, and the group sums
  // (affine). Each row's values go in the order the decoder produces them (bfloat16: even
  // and odd values apart); rows go in blocks of `block`, whose L-value vectors lie side by
  // side: value c of row b·block + r at out[b·block·K + (c - c % L)·R + r·L + c % L], with
  // K = k rounded up to a multiple of L and R the rows of that block. rows_times takes
  // blocks of row_block; block 1 gives rows K floats apart (for sgemm).
  void (*prepare_rows)(const float* x, int rows, int64_t k, int bits, int group, Stored type, int block, float* out,
                       float* group_sums);
  // Any number of rows times weight rows [j0, j1), kPackedRowsMax rows at a time at most.
  void (*rows_times)(const PackedProduct& p, int64_t j0, int64_t j1);
  // Weight rows [j0, j1) as float32 into out[(j - j0) · k + ·]: for the layouts
  // `supports` takes, in prepare_rows' column order (rows of x prepared the same way give
  // the same product); otherwise, and for half weights, in natural order (any bits 1..8).
  void (*dequantize_rows)(const PackedProduct& p, int64_t j0, int64_t j1, float* out);
};

constexpr int kPackedRowsMax = 8;

// The best this CPU runs: AVX-512, AVX2 + FMA, or portable C++.
const PackedIsa& packed_isa();
// The portable one (also the reference the tests compare the others with).
const PackedIsa& packed_isa_portable();
// The kernels for `bits`/`group` on this CPU: the best that supports them, or null.
const PackedIsa* packed_isa_for(int bits, int group);

// Whether this CPU can run `isa`.
bool packed_isa_runs(const PackedIsa& isa);

// The three builds (packed_kernels_{avx512,avx2,portable}.cc); the first two are null
// where the compiler cannot target them.
const PackedIsa* packed_isa_avx512();
const PackedIsa* packed_isa_avx2();

}  // namespace qwen3_mlx
