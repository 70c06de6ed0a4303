// The cblas functions of the BLAS that libmlx links (OpenBLAS, or Accelerate on macOS).
#pragma once

namespace qwen3_mlx {

constexpr int kRowMajor = 101;
constexpr int kNoTrans = 111;
constexpr int kTrans = 112;

// cblas_sgemv(order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy)
using Sgemv = void (*)(int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
// cblas_sgemm(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
using Sgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);

// Null when there is none.
Sgemv blas_sgemv();
Sgemm blas_sgemm();

}  // namespace qwen3_mlx
