// `x · Wᵀ` with a decode fast path: for a single row of float32 on the CPU, a custom MLX
// primitive calls BLAS sgemv. MLX's CPU matmul always calls sgemm, and OpenBLAS (0.3.21,
// Debian 12) runs sgemm with one row at about a third of sgemv's memory bandwidth — and a
// decode step is nothing but one-row products over every weight.
#include <dlfcn.h>

#include <stdexcept>

#include "mlx/allocator.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/cpp/shim.h"
#include "mlx/primitives.h"

namespace mx = mlx::core;

namespace qwen3_mlx {
namespace {

// cblas_sgemv(order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy)
using Sgemv = void (*)(int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
constexpr int kRowMajor = 101;
constexpr int kNoTrans = 111;

// The BLAS libmlx itself links (OpenBLAS or Accelerate), found through libmlx's handle so
// that the lookup sees its dependencies; null when there is none.
Sgemv find_sgemv() {
  static const Sgemv found = [] {
    void* sym = nullptr;
    for (const char* name : {"libmlx.so", "libmlx.dylib"}) {
      if (void* handle = dlopen(name, RTLD_LAZY | RTLD_NOLOAD)) {
        sym = dlsym(handle, "cblas_sgemv");
        dlclose(handle);
        if (sym) break;
      }
    }
    if (!sym) sym = dlsym(RTLD_DEFAULT, "cblas_sgemv");
    return reinterpret_cast<Sgemv>(sym);
  }();
  return found;
}

// y[1, n] = x[1, k] · W[n, k]ᵀ; both inputs row-contiguous (ensured when built).
class RowTimesMatrixT : public mx::Primitive {
 public:
  explicit RowTimesMatrixT(mx::Stream stream) : mx::Primitive(stream) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override {
    const auto& x = inputs[0];
    const auto& w = inputs[1];
    auto& y = outputs[0];
    if (!x.flags().row_contiguous || !w.flags().row_contiguous) {
      throw std::runtime_error("RowTimesMatrixT needs row-contiguous inputs");
    }
    y.set_data(mx::allocator::malloc(y.nbytes()));
    auto& encoder = mx::cpu::get_command_encoder(stream());
    encoder.set_input_array(x);
    encoder.set_input_array(w);
    encoder.set_output_array(y);
    encoder.dispatch([xs = x.data<float>(), ws = w.data<float>(), ys = y.data<float>(), n = w.shape(0),
                      k = w.shape(1), sgemv = find_sgemv()] {
      sgemv(kRowMajor, kNoTrans, n, k, 1.0f, ws, k, xs, 1, 0.0f, ys, 1);
    });
  }

  void eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) override {
    throw std::runtime_error("RowTimesMatrixT runs on the CPU only");
  }

  const char* name() const override { return "RowTimesMatrixT"; }
  bool is_equivalent(const mx::Primitive&) const override { return true; }
};

bool one_row(const mx::array& x) { return x.size() == static_cast<size_t>(x.shape(-1)); }

}  // namespace

bool has_blas_gemv() { return find_sgemv() != nullptr; }

UArray linear(const Array& x, const Array& w) {
  mx::Device device = current_device();
  bool fast = device == mx::Device::cpu && x.dtype() == mx::float32 && w.dtype() == mx::float32 &&
              w.ndim() == 2 && x.ndim() >= 1 && x.shape(-1) == w.shape(1) && one_row(x) && w.is_available() &&
              w.flags().row_contiguous && find_sgemv() != nullptr;
  if (!fast) return std::make_unique<Array>(mx::matmul(x, mx::transpose(w, {1, 0}, device), device));
  auto shape = x.shape();
  shape.back() = w.shape(0);
  auto row = mx::contiguous(x, false, device);
  return std::make_unique<Array>(mx::array(std::move(shape), mx::float32,
                                           std::make_shared<RowTimesMatrixT>(mx::default_stream(device)), {row, w}));
}

}  // namespace qwen3_mlx
