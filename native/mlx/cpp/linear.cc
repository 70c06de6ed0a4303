// `x · Wᵀ` with a decode fast path: for one row of float32 on the CPU, a custom MLX
// primitive calls BLAS sgemv; for 2–8 rows (a batched decode step), or one row times a
// small weight, it runs the few-rows kernel. MLX's CPU matmul always calls sgemm, and
// OpenBLAS (0.3.21, Debian 12) runs sgemm with few rows at a third of sgemv's memory
// bandwidth or less — and a decode step is nothing but few-row products over every weight.
#include <stdexcept>

#include "mlx/allocator.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/cpp/blas.h"
#include "mlx/cpp/few_rows.h"
#include "mlx/cpp/packed_linear.h"
#include "mlx/cpp/shim.h"
#include "mlx/primitives.h"

namespace mx = mlx::core;

namespace qwen3_mlx {
namespace {

// OpenBLAS runs sgemv on all its threads from 9,216 elements up; under 1 MiB of weights,
// waking them costs more than they save, and they then spin for ~0.1 s, taking a core
// from the next op.
bool small_weight(int n, int k) { return static_cast<size_t>(n) * k * sizeof(float) < (size_t{1} << 20); }

// y[rows, n] = x[rows, k] · W[n, k]ᵀ; both inputs row-contiguous (ensured when built).
class RowsTimesMatrixT : public mx::Primitive {
 public:
  explicit RowsTimesMatrixT(mx::Stream stream) : mx::Primitive(stream) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override {
    const auto& x = inputs[0];
    const auto& w = inputs[1];
    auto& y = outputs[0];
    if (!x.flags().row_contiguous || !w.flags().row_contiguous) {
      throw std::runtime_error("RowsTimesMatrixT needs row-contiguous inputs");
    }
    y.set_data(mx::allocator::malloc(y.nbytes()));
    auto& encoder = mx::cpu::get_command_encoder(stream());
    encoder.set_input_array(x);
    encoder.set_input_array(w);
    encoder.set_output_array(y);
    const int rows = static_cast<int>(x.size() / w.shape(1));
    encoder.dispatch([xs = x.data<float>(), ws = w.data<float>(), ys = y.data<float>(), rows, n = w.shape(0),
                      k = w.shape(1)] {
      if (rows == 1 && !(few_rows_supported() && small_weight(n, k))) {
        blas_sgemv()(kRowMajor, kNoTrans, n, k, 1.0f, ws, k, xs, 1, 0.0f, ys, 1);
      } else {
        few_rows_times_matrix_t(xs, rows, ws, n, k, ys);
      }
    });
  }

  void eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) override {
    throw std::runtime_error("RowsTimesMatrixT runs on the CPU only");
  }

  const char* name() const override { return "RowsTimesMatrixT"; }
  bool is_equivalent(const mx::Primitive&) const override { return true; }
};

// One row goes to sgemv, 2–8 rows to the few-rows kernel, when this machine has them.
bool fast_rows(const mx::array& x) {
  const size_t rows = x.size() / static_cast<size_t>(x.shape(-1));
  if (rows == 1) return blas_sgemv() != nullptr;
  return rows >= 2 && rows <= kFewRowsMax && few_rows_supported();
}

}  // namespace

bool has_blas_gemv() { return blas_sgemv() != nullptr; }

UArray linear(const Array& x, const Array& w) {
  if (auto half = packed_half_linear(x, w)) return std::make_unique<Array>(std::move(*half));
  mx::Device device = current_device();
  bool fast = device == mx::Device::cpu && x.dtype() == mx::float32 && w.dtype() == mx::float32 &&
              w.ndim() == 2 && x.ndim() >= 1 && x.shape(-1) == w.shape(1) && x.shape(-1) > 0 && fast_rows(x) &&
              w.is_available() && w.flags().row_contiguous;
  if (!fast) return std::make_unique<Array>(mx::matmul(x, mx::transpose(w, {1, 0}, device), device));
  auto shape = x.shape();
  shape.back() = w.shape(0);
  auto row = mx::contiguous(x, false, device);
  return std::make_unique<Array>(mx::array(std::move(shape), mx::float32,
                                           std::make_shared<RowsTimesMatrixT>(mx::default_stream(device)), {row, w}));
}

}  // namespace qwen3_mlx
