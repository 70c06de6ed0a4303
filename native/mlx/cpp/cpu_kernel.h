// What the fused CPU kernels share: an MLX primitive that runs one function on the CPU
// stream, and row access to evaluated float32 inputs whatever their strides.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "mlx/allocator.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/cpp/fused_cpu.h"
#include "mlx/cpp/shim.h"
#include "mlx/primitives.h"

namespace qwen3_mlx {

// Outputs computed together on the CPU stream by `run` (given the evaluated inputs and the
// freshly allocated, row-contiguous outputs). `params` and `constants` (the address of what
// `run` holds besides its inputs, if anything: a layer's weights) tell equal nodes apart.
// Output i with shares[i] ≥ 0 is input shares[i]'s buffer itself, which `run` writes into
// in place (as mx::depends passes a buffer on): what reads it comes after the node.
class CpuKernel : public mx::Primitive {
 public:
  using Run = std::function<void(const std::vector<mx::array>&, std::vector<mx::array>&)>;

  CpuKernel(mx::Stream stream, const char* name, std::vector<float> params, Run run, const void* constants = nullptr,
            std::vector<int> shares = {})
      : mx::Primitive(stream),
        name_(name),
        params_(std::move(params)),
        run_(std::move(run)),
        constants_(constants),
        shares_(std::move(shares)) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override {
    auto& encoder = mx::cpu::get_command_encoder(stream());
    for (const auto& a : inputs) encoder.set_input_array(a);
    // The task may run after this node is detached from the graph, so it holds its own
    // handles; weak ones, as MLX's kernels do (eval keeps the buffers alive until done).
    std::vector<mx::array> in, out;
    in.reserve(inputs.size());
    out.reserve(outputs.size());
    for (const auto& a : inputs) in.push_back(mx::array::unsafe_weak_copy(a));
    for (size_t i = 0; i < outputs.size(); ++i) {
      auto& o = outputs[i];
      if (i < shares_.size() && shares_[i] >= 0) {
        o.copy_shared_buffer(inputs[shares_[i]]);
      } else {
        o.set_data(mx::allocator::malloc(o.nbytes()));
      }
      encoder.set_output_array(o);
      out.push_back(mx::array::unsafe_weak_copy(o));
    }
    encoder.dispatch([run = run_, in = std::move(in), out = std::move(out)]() mutable { run(in, out); });
  }

  void eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) override {
    throw std::runtime_error(std::string(name_) + " runs on the CPU only");
  }

  const char* name() const override { return name_; }

  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const CpuKernel*>(&other);
    return o && std::string(o->name_) == name_ && o->params_ == params_ && o->constants_ == constants_ &&
           o->shares_ == shares_;
  }

 private:
  const char* name_;
  std::vector<float> params_;
  Run run_;
  const void* constants_;
  std::vector<int> shares_;
};

// Nodes computing `run` from `inputs`, one float32 output per shape (or the dtype of the
// input it shares), on this thread's CPU stream (`constants` and `shares` as CpuKernel
// takes them).
inline std::vector<mx::array> cpu_kernel_nodes(const char* name, std::vector<mx::Shape> shapes,
                                               std::vector<float> params, std::vector<mx::array> inputs,
                                               CpuKernel::Run run, const void* constants = nullptr,
                                               std::vector<int> shares = {}) {
  auto stream = mx::default_stream(mx::Device::cpu);
  std::vector<mx::Dtype> dtypes(shapes.size(), mx::float32);
  for (size_t i = 0; i < shares.size() && i < dtypes.size(); ++i)
    if (shares[i] >= 0) dtypes[i] = inputs[shares[i]].dtype();
  auto kernel =
      std::make_shared<CpuKernel>(stream, name, std::move(params), std::move(run), constants, std::move(shares));
  return mx::array::make_arrays(std::move(shapes), dtypes, kernel, inputs);
}

// One node computing `run` from `inputs`, shaped `shape`, of `dtype`, on this thread's CPU
// stream (`constants` as CpuKernel takes it).
inline mx::array cpu_kernel_node(const char* name, mx::Shape shape, std::vector<float> params,
                                 std::vector<mx::array> inputs,
                                 std::function<void(const std::vector<mx::array>&, mx::array&)> run,
                                 const void* constants = nullptr, mx::Dtype dtype = mx::float32) {
  auto stream = mx::default_stream(mx::Device::cpu);
  auto one = [run = std::move(run)](const std::vector<mx::array>& in, std::vector<mx::array>& out) {
    run(in, out[0]);
  };
  return mx::array(std::move(shape), dtype,
                   std::make_shared<CpuKernel>(stream, name, std::move(params), std::move(one), constants),
                   std::move(inputs));
}

// Whether `a` is evaluated and row-contiguous: a loaded array a kernel can read as it lies.
inline bool loaded_row_contiguous(const mx::array& a) { return a.is_available() && a.flags().row_contiguous; }

// Where element `flat` (in row-major order) of an array shaped `shape` lies, in elements
// from its data pointer, whatever its `strides`.
inline int64_t element_offset(const mx::Shape& shape, const mx::Strides& strides, int64_t flat) {
  int64_t off = 0;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    off += (flat % shape[d]) * strides[d];
    flat /= shape[d];
  }
  return off;
}

// Rows along the last axis of an evaluated float32 array (a view, a broadcast or a copy).
class Rows {
 public:
  explicit Rows(const mx::array& a)
      : data_(a.data<float>()), shape_(a.shape()), strides_(a.strides()), len_(a.shape(-1)) {}

  int64_t len() const { return len_; }

  // Row r in row-major order: a pointer into the array when its elements are adjacent,
  // else a gathered copy in `scratch`.
  const float* row(int64_t r, std::vector<float>& scratch) const {
    const float* start = data_ + element_offset(shape_, strides_, r * len_);
    const int64_t step = strides_.back();
    if (step == 1) return start;
    scratch.resize(len_);
    for (int64_t i = 0; i < len_; ++i) scratch[i] = start[i * step];
    return scratch.data();
  }

 private:
  const float* data_;
  mx::Shape shape_;
  mx::Strides strides_;
  int64_t len_;
};

// `to` ← `from`'s elements in row-major order, whatever from's strides.
inline void copy_rows(const mx::array& from, mx::array& to) {
  Rows rows(from);
  const int64_t len = rows.len(), count = static_cast<int64_t>(from.size()) / std::max<int64_t>(len, 1);
  std::vector<float> scratch;
  float* y = to.data<float>();
  for (int64_t r = 0; r < count; ++r, y += len) {
    const float* src = rows.row(r, scratch);
    std::copy(src, src + len, y);
  }
}

// A float32 buffer shaped `shape` for a kernel's intermediate values, outside any graph.
inline mx::array scratch_array(mx::Shape shape) {
  mx::array a(std::move(shape), mx::float32, nullptr, {});
  a.set_data(mx::allocator::malloc(a.nbytes()));
  return a;
}

// The first shape[i] entries along each axis of `a` (same rank), where they lie in a.
inline mx::array leading_view(const mx::array& a, mx::Shape shape) {
  mx::array view(std::move(shape), a.dtype(), nullptr, {});
  auto flags = a.flags();
  flags.row_contiguous = flags.col_contiguous = flags.contiguous = view.shape() == a.shape();
  view.copy_shared_buffer(a, a.strides(), flags, a.data_size());
  return view;
}

// Σ a[i]·b[i] with eight partial sums, which the compiler keeps in vector registers.
inline float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// Whether the fused kernels apply here: this thread builds for the CPU and all are float32.
inline bool fused_cpu_applies(std::initializer_list<const mx::array*> arrays) {
  if (!fused_cpu_enabled() || current_device() != mx::Device::cpu) return false;
  for (const auto* a : arrays)
    if (a->dtype() != mx::float32) return false;
  return true;
}

}  // namespace qwen3_mlx
