// packed_kernels.inc for any CPU (4 lanes: SSE2 on x86-64, NEON on arm64), and the choice
// among the builds this CPU can run.
#define QWEN3_LANES 4
#include "mlx/cpp/packed_kernels.inc"

namespace qwen3_mlx {
namespace {
constexpr PackedIsa kIsa{"portable", L, kRowBlock, supports, prepare_rows, rows_times, dequantize_rows};

bool cpu_runs(const char* isa) {
#if defined(__x86_64__)
  if (isa[4] == '5')  // avx512
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
  (void)isa;
  return false;
#endif
}

// Best first.
const PackedIsa* runnable(int i) {
  static const PackedIsa* const order[] = {
      cpu_runs("avx512") ? packed_isa_avx512() : nullptr,
      cpu_runs("avx2") ? packed_isa_avx2() : nullptr,
      &kIsa,
  };
  return order[i];
}
}  // namespace

const PackedIsa& packed_isa_portable() { return kIsa; }

bool packed_isa_runs(const PackedIsa& isa) {
  for (int i = 0; i < 3; ++i)
    if (runnable(i) == &isa) return true;
  return false;
}

const PackedIsa& packed_isa() {
  for (int i = 0;; ++i)
    if (const PackedIsa* isa = runnable(i)) return *isa;
}

const PackedIsa* packed_isa_for(int bits, int group) {
  for (int i = 0; i < 3; ++i)
    if (const PackedIsa* isa = runnable(i); isa && isa->supports(bits, group)) return isa;
  return nullptr;
}

}  // namespace qwen3_mlx
