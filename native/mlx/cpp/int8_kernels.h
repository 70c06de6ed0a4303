// Products of float32 rows with 4/8-bit affine weights through integer dot products: each
// row is quantized to int8 per weight group (scale = max|x| / 127, round to nearest), and
// AVX-512 VNNI multiplies the packed weights' unsigned values with those bytes, 64 at a
// time, into int32 sums that are scaled back per group. What it gives up against the float
// kernels (packed_kernels.h) is the rounding of x: |Δy[r, j]| ≤ Σ_c |W[j, c]| · sx[r, g(c)] / 2,
// sx the row's scale in c's group. It is chosen per model (`activations: :int8`), never
// behind the user's back.
#pragma once

#include <cstdint>

#include "mlx/cpp/packed_kernels.h"

namespace qwen3_mlx {

// A weight row is read 64 bytes at a time; a lane of the int32 sums covers 4 bytes of it.
constexpr int kInt8Lanes = 16;

// Rows of x prepared for int8_rows_times.
struct Int8Rows {
  const int8_t* q;            // [rows, k]: in the order the weight bytes are read
  const float* group_scales;  // [rows, k / group]: sx of each group
  const float* group_sums;    // [rows, k / group]: Σ x over each group, from float x
  int rows;
};

// Whether this CPU runs the kernels (AVX-512 F/BW/VL + VNNI) and they take this layout:
// 4 or 8 bits, groups of 32/64/128, k a multiple of 64 bytes' values and of the group,
// and no more than kInt8MaxGroups groups per row.
bool int8_cpu_runs();
bool int8_supported(int bits, int group, int64_t k);
constexpr int64_t kInt8MaxGroups = 1024;

// x [rows, k] (row-contiguous float32) → q, group scales and group sums for those rows.
void int8_prepare(const float* x, int rows, int64_t k, int bits, int group, int8_t* q, float* group_scales,
                  float* group_sums);

// y[r, j] for weight rows [j0, j1) and all of xs's rows (p.x and p.x_group_sums unused).
void int8_rows_times(const PackedProduct& p, const Int8Rows& xs, int64_t j0, int64_t j1);

// The same for many rows (int8_tiles.cc): weight rows 16 at a time copied into `tile`, a
// buffer of int8_tile_bytes, then every row of xs against them.
int64_t int8_tile_bytes(int bits, int group, int64_t k);
void int8_tile_rows_times(const PackedProduct& p, const Int8Rows& xs, int64_t j0, int64_t j1, void* tile);

}  // namespace qwen3_mlx
