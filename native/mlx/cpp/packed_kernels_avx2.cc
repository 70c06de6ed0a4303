// packed_kernels.inc for AVX2 + FMA (8 lanes); build.rs compiles this file alone with
// -mavx2 -mfma -mf16c. Only packed_isa() calls into it, after asking the CPU.
#include "mlx/cpp/packed_kernels.h"

#if defined(__x86_64__) && defined(__AVX2__)
#define QWEN3_LANES 8
#include "mlx/cpp/packed_kernels.inc"

namespace qwen3_mlx {
namespace {
constexpr PackedIsa kIsa{"avx2", L, kRowBlock, supports, prepare_rows, rows_times, dequantize_rows};
}
const PackedIsa* packed_isa_avx2() { return &kIsa; }
}  // namespace qwen3_mlx
#else
namespace qwen3_mlx {
const PackedIsa* packed_isa_avx2() { return nullptr; }
}  // namespace qwen3_mlx
#endif
