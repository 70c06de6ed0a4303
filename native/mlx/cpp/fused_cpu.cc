// The fused-kernel switch, and the two row-wise kernels: rms_norm and SwiGLU.
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "mlx/cpp/cpu_kernel.h"
#include "mlx/cpp/cpu_rows.h"
#include "mlx/cpp/vector_math.h"

namespace qwen3_mlx {
namespace {

bool default_on() {
  const char* v = std::getenv("QWEN3_FUSED_CPU");
  return v == nullptr || std::strcmp(v, "0") != 0;
}

thread_local bool fused_on = default_on();

}  // namespace

// Same order as MLX's fallback: normalize in float32, then scale by the weight.
void rms_norm_rows(const std::vector<mx::array>& in, mx::array& out, float eps) {
  Rows x(in[0]), w(in[1]);
  const int64_t d = x.len(), rows = static_cast<int64_t>(in[0].size()) / d;
  std::vector<float> xs, ws;
  const float* weight = w.row(0, ws);
  float* y = out.data<float>();
  for (int64_t r = 0; r < rows; ++r, y += d) rms_norm_row(x.row(r, xs), weight, d, eps, y);
}

void swiglu_rows(const std::vector<mx::array>& in, mx::array& out) {
  Rows gate(in[0]), up(in[1]);
  const int64_t d = gate.len(), rows = static_cast<int64_t>(in[0].size()) / d;
  std::vector<float> gs, us;
  float* y = out.data<float>();
  for (int64_t r = 0; r < rows; ++r, y += d) {
    const float* g = gate.row(r, gs);
    const float* u = up.row(r, us);
    swiglu_row(g, u, y, d);
  }
}

bool set_fused_cpu(bool on) {
  bool was = fused_on;
  fused_on = on;
  return was;
}

bool fused_cpu_enabled() { return fused_on; }

std::optional<mx::array> fused_rms_norm(const mx::array& x, const mx::array& weight, float eps) {
  if (!fused_cpu_applies({&x, &weight}) || x.ndim() < 1 || weight.ndim() != 1 || x.shape(-1) != weight.shape(0) ||
      x.size() == 0) {
    return std::nullopt;
  }
  return cpu_kernel_node("FusedRmsNorm", x.shape(), {eps}, {x, weight},
                         [eps](const std::vector<mx::array>& in, mx::array& out) { rms_norm_rows(in, out, eps); });
}

std::optional<mx::array> fused_swiglu(const mx::array& gate, const mx::array& up) {
  if (!fused_cpu_applies({&gate, &up}) || gate.shape() != up.shape() || gate.ndim() < 1 || gate.size() == 0) {
    return std::nullopt;
  }
  return cpu_kernel_node("FusedSwiGLU", gate.shape(), {}, {gate, up}, swiglu_rows);
}

}  // namespace qwen3_mlx
