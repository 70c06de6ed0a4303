#include "mlx/cpp/shim.h"

#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <stdexcept>
#include <string>

#include "mlx/cpp/expert_linear.h"
#include "mlx/cpp/fused_argmax.h"
#include "mlx/cpp/fused_cpu.h"
#include "mlx/cpp/fused_layer.h"
#include "mlx/cpp/kv_dequantize.h"
#include "mlx/cpp/packed_linear.h"
#include "mlx/cpp/packed_rows.h"
#include "ops_generated.h"
#include "mlx/primitives.h"

namespace mx = mlx::core;

namespace qwen3_mlx {
namespace {

thread_local mx::Device thread_device = mx::Device::cpu;

mx::StreamOrDevice dev() { return thread_device; }

UArray own(mx::array a) { return std::make_unique<Array>(std::move(a)); }
std::unique_ptr<ArrayVec> own(std::vector<mx::array> v) { return std::make_unique<ArrayVec>(std::move(v)); }

mx::Shape to_shape(rust::Slice<const int32_t> s) { return mx::Shape(s.begin(), s.end()); }

// Codes follow mx::Dtype::Val's order; the Rust Dtype enum mirrors them.
mx::Dtype to_dtype(uint8_t code) {
  switch (code) {
    case 0: return mx::bool_;
    case 1: return mx::uint8;
    case 2: return mx::uint16;
    case 3: return mx::uint32;
    case 4: return mx::uint64;
    case 5: return mx::int8;
    case 6: return mx::int16;
    case 7: return mx::int32;
    case 8: return mx::int64;
    case 9: return mx::float16;
    case 10: return mx::float32;
    case 11: return mx::float64;
    case 12: return mx::bfloat16;
    case 13: return mx::complex64;
  }
  throw std::invalid_argument("unknown dtype code " + std::to_string(code));
}

}  // namespace

mx::Device current_device() { return thread_device; }

void bind_thread_to_device(bool gpu) {
  mx::Device d = gpu ? mx::Device::gpu : mx::Device::cpu;
  if (!mx::is_available(d)) throw std::runtime_error(gpu ? "no GPU in this MLX build" : "no CPU");
  thread_device = d;
  // Touch the allocator, scheduler and stream now, so MLX registers their static destructors
  // before the worker registers its exit guard (atexit runs handlers last-registered first).
  auto warm = mx::add(mx::ones({2}, mx::float32, d), mx::ones({2}, mx::float32, d), d);
  mx::eval(warm);
  mx::synchronize(mx::default_stream(d));
}

bool device_available(bool gpu) { return mx::is_available(gpu ? mx::Device::gpu : mx::Device::cpu); }

UArray from_bytes(rust::Slice<const uint8_t> data, rust::Slice<const int32_t> shape, uint8_t code) {
  auto dtype = to_dtype(code);
  auto s = to_shape(shape);
  size_t count = 1;
  for (auto d : s) {
    if (d < 0) throw std::invalid_argument("negative dimension in shape");
    count *= static_cast<size_t>(d);
  }
  if (count * dtype.size() != data.size()) {
    throw std::invalid_argument("byte size " + std::to_string(data.size()) + " does not match shape × dtype (" +
                                std::to_string(count * dtype.size()) + ")");
  }
  // MLX owns its copy: the Rust slice does not outlive this call.
  auto* copy = new uint8_t[data.size() > 0 ? data.size() : 1];
  std::memcpy(copy, data.data(), data.size());
  return own(mx::array(copy, std::move(s), dtype, [](void* p) { delete[] static_cast<uint8_t*>(p); }));
}

void to_bytes(const Array& a, rust::Slice<uint8_t> out) {
  // Wait for `a` itself first: a copy node made before would be queued behind whatever was
  // dispatched since (the next token's graph, pipelined), and the reader would wait for all
  // of it (on a 0.6B CPU decode, ~1 ms a token with nothing queued). Copy only if needed.
  Array c = a;
  c.eval();
  if (!c.flags().row_contiguous) {
    c = mx::contiguous(c, false, dev());
    c.eval();
  }
  if (out.size() != c.nbytes()) throw std::invalid_argument("output buffer has the wrong size");
  if (c.nbytes() > 0) std::memcpy(out.data(), c.data<uint8_t>(), c.nbytes());
}

rust::Vec<int32_t> shape(const Array& a) {
  rust::Vec<int32_t> out;
  for (auto d : a.shape()) out.push_back(d);
  return out;
}

uint8_t dtype(const Array& a) { return static_cast<uint8_t>(a.dtype().val()); }
size_t nbytes(const Array& a) { return a.nbytes(); }
UArray clone_array(const Array& a) { return own(a); }
rust::String primitive_name(const Array& a) { return a.has_primitive() ? a.primitive().name() : ""; }

UArray full(rust::Slice<const int32_t> shape, double value, uint8_t code) {
  auto dtype = to_dtype(code);
  return own(mx::full(to_shape(shape), mx::astype(mx::array(value), dtype, dev()), dtype, dev()));
}

UArray arange(double start, double stop, double step, uint8_t code) {
  return own(mx::arange(start, stop, step, to_dtype(code), dev()));
}

std::unique_ptr<ArrayVec> vec_new() { return std::make_unique<ArrayVec>(); }
void vec_push(ArrayVec& v, const Array& a) { v.push_back(a); }
size_t vec_len(const ArrayVec& v) { return v.size(); }
UArray vec_get(const ArrayVec& v, size_t i) { return own(v.at(i)); }

void eval(const ArrayVec& v) { mx::eval(v); }
void async_eval(const ArrayVec& v) { mx::async_eval(v); }
void synchronize() { mx::synchronize(); }
size_t active_memory() { return mx::get_active_memory(); }
size_t peak_memory() { return mx::get_peak_memory(); }
size_t cache_memory() { return mx::get_cache_memory(); }
void reset_peak_memory() { mx::reset_peak_memory(); }
size_t set_cache_limit(size_t limit) { return mx::set_cache_limit(limit); }
size_t set_memory_limit(size_t limit) { return mx::set_memory_limit(limit); }
// On Linux the CPU's freed buffers sit in glibc malloc's heaps (qwen3_cpu_setup has it
// keep blocks up to 32 MiB): clearing MLX's cache hands those pages back to the OS too.
void clear_cache() {
  mx::clear_cache();
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

// The cases follow ops.txt; one it lists and a switch lacks fails the build (-Werror=switch).
UArray unary(uint8_t code, const Array& a) {
  switch (static_cast<UnaryOp>(code)) {
    case UnaryOp::negative: return own(mx::negative(a, dev()));
    case UnaryOp::exp: return own(mx::exp(a, dev()));
    case UnaryOp::log: return own(mx::log(a, dev()));
    case UnaryOp::sqrt: return own(mx::sqrt(a, dev()));
    case UnaryOp::sigmoid: return own(mx::sigmoid(a, dev()));
    case UnaryOp::silu: return own(mx::multiply(a, mx::sigmoid(a, dev()), dev()));
    case UnaryOp::abs: return own(mx::abs(a, dev()));
    case UnaryOp::softmax: return own(mx::softmax(a, -1, true, dev()));
    case UnaryOp::stop_gradient: return own(mx::stop_gradient(a, dev()));
  }
  throw std::invalid_argument("unknown unary op code " + std::to_string(code));
}

UArray binary(uint8_t code, const Array& a, const Array& b) {
  switch (static_cast<BinaryOp>(code)) {
    case BinaryOp::add: return own(mx::add(a, b, dev()));
    case BinaryOp::subtract: return own(mx::subtract(a, b, dev()));
    case BinaryOp::multiply: return own(mx::multiply(a, b, dev()));
    case BinaryOp::divide: return own(mx::divide(a, b, dev()));
    case BinaryOp::maximum: return own(mx::maximum(a, b, dev()));
    case BinaryOp::minimum: return own(mx::minimum(a, b, dev()));
    case BinaryOp::power: return own(mx::power(a, b, dev()));
    case BinaryOp::greater: return own(mx::greater(a, b, dev()));
    case BinaryOp::greater_equal: return own(mx::greater_equal(a, b, dev()));
    case BinaryOp::less: return own(mx::less(a, b, dev()));
    case BinaryOp::less_equal: return own(mx::less_equal(a, b, dev()));
    case BinaryOp::equal: return own(mx::equal(a, b, dev()));
    case BinaryOp::logical_and: return own(mx::logical_and(a, b, dev()));
    case BinaryOp::logical_or: return own(mx::logical_or(a, b, dev()));
  }
  throw std::invalid_argument("unknown binary op code " + std::to_string(code));
}

UArray where_(const Array& cond, const Array& a, const Array& b) { return own(mx::where(cond, a, b, dev())); }

UArray reshape(const Array& a, rust::Slice<const int32_t> shape) { return own(mx::reshape(a, to_shape(shape), dev())); }

UArray transpose(const Array& a, rust::Slice<const int32_t> axes) {
  return own(mx::transpose(a, std::vector<int>(axes.begin(), axes.end()), dev()));
}

UArray astype(const Array& a, uint8_t code) { return own(mx::astype(a, to_dtype(code), dev())); }
UArray take(const Array& a, const Array& idx, int32_t axis) { return own(mx::take(a, idx, axis, dev())); }
UArray take_along_axis(const Array& a, const Array& idx, int32_t axis) {
  return own(mx::take_along_axis(a, idx, axis, dev()));
}
UArray put_along_axis(const Array& a, const Array& idx, const Array& values, int32_t axis) {
  return own(mx::put_along_axis(a, idx, values, axis, dev()));
}

UArray slice(const Array& a, rust::Slice<const int32_t> start, rust::Slice<const int32_t> stop) {
  return own(mx::slice(a, to_shape(start), to_shape(stop), dev()));
}

UArray slice_update(const Array& src, const Array& update, rust::Slice<const int32_t> start,
                    rust::Slice<const int32_t> stop) {
  return own(mx::slice_update(src, update, to_shape(start), to_shape(stop), dev()));
}

UArray concatenate(const ArrayVec& v, int32_t axis) { return own(mx::concatenate(v, axis, dev())); }
UArray expand_dims(const Array& a, int32_t axis) { return own(mx::expand_dims(a, axis, dev())); }
UArray broadcast_to(const Array& a, rust::Slice<const int32_t> shape) {
  return own(mx::broadcast_to(a, to_shape(shape), dev()));
}
UArray contiguous(const Array& a) { return own(mx::contiguous(a, false, dev())); }

UArray reduce(uint8_t code, const Array& a, int32_t axis, bool keepdims) {
  switch (static_cast<ReduceOp>(code)) {
    case ReduceOp::sum: return own(mx::sum(a, axis, keepdims, dev()));
    case ReduceOp::max: return own(mx::max(a, axis, keepdims, dev()));
    case ReduceOp::min: return own(mx::min(a, axis, keepdims, dev()));
    case ReduceOp::mean: return own(mx::mean(a, axis, keepdims, dev()));
    case ReduceOp::argmax: return own(mx::argmax(a, axis, keepdims, dev()));
    case ReduceOp::argmin: return own(mx::argmin(a, axis, keepdims, dev()));
    case ReduceOp::logsumexp: return own(mx::logsumexp(a, axis, keepdims, dev()));
  }
  throw std::invalid_argument("unknown reduction code " + std::to_string(code));
}

UArray sort(const Array& a, int32_t axis) { return own(mx::sort(a, axis, dev())); }
UArray argsort(const Array& a, int32_t axis) { return own(mx::argsort(a, axis, dev())); }
UArray argpartition(const Array& a, int32_t kth, int32_t axis) { return own(mx::argpartition(a, kth, axis, dev())); }
UArray cumsum(const Array& a, int32_t axis, bool reverse, bool inclusive) {
  return own(mx::cumsum(a, axis, reverse, inclusive, dev()));
}
UArray matmul(const Array& a, const Array& b) { return own(mx::matmul(a, b, dev())); }

UArray rms_norm(const Array& x, const Array& weight, float eps) {
  if (auto fused = fused_rms_norm(x, weight, eps)) return own(std::move(*fused));
  return own(mx::fast::rms_norm(x, weight, eps, dev()));
}

UArray rope(const Array& x, int32_t dims, bool traditional, float base, float scale, int32_t offset) {
  if (auto fused = fused_rope(x, dims, traditional, base, scale, mx::array(offset, mx::int32))) {
    return own(std::move(*fused));
  }
  return own(mx::fast::rope(x, dims, traditional, base, scale, offset, std::nullopt, dev()));
}

UArray rope_offsets(const Array& x, int32_t dims, bool traditional, float base, float scale, const Array& offsets) {
  if (auto fused = fused_rope(x, dims, traditional, base, scale, offsets)) return own(std::move(*fused));
  return own(mx::fast::rope(x, dims, traditional, base, scale, offsets, std::nullopt, dev()));
}

UArray rope_freqs(const Array& x, int32_t dims, bool traditional, float scale, const Array& offsets,
                  const Array& freqs) {
  if (auto fused = fused_rope(x, dims, traditional, 0.0f, scale, offsets, &freqs)) return own(std::move(*fused));
  return own(mx::fast::rope(x, dims, traditional, std::nullopt, scale, offsets, freqs, dev()));
}

UArray norm_rope(const Array& x, const Array& weight, float eps, int32_t heads, float base, const Array& offsets,
                 const Array& freqs, bool has_freqs, float factor) {
  if (auto fused = fused_norm_rope(x, weight, eps, heads, base, offsets, has_freqs ? &freqs : nullptr, factor)) {
    return own(std::move(*fused));
  }
  // The same steps one op each (another device or dtype, or the fused kernels off).
  if (x.ndim() != 3 || weight.ndim() != 1) throw std::invalid_argument("norm_rope: x must be [B, T, H·D], weight [D]");
  const int d = weight.shape(0);
  auto heads_of = mx::reshape(x, {x.shape(0), x.shape(1), heads, d}, dev());
  auto normed = mx::transpose(*rms_norm(heads_of, weight, eps), {0, 2, 1, 3}, dev());
  if (factor != 1.0f) normed = mx::multiply(normed, mx::array(factor, normed.dtype()), dev());
  if (has_freqs) return rope_freqs(normed, d, false, 1.0f, offsets, freqs);
  return rope_offsets(normed, d, false, base, 1.0f, offsets);
}

UArray sdpa(const Array& q, const Array& k, const Array& v, float scale, bool causal) {
  if (auto fused = fused_attention(q, k, v, scale, causal)) return own(std::move(*fused));
  return own(mx::fast::scaled_dot_product_attention(q, k, v, scale, causal ? "causal" : "", {}, {}, false, dev()));
}

// [B, L, Hq·D] from the fused kernel, or null where it does not apply (the caller merges
// the heads of `sdpa` then).
UArray sdpa_merged(const Array& q, const Array& k, const Array& v, float scale, bool causal) {
  if (auto fused = fused_attention(q, k, v, scale, causal, true)) return own(std::move(*fused));
  return nullptr;
}

UArray swiglu(const Array& gate, const Array& up) {
  if (auto fused = fused_swiglu(gate, up)) return own(std::move(*fused));
  return own(mx::multiply(mx::multiply(gate, mx::sigmoid(gate, dev()), dev()), up, dev()));
}

UArray top_p_filter(const Array& logits, float p) {
  if (auto fused = fused_top_p(logits, p)) return own(std::move(*fused));
  return nullptr;
}

bool set_fused_cpu_kernels(bool on) { return set_fused_cpu(on); }

UArray argmax_last(const Array& x) {
  if (auto ids = fused_argmax(x)) return own(std::move(*ids));
  return nullptr;
}

UArray packed_rows(const Array& ids, const Array& w, const Array& scales, const Array& biases, int32_t group,
                   int32_t bits) {
  if (auto rows = qwen3_mlx::lookup_packed_rows(ids, w, scales, biases, group, bits)) return own(std::move(*rows));
  return nullptr;
}

namespace {

// The layer's numbers as the bridge passes them (fast.rs `LayerParams::numbers`).
FusedLayerParams layer_params(const char* who, rust::Slice<const float> floats, rust::Slice<const int32_t> ints) {
  if (floats.size() != 4 || ints.size() != 7) throw std::invalid_argument(std::string(who) + ": 4 floats, 7 ints");
  return {floats[0], floats[1], floats[2], floats[3], ints[0],     ints[1],
          ints[2],   ints[3],   ints[4],   ints[5] != 0, ints[6] != 0};
}

}  // namespace

std::unique_ptr<ArrayVec> fused_decoder_layer(const Array& x, const ArrayVec& vectors, const Array& keys,
                                              const Array& values, const ArrayVec& matrices,
                                              rust::Slice<const float> floats, rust::Slice<const int32_t> ints) {
  const FusedLayerParams p = layer_params("fused_decoder_layer", floats, ints);
  if (!fused_layer_applies()) return nullptr;
  if (auto out = fused_decoder_layer(x, vectors, keys, values, matrices, p)) return own(std::move(*out));
  return nullptr;
}

std::unique_ptr<ArrayVec> fused_decoder_stack(const Array& x, const ArrayVec& vectors, const ArrayVec& caches,
                                              const ArrayVec& matrices, rust::Slice<const float> floats,
                                              rust::Slice<const int32_t> ints) {
  const FusedLayerParams p = layer_params("fused_decoder_stack", floats, ints);
  // vectors: each layer's four norms, then the positions and the freqs if any.
  const size_t shared = p.has_freqs ? 2 : 1, layers = caches.size() / 2;
  if (caches.size() != 2 * layers || vectors.size() != 4 * layers + shared || matrices.size() != 21 * layers) {
    throw std::invalid_argument("fused_decoder_stack: 4 vectors, 2 caches and 21 matrices a layer");
  }
  std::vector<StackLayer> stack;
  stack.reserve(layers);
  for (size_t i = 0; i < layers; ++i) {
    std::vector<mx::array> own(vectors.begin() + 4 * i, vectors.begin() + 4 * i + 4);
    own.insert(own.end(), vectors.end() - shared, vectors.end());
    stack.push_back({std::move(own), caches[2 * i], caches[2 * i + 1],
                     std::vector<mx::array>(matrices.begin() + 21 * i, matrices.begin() + 21 * (i + 1))});
  }
  if (!fused_layer_applies()) return nullptr;
  if (auto out = fused_decoder_stack(x, stack, p)) return own(std::move(*out));
  return nullptr;
}

UArray sdpa_masked(const Array& q, const Array& k, const Array& v, float scale, const Array& mask) {
  return own(mx::fast::scaled_dot_product_attention(q, k, v, scale, "array", mask, {}, false, dev()));
}

UArray quantized_matmul(const Array& x, const Array& w, const Array& scales, const Array& biases, bool transpose,
                        int32_t group_size, int32_t bits) {
  return own(mx::quantized_matmul(x, w, scales, biases, transpose, group_size, bits, "affine", dev()));
}

UArray dequantize(const Array& w, const Array& scales, const Array& biases, int32_t group_size, int32_t bits,
                  uint8_t code) {
  return own(mx::dequantize(w, scales, biases, group_size, bits, "affine", std::nullopt, to_dtype(code), dev()));
}

UArray dequantize_kv(const Array& w, const Array& scales, const Array& biases, int32_t group_size, int32_t bits) {
  if (auto fused = kv_dequantize(w, scales, biases, group_size, bits)) return own(std::move(*fused));
  return own(mx::dequantize(w, scales, biases, group_size, bits, "affine", std::nullopt, scales.dtype(), dev()));
}

std::unique_ptr<ArrayVec> quantize(const Array& w, int32_t group_size, int32_t bits) {
  return std::make_unique<ArrayVec>(mx::quantize(w, group_size, bits, "affine", std::nullopt, dev()));
}

UArray quantized_linear(const Array& x, const Array& w, const Array& scales, const Array& biases, int32_t group_size,
                        int32_t bits, bool int8) {
  if (auto fused = packed_affine_linear(x, w, scales, biases, group_size, bits, int8)) return own(std::move(*fused));
  // MLX wants the scales in x's dtype.
  auto s = scales.dtype() == x.dtype() ? scales : mx::astype(scales, x.dtype(), dev());
  auto b = biases.dtype() == x.dtype() ? biases : mx::astype(biases, x.dtype(), dev());
  return own(mx::quantized_matmul(x, w, s, b, true, group_size, bits, "affine", dev()));
}

std::unique_ptr<ArrayVec> quantized_linears(const Array& x, const ArrayVec& parts, int32_t group_size, int32_t bits,
                                            bool int8) {
  if (auto fused = packed_affine_linears(x, parts, group_size, bits, int8)) return own(std::move(*fused));
  if (parts.size() % 3 != 0) throw std::invalid_argument("quantized_linears: parts come as weight, scales, biases");
  auto out = std::make_unique<ArrayVec>();
  for (size_t i = 0; i < parts.size(); i += 3)
    out->push_back(*quantized_linear(x, parts[i], parts[i + 1], parts[i + 2], group_size, bits, int8));
  return out;
}

UArray expert_linear(const Array& x, const Array& w, const Array& indices) {
  return own(qwen3_mlx::expert_linear(x, w, indices, thread_device));
}

UArray expert_quantized_linear(const Array& x, const Array& w, const Array& scales, const Array& biases,
                               const Array& indices, int32_t group_size, int32_t bits) {
  return own(qwen3_mlx::expert_quantized_linear(x, w, scales, biases, indices, group_size, bits, thread_device));
}

bool use_packed_isa(rust::Str name) { return set_packed_isa(std::string(name)); }

rust::String packed_isa_in_use() { return rust::String(packed_isa_name()); }

UArray random_key(uint64_t seed) { return own(mx::random::key(seed)); }

std::unique_ptr<ArrayVec> random_split(const Array& key) {
  auto [a, b] = mx::random::split(key, dev());
  return std::make_unique<ArrayVec>(ArrayVec{a, b});
}

UArray random_categorical(const Array& logits, int32_t axis, const Array& key) {
  return own(mx::random::categorical(logits, axis, key, dev()));
}

UArray random_uniform(rust::Slice<const int32_t> shape, uint8_t code, const Array& key) {
  return own(mx::random::uniform(to_shape(shape), to_dtype(code), key, dev()));
}

}  // namespace qwen3_mlx
