// packed_kernels.inc for AVX-512 (16 lanes); build.rs compiles this file alone with
// -mavx512f -mavx512bw -mavx512vl -mavx2 -mfma -mf16c. Only packed_isa() calls into it,
// after asking the CPU.
#include "mlx/cpp/packed_kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__)
#define QWEN3_LANES 16
#include "mlx/cpp/packed_kernels.inc"

namespace qwen3_mlx {
namespace {
constexpr PackedIsa kIsa{"avx512", L, kRowBlock, supports, prepare_rows, rows_times, dequantize_rows};
}
const PackedIsa* packed_isa_avx512() { return &kIsa; }
}  // namespace qwen3_mlx
#else
namespace qwen3_mlx {
const PackedIsa* packed_isa_avx512() { return nullptr; }
}  // namespace qwen3_mlx
#endif
