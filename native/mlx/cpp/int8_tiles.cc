// int8_kernels.h's products for many rows (prefill). The row kernels (int8_kernels.cc)
// turn every 64-byte run of a weight row into float once per input row, since its lanes
// hold different groups: a permute and 2 float operations beside 2 VNNI ones. Here 16
// weight rows are first copied into a small tile, interleaved 4 bytes at a time, so that
// lane u of a vector is weight row u: a lane then keeps one group's integer sum over the
// whole group, for every input row, and goes to float once per group. Built like
// int8_kernels.cc (alone, AVX-512 VNNI flags, nothing inline from the standard library).
#include <cstring>

#include "mlx/cpp/int8_kernels.h"
#include "mlx/cpp/stored_values.inc"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512VNNI__) && defined(__AVX512BW__)
#include <immintrin.h>
#define QWEN3_INT8 1
#endif

namespace qwen3_mlx {

namespace {

// Weight rows per tile: one int32 lane each.
constexpr int kTileRows = kInt8Lanes;
// Input rows per pass over a tile: their sums stay in registers.
constexpr int kTilePassRows = 8;

}  // namespace

int64_t int8_tile_bytes(int bits, int group, int64_t k) {
  return kTileRows * (k * bits / 8 + 2 * static_cast<int64_t>(sizeof(float)) * (k / group));
}

#ifdef QWEN3_INT8

namespace {

inline int64_t smaller(int64_t a, int64_t b) { return a < b ? a : b; }

// out[16·s + u] = r[u] word s: 16 rows of 16 words transposed. Pairs of rows interleave
// words, then pairs of words; four rows' words 4L + i then sit in lane L of one vector,
// and the 128-bit lanes are transposed last.
inline void transpose_16x16(const __m512i* r, uint32_t* out) {
  __m512i t[kTileRows], v[kTileRows];
  for (int u = 0; u < kTileRows; u += 2) {
    t[u] = _mm512_unpacklo_epi32(r[u], r[u + 1]);
    t[u + 1] = _mm512_unpackhi_epi32(r[u], r[u + 1]);
  }
  for (int u = 0; u < kTileRows; u += 4) {
    v[u] = _mm512_unpacklo_epi64(t[u], t[u + 2]);
    v[u + 1] = _mm512_unpackhi_epi64(t[u], t[u + 2]);
    v[u + 2] = _mm512_unpacklo_epi64(t[u + 1], t[u + 3]);
    v[u + 3] = _mm512_unpackhi_epi64(t[u + 1], t[u + 3]);
  }
  // v[4G + i], lane L: rows 4G .. 4G + 3, word 4L + i.
  for (int i = 0; i < 4; ++i) {
    const __m512i ab_lo = _mm512_shuffle_i32x4(v[i], v[4 + i], 0x44), ab_hi = _mm512_shuffle_i32x4(v[i], v[4 + i], 0xee);
    const __m512i cd_lo = _mm512_shuffle_i32x4(v[8 + i], v[12 + i], 0x44),
                  cd_hi = _mm512_shuffle_i32x4(v[8 + i], v[12 + i], 0xee);
    _mm512_storeu_si512(out + (0 + i) * kTileRows, _mm512_shuffle_i32x4(ab_lo, cd_lo, 0x88));
    _mm512_storeu_si512(out + (4 + i) * kTileRows, _mm512_shuffle_i32x4(ab_lo, cd_lo, 0xdd));
    _mm512_storeu_si512(out + (8 + i) * kTileRows, _mm512_shuffle_i32x4(ab_hi, cd_hi, 0x88));
    _mm512_storeu_si512(out + (12 + i) * kTileRows, _mm512_shuffle_i32x4(ab_hi, cd_hi, 0xdd));
  }
}

// A tile: weight rows j .. j + m (m ≤ 16, missing rows zero), as [step][16] 4-byte words
// (a step is one word of every row: 8 values at 4 bits, 4 at 8), then their scales and
// biases as [group][16] float32.
struct Tile {
  const uint32_t* words;
  const float* scales;
  const float* biases;
};

Tile fill_tile(const PackedProduct& p, int64_t j, int64_t m, void* buffer) {
  const int64_t steps = p.k * p.bits / 32, groups = p.k / p.group;
  auto* words = static_cast<uint32_t*>(buffer);
  auto* scales = reinterpret_cast<float*>(words + steps * kTileRows);
  float* biases = scales + groups * kTileRows;
  // 16 words of each row at a time (a 64-byte line), transposed in registers. Steps
  // come in multiples of 16: int8_supported takes whole 64-byte runs.
  for (int64_t s0 = 0; s0 < steps; s0 += kTileRows) {
    __m512i r[kTileRows];
    for (int64_t u = 0; u < kTileRows; ++u)
      r[u] = u < m ? _mm512_loadu_si512(p.w + (j + u) * steps * 4 + 4 * s0) : _mm512_setzero_si512();
    transpose_16x16(r, words + s0 * kTileRows);
  }
  for (int64_t u = 0; u < kTileRows; ++u) {
    if (u < m) {
      for (int64_t g = 0; g < groups; ++g) {
        scales[g * kTileRows + u] = stored_at(p.scales, p.type, (j + u) * groups + g);
        biases[g * kTileRows + u] = stored_at(p.biases, p.type, (j + u) * groups + g);
      }
    } else {
      for (int64_t g = 0; g < groups; ++g) scales[g * kTileRows + u] = biases[g * kTileRows + u] = 0.0f;
    }
  }
  return {words, scales, biases};
}

inline __m512i broadcast_word(const int8_t* at) {
  int32_t v;
  memcpy(&v, at, sizeof v);
  return _mm512_set1_epi32(v);
}

// Input rows r0 .. r0 + R times a tile's 16 weight rows, into y[r, j .. j + m].
//
// int8_prepare orders each 64-byte run's values for the row kernels: at 4 bits, 64 bytes of
// even columns then 64 of odd ones, so step s (columns 8s .. 8s + 7: low nibbles even, high
// odd) finds its even word at run·128 + 4·(s mod 16) and its odd word 64 bytes on. At 8 bits
// the values are in order.
template <int B, int G, int R>
void pass(const PackedProduct& p, const Int8Rows& xs, const Tile& t, int r0, int64_t j, int64_t m) {
  constexpr int64_t steps_per_group = G * B / 32;
  const int64_t k = p.k, groups = k / G;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const int8_t* x = xs.q + r0 * k;
  __m512 total[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) total[r] = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    __m512i acc[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_si512();
    const uint32_t* words = t.words + g * steps_per_group * kTileRows;
#pragma GCC unroll 16
    for (int64_t i = 0; i < steps_per_group; ++i) {
      const uint64_t s = static_cast<uint64_t>(g * steps_per_group + i);
      const __m512i w = _mm512_loadu_si512(words + i * kTileRows);
      if constexpr (B == 4) {
        const __m512i lo = _mm512_and_si512(w, low4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), low4);
        const int8_t* at = x + (s >> 4) * 128 + 4 * (s & 15);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          acc[r] = _mm512_dpbusd_epi32(acc[r], lo, broadcast_word(at + r * k));
          acc[r] = _mm512_dpbusd_epi32(acc[r], hi, broadcast_word(at + r * k + 64));
        }
      } else {
        const int8_t* at = x + 4 * s;
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) acc[r] = _mm512_dpbusd_epi32(acc[r], w, broadcast_word(at + r * k));
      }
    }
    const __m512 sw = _mm512_loadu_ps(t.scales + g * kTileRows), bias = _mm512_loadu_ps(t.biases + g * kTileRows);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 sx = _mm512_set1_ps(xs.group_scales[(r0 + r) * groups + g]);
      total[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r]), _mm512_mul_ps(sw, sx), total[r]);
      total[r] = _mm512_fmadd_ps(bias, _mm512_set1_ps(xs.group_sums[(r0 + r) * groups + g]), total[r]);
    }
  }
  const __mmask16 keep = static_cast<__mmask16>((1u << m) - 1);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(p.y + (r0 + r) * p.n + j, keep, total[r]);
}

template <int B, int G>
void passes(const PackedProduct& p, const Int8Rows& xs, const Tile& t, int64_t j, int64_t m) {
  int r = 0;
  for (; r + kTilePassRows <= xs.rows; r += kTilePassRows) pass<B, G, kTilePassRows>(p, xs, t, r, j, m);
  switch (xs.rows - r) {
    case 1: return pass<B, G, 1>(p, xs, t, r, j, m);
    case 2: return pass<B, G, 2>(p, xs, t, r, j, m);
    case 3: return pass<B, G, 3>(p, xs, t, r, j, m);
    case 4: return pass<B, G, 4>(p, xs, t, r, j, m);
    case 5: return pass<B, G, 5>(p, xs, t, r, j, m);
    case 6: return pass<B, G, 6>(p, xs, t, r, j, m);
    case 7: return pass<B, G, 7>(p, xs, t, r, j, m);
    default: return;
  }
}

template <int B>
void passes(const PackedProduct& p, const Int8Rows& xs, const Tile& t, int64_t j, int64_t m) {
  switch (p.group) {
    case 32: return passes<B, 32>(p, xs, t, j, m);
    case 64: return passes<B, 64>(p, xs, t, j, m);
    case 128: return passes<B, 128>(p, xs, t, j, m);
    default: return;
  }
}

}  // namespace

void int8_tile_rows_times(const PackedProduct& p, const Int8Rows& xs, int64_t j0, int64_t j1, void* buffer) {
  const int64_t row_bytes = p.k * p.bits / 8;
  for (int64_t j = j0; j < j1; j += kTileRows) {
    const int64_t m = smaller(kTileRows, j1 - j);
    const Tile t = fill_tile(p, j, m, buffer);
    // The next tile's weights on their way to the core's cache while this one is used:
    // copied straight from memory, each row waited on its lines.
    const int64_t rows = smaller(kTileRows, j1 - j - kTileRows);
    for (int64_t b = 0; b < rows * row_bytes; b += 64) __builtin_prefetch(p.w + (j + kTileRows) * row_bytes + b, 0, 2);
    prefetch_scales_biases<2>(p, j + kTileRows, rows);
    if (p.bits == 4) passes<4>(p, xs, t, j, m);
    if (p.bits == 8) passes<8>(p, xs, t, j, m);
  }
}

#else  // not built for VNNI: never runs

void int8_tile_rows_times(const PackedProduct&, const Int8Rows&, int64_t, int64_t, void*) {}

#endif

}  // namespace qwen3_mlx
