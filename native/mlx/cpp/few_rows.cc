// A few rows times a transposed weight matrix, for batched decode steps on the CPU. With
// 2–8 rows OpenBLAS (0.3.21) sgemm reads the weights at 4–6 GB/s; this kernel streams each
// weight row once and multiplies it with every input row while it is in cache (151,936 ×
// 1,024: 4 rows in 70 ms against sgemm's 139). Large weights are split across threads.
#include "mlx/cpp/few_rows.h"

#include "mlx/cpp/thread_pool.h"
#include "mlx/cpp/vector_math.h"

#include <algorithm>
#include <thread>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace qwen3_mlx {
namespace {

#if defined(__x86_64__)
// Weight rows j..j+Ws times every input row. An FMA waits ~4 cycles for its accumulator,
// so there must be ≥ 8 independent ones: with few input rows, several weight rows go
// together. Fully unrolled, so the accumulators live in registers.
template <int Rows, int Ws>
__attribute__((target("avx2,fma"))) inline void block(const float* x, const float* w, int n, int k, float* y,
                                                      int j) {
  const int body = k - k % 8;
  __m256 acc[Ws][Rows];
#pragma GCC unroll 8
  for (int u = 0; u < Ws; ++u)
#pragma GCC unroll 8
    for (int r = 0; r < Rows; ++r) acc[u][r] = _mm256_setzero_ps();
  for (int c = 0; c < body; c += 8) {
#pragma GCC unroll 8
    for (int u = 0; u < Ws; ++u) {
      const __m256 wv = _mm256_loadu_ps(w + static_cast<size_t>(j + u) * k + c);
#pragma GCC unroll 8
      for (int r = 0; r < Rows; ++r)
        acc[u][r] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + static_cast<size_t>(r) * k + c), acc[u][r]);
    }
  }
  for (int u = 0; u < Ws; ++u) {
    const float* wj = w + static_cast<size_t>(j + u) * k;
    for (int r = 0; r < Rows; ++r) {
      float sum = lanes_sum(acc[u][r]);
      for (int c = body; c < k; ++c) sum += wj[c] * x[static_cast<size_t>(r) * k + c];
      y[static_cast<size_t>(r) * n + j + u] = sum;
    }
  }
}

// Weight rows [begin, end).
template <int Rows>
__attribute__((target("avx2,fma"))) void kernel(const float* x, const float* w, int n, int k, float* y, int begin,
                                                int end) {
  constexpr int Ws = Rows == 1 ? 8 : Rows <= 2 ? 4 : Rows <= 4 ? 2 : 1;
  int j = begin;
  for (; j + Ws <= end; j += Ws) block<Rows, Ws>(x, w, n, k, y, j);
  for (; j < end; ++j) block<Rows, 1>(x, w, n, k, y, j);
}

using Kernel = void (*)(const float*, const float*, int, int, float*, int, int);

Kernel kernel_for(int rows) {
  static constexpr Kernel kernels[] = {kernel<1>, kernel<2>, kernel<3>, kernel<4>,
                                       kernel<5>, kernel<6>, kernel<7>, kernel<8>};
  return kernels[rows - 1];
}
#endif

// One thread per ~4 MiB of weights, up to the cores there are.
int threads_for(int n, int k) {
  const size_t bytes = static_cast<size_t>(n) * k * sizeof(float);
  // Asked once: glibc reads sysfs on every call.
  static const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return static_cast<int>(std::clamp<size_t>(bytes >> 22, 1, std::min(cores, 8)));
}

}  // namespace

bool cpu_has_avx2_fma() {
#if defined(__x86_64__)
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
#else
  return false;
#endif
}

bool few_rows_supported() { return cpu_has_avx2_fma(); }

void few_rows_times_matrix_t(const float* x, int rows, const float* w, int n, int k, float* y) {
#if defined(__x86_64__)
  const Kernel run = kernel_for(rows);
  // Pieces of ~1 MiB of weights on the pool's threads (thread_pool.h); under 4 MiB, one.
  const int64_t grain = threads_for(n, k) == 1 ? n : std::max<int64_t>(1, (int64_t{1} << 18) / k);
  auto piece = [&](int64_t begin, int64_t end) {
    run(x, w, n, k, y, static_cast<int>(begin), static_cast<int>(end));
  };
  parallel_for(n, grain, piece);
#else
  (void)x, (void)rows, (void)w, (void)n, (void)k, (void)y;
#endif
}

}  // namespace qwen3_mlx
