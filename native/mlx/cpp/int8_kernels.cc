// int8_kernels.h for AVX-512 VNNI. build.rs compiles this file alone with
// -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mf16c; only callers that asked
// int8_cpu_runs() reach the kernels. Like packed_kernels.inc it calls nothing inline from
// the standard library, so no AVX-512 copy of a shared function can reach other callers.
//
// A weight row is read 64 bytes (a "chunk") at a time. For 4 bits the low nibbles of those
// bytes are even columns and the high nibbles odd ones, so int8_prepare stores each chunk's
// 128 activations as 64 even-column bytes then 64 odd-column bytes; 8 bits are in order.
// Lane l of a VNNI sum covers the chunk's bytes 4l .. 4l+3: columns of one group, since
// groups are ≥ 32 columns and chunks hold whole groups (or, 8-bit in 128s, half of one).
#include "mlx/cpp/int8_kernels.h"

#include <cstring>

#include "mlx/cpp/stored_values.inc"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512VNNI__) && defined(__AVX512BW__)
#include <immintrin.h>
#define QWEN3_INT8 1
#endif

namespace qwen3_mlx {

bool int8_supported(int bits, int group, int64_t k) {
  if ((bits != 4 && bits != 8) || (group != 32 && group != 64 && group != 128)) return false;
  const int64_t values = 512 / bits;
  return k > 0 && k % values == 0 && k % group == 0 && k / group <= kInt8MaxGroups;
}

#ifdef QWEN3_INT8

bool int8_cpu_runs() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
         __builtin_cpu_supports("f16c");
}

namespace {

inline int64_t smaller(int64_t a, int64_t b) { return a < b ? a : b; }

// Elements i .. i + 16 of a stored array of type T as float32; those at or past `end` are 0.
template <Stored T>
inline __m512 load16(const void* base, int64_t i, int64_t end) {
  const int64_t left = end - i;
  const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1);
  if constexpr (T == Stored::F32) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(base) + i);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(base) + i);
    if constexpr (T == Stored::F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

// One row: per-group scales and sums, and the int8 values in chunk order.
void prepare_row(const float* x, int64_t k, int bits, int group, int8_t* q, float* scale, float* sums) {
  const int64_t groups = k / group, values = 512 / bits, chunks = k / values;
  float inverse[kInt8MaxGroups];
  for (int64_t g = 0; g < groups; ++g) {
    __m512 top = _mm512_setzero_ps(), sum = _mm512_setzero_ps();
    for (int64_t c = g * group; c < (g + 1) * group; c += 16) {
      const __m512 v = _mm512_loadu_ps(x + c);
      top = _mm512_max_ps(top, _mm512_abs_ps(v));
      sum = _mm512_add_ps(sum, v);
    }
    const float m = _mm512_reduce_max_ps(top);
    scale[g] = m / 127.0f;
    inverse[g] = m > 0.0f ? 127.0f / m : 0.0f;
    sums[g] = _mm512_reduce_add_ps(sum);
  }
  alignas(64) int8_t natural[128];
  for (int64_t ch = 0; ch < chunks; ++ch) {
    const int64_t c0 = ch * values;
    int8_t* out = bits == 8 ? q + c0 : natural;
    for (int64_t c = 0; c < values; c += 16) {
      const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + c0 + c), _mm512_set1_ps(inverse[(c0 + c) / group]));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + c), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(v)));
    }
    if (bits == 4) {
      for (int b = 0; b < 64; ++b) {
        q[c0 + b] = natural[2 * b];
        q[c0 + 64 + b] = natural[2 * b + 1];
      }
    }
  }
}

// Each lane's group, counted from the chunk's first group: lane · (values per lane) / group,
// by a shift (groups are 32, 64 or 128): sixteen divisions for each weight row held a fifth
// of a 4-bit product's samples, AMD EPYC Zen 4.
inline __m512i lane_groups(int bits, int log_group) {
  const __m512i lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  return _mm512_srlv_epi32(_mm512_mullo_epi32(lanes, _mm512_set1_epi32(512 / bits / kInt8Lanes)),
                           _mm512_set1_epi32(log_group));
}

// What every weight row of a product shares, worked out once per product: it takes divisions.
struct RowPlan {
  int64_t groups, row_bytes, ahead, ahead_rows;  // ahead: bytes prefetched ahead, whole rows
  int log_g;                                     // groups are 32, 64 or 128
  __m512i rel;                                   // lane_groups
};

template <int B>
RowPlan row_plan(const PackedProduct& p) {
  RowPlan plan;
  plan.groups = p.k / p.group;
  plan.row_bytes = p.k * B / 8;
  // Whole rows about 8 KiB ahead (the best of 2–32 KiB on 0.6B shapes).
  plan.ahead_rows = ((int64_t{8} << 10) + plan.row_bytes - 1) / plan.row_bytes;
  plan.ahead = plan.ahead_rows * plan.row_bytes;
  plan.log_g = __builtin_ctzll(static_cast<uint64_t>(p.group));
  plan.rel = lane_groups(B, plan.log_g);
  return plan;
}

// R input rows times weight row j. One weight row at a time, so that the weights are read
// in order: reading 4 rows side by side (as 4 streams, 512 bytes apart at 0.6B's 4-bit
// rows) halved what one core read, AMD EPYC Zen 4 (11 against 25 GB/s).
template <int B, Stored T, int R>
void row_times(const PackedProduct& p, const Int8Rows& xs, const RowPlan& plan, int64_t j) {
  constexpr int64_t values = 512 / B;
  const int64_t k = p.k, G = p.group, groups = plan.groups, chunks = k / values, ahead = plan.ahead;
  const int log_g = plan.log_g;
  const __m512i rel = plan.rel, low4 = _mm512_set1_epi8(0x0f);
  // The biases' part, Σ_g bias · Σ_{c∈g} x, starts the sums (lanes are added up at the end).
  __m512 total[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    total[r] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; g += kInt8Lanes)
      total[r] = _mm512_fmadd_ps(load16<T>(p.biases, j * groups + g, (j + 1) * groups),
                                 load16<Stored::F32>(xs.group_sums, r * groups + g, (r + 1) * groups), total[r]);
  }
  const uint8_t* w = p.w + j * plan.row_bytes;
  prefetch_scales_biases(p, j + plan.ahead_rows, 1);
  // The products of the weights' and x's scales 16 groups at a time, in registers (one
  // multiply per 16 groups, not one per 64 bytes); a lane's is picked by index.
  const int64_t chunks_per_16 = kInt8Lanes * G / values;
  for (int64_t g16 = 0; g16 < groups; g16 += kInt8Lanes) {
    const __m512 sw = load16<T>(p.scales, j * groups + g16, (j + 1) * groups);
    __m512 scale[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
      scale[r] = _mm512_mul_ps(sw, load16<Stored::F32>(xs.group_scales, r * groups + g16, (r + 1) * groups));
    const int64_t first = g16 * G / values;
    for (int64_t ch = first; ch < smaller(chunks, first + chunks_per_16); ++ch) {
      // ch · values / G by a shift: a division here cost more than the products.
      const __m512i lane_group = _mm512_add_epi32(rel, _mm512_set1_epi32(static_cast<int>(((ch * values) >> log_g) - g16)));
      const uint8_t* wc = w + ch * 64;
      // The line 8 KiB on: the hardware prefetcher stops at 4 KiB pages.
      fetch_streamed(wc + ahead);
      const __m512i packed = _mm512_loadu_si512(wc);
      __m512i lo = packed, hi = packed;
      if constexpr (B == 4) {
        lo = _mm512_and_si512(packed, low4);
        hi = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low4);
      }
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const int8_t* xq = xs.q + r * k + ch * values;
        __m512i acc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(xq));
        if constexpr (B == 4) acc = _mm512_dpbusd_epi32(acc, hi, _mm512_loadu_si512(xq + 64));
        total[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_permutexvar_ps(lane_group, scale[r]), total[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) p.y[r * p.n + j] = _mm512_reduce_add_ps(total[r]);
}

template <int B, Stored T, int R>
void run_rows(const PackedProduct& p, const Int8Rows& xs, int64_t j0, int64_t j1) {
  const RowPlan plan = row_plan<B>(p);
  for (int64_t j = j0; j < j1; ++j) row_times<B, T, R>(p, xs, plan, j);
}

template <int B, Stored T>
void run_any_rows(const PackedProduct& p, const Int8Rows& xs, int64_t j0, int64_t j1) {
  switch (xs.rows) {
    case 1: return run_rows<B, T, 1>(p, xs, j0, j1);
    case 2: return run_rows<B, T, 2>(p, xs, j0, j1);
    case 3: return run_rows<B, T, 3>(p, xs, j0, j1);
    case 4: return run_rows<B, T, 4>(p, xs, j0, j1);
    case 5: return run_rows<B, T, 5>(p, xs, j0, j1);
    case 6: return run_rows<B, T, 6>(p, xs, j0, j1);
    case 7: return run_rows<B, T, 7>(p, xs, j0, j1);
    case 8: return run_rows<B, T, 8>(p, xs, j0, j1);
    default: return;
  }
}

template <int B>
void run_typed(const PackedProduct& p, const Int8Rows& xs, int64_t j0, int64_t j1) {
  switch (p.type) {
    case Stored::F32: return run_any_rows<B, Stored::F32>(p, xs, j0, j1);
    case Stored::BF16: return run_any_rows<B, Stored::BF16>(p, xs, j0, j1);
    case Stored::F16: return run_any_rows<B, Stored::F16>(p, xs, j0, j1);
  }
}

}  // namespace

void int8_prepare(const float* x, int rows, int64_t k, int bits, int group, int8_t* q, float* group_scales,
                  float* group_sums) {
  const int64_t groups = k / group;
  for (int r = 0; r < rows; ++r)
    prepare_row(x + r * k, k, bits, group, q + r * k, group_scales + r * groups, group_sums + r * groups);
}

void int8_rows_times(const PackedProduct& p, const Int8Rows& all, int64_t j0, int64_t j1) {
  const int64_t groups = p.k / p.group;
  for (int r0 = 0; r0 < all.rows; r0 += kPackedRowsMax) {
    Int8Rows xs{all.q + r0 * p.k, all.group_scales + r0 * groups, all.group_sums + r0 * groups,
                static_cast<int>(smaller(kPackedRowsMax, all.rows - r0))};
    PackedProduct block = p;
    block.y = p.y + r0 * p.n;
    if (p.bits == 4) run_typed<4>(block, xs, j0, j1);
    if (p.bits == 8) run_typed<8>(block, xs, j0, j1);
  }
}

#else  // not built for VNNI: never runs

bool int8_cpu_runs() { return false; }
void int8_prepare(const float*, int, int64_t, int, int, int8_t*, float*, float*) {}
void int8_rows_times(const PackedProduct&, const Int8Rows&, int64_t, int64_t) {}

#endif

}  // namespace qwen3_mlx
