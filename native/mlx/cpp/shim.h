// The C++ side of the cxx bridge: thin wrappers over MLX that take Rust-friendly
// arguments. Every function may throw; cxx turns the exception into a Rust Err.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "mlx/mlx.h"
#include "rust/cxx.h"

namespace qwen3_mlx {

using Array = mlx::core::array;
using ArrayVec = std::vector<mlx::core::array>;
using UArray = std::unique_ptr<Array>;

// Threading: the device every op on this thread runs on (set once per worker thread).
void bind_thread_to_device(bool gpu);
mlx::core::Device current_device();
bool device_available(bool gpu);

// Arrays <-> bytes, metadata.
UArray from_bytes(rust::Slice<const uint8_t> data, rust::Slice<const int32_t> shape, uint8_t dtype);
void to_bytes(const Array& a, rust::Slice<uint8_t> out);
rust::Vec<int32_t> shape(const Array& a);
uint8_t dtype(const Array& a);
size_t nbytes(const Array& a);
UArray clone_array(const Array& a);
rust::String primitive_name(const Array& a);
UArray full(rust::Slice<const int32_t> shape, double value, uint8_t dtype);
UArray arange(double start, double stop, double step, uint8_t dtype);

// Lists of arrays (eval, concatenate, multi-output ops).
std::unique_ptr<ArrayVec> vec_new();
void vec_push(ArrayVec& v, const Array& a);
size_t vec_len(const ArrayVec& v);
UArray vec_get(const ArrayVec& v, size_t i);

// Evaluation and memory.
void eval(const ArrayVec& v);
void async_eval(const ArrayVec& v);
void synchronize();
size_t active_memory();
size_t peak_memory();
size_t cache_memory();
void reset_peak_memory();
size_t set_cache_limit(size_t limit);
size_t set_memory_limit(size_t limit);
void clear_cache();

// Element-wise, by the codes of ops.txt: one entry point per arity keeps the bridge small.
UArray unary(uint8_t op, const Array& a);
UArray binary(uint8_t op, const Array& a, const Array& b);
UArray where_(const Array& cond, const Array& a, const Array& b);

// Shape and indexing.
UArray reshape(const Array& a, rust::Slice<const int32_t> shape);
UArray transpose(const Array& a, rust::Slice<const int32_t> axes);
UArray astype(const Array& a, uint8_t dtype);
UArray take(const Array& a, const Array& indices, int32_t axis);
UArray take_along_axis(const Array& a, const Array& indices, int32_t axis);
UArray put_along_axis(const Array& a, const Array& indices, const Array& values, int32_t axis);
UArray slice(const Array& a, rust::Slice<const int32_t> start, rust::Slice<const int32_t> stop);
UArray slice_update(const Array& src, const Array& update, rust::Slice<const int32_t> start,
                    rust::Slice<const int32_t> stop);
UArray concatenate(const ArrayVec& v, int32_t axis);
UArray expand_dims(const Array& a, int32_t axis);
UArray broadcast_to(const Array& a, rust::Slice<const int32_t> shape);
UArray contiguous(const Array& a);

// Reductions, sorting, linear algebra.
UArray reduce(uint8_t op, const Array& a, int32_t axis, bool keepdims);
UArray sort(const Array& a, int32_t axis);
UArray argsort(const Array& a, int32_t axis);
UArray argpartition(const Array& a, int32_t kth, int32_t axis);
UArray cumsum(const Array& a, int32_t axis, bool reverse, bool inclusive);
UArray matmul(const Array& a, const Array& b);
// `x · Wᵀ` (cpp/linear.cc: sgemv for one float32 row on the CPU; bf16/f16 W with float32
// x on the CPU through the packed kernels, without widening W).
UArray linear(const Array& x, const Array& w);
bool has_blas_gemv();
bool few_rows_supported();  // cpp/few_rows.cc

// Fused kernels: on the CPU in float32 our own (cpp/fused_*.cc), else mlx::core::fast.
UArray rms_norm(const Array& x, const Array& weight, float eps);
UArray rope(const Array& x, int32_t dims, bool traditional, float base, float scale, int32_t offset);
UArray rope_offsets(const Array& x, int32_t dims, bool traditional, float base, float scale,
                    const Array& offsets);
UArray rope_freqs(const Array& x, int32_t dims, bool traditional, float scale, const Array& offsets,
                  const Array& freqs);
UArray norm_rope(const Array& x, const Array& weight, float eps, int32_t heads, float base, const Array& offsets,
                 const Array& freqs, bool has_freqs, float factor);
UArray sdpa(const Array& q, const Array& k, const Array& v, float scale, bool causal);
UArray sdpa_merged(const Array& q, const Array& k, const Array& v, float scale, bool causal);
UArray sdpa_masked(const Array& q, const Array& k, const Array& v, float scale, const Array& mask);
UArray swiglu(const Array& gate, const Array& up);
// Null when the fused kernel does not apply (the sampler then builds its sort graph).
UArray top_p_filter(const Array& logits, float p);
bool set_fused_cpu_kernels(bool on);
// The first index of each row's largest value, uint32 (cpp/fused_argmax.h), or null.
UArray argmax_last(const Array& x);
// Rows of affine-packed weights picked by ids, as float32 (cpp/packed_rows.h), or null.
UArray packed_rows(const Array& ids, const Array& w, const Array& scales, const Array& biases, int32_t group,
                   int32_t bits);
// A dense decoder layer as one CPU node (cpp/fused_layer.h): {y, keys', values'} (the
// buffers written in place, ordered after the node), or null where it does not apply.
// floats: eps, base, factor, scale; ints: heads, kv_heads, slot, bits, group, int8, has_freqs.
std::unique_ptr<ArrayVec> fused_decoder_layer(const Array& x, const ArrayVec& vectors, const Array& keys,
                                              const Array& values, const ArrayVec& matrices,
                                              rust::Slice<const float> floats, rust::Slice<const int32_t> ints);
// Consecutive dense decoder layers as one CPU node (cpp/fused_layer.h): {y, then each
// layer's keys' and values'}, or null where it does not apply. vectors: each layer's four
// norms, then the positions and the freqs if any; caches: each layer's keys and values;
// matrices: each layer's 21; floats and ints as fused_decoder_layer takes them.
std::unique_ptr<ArrayVec> fused_decoder_stack(const Array& x, const ArrayVec& vectors, const ArrayVec& caches,
                                              const ArrayVec& matrices, rust::Slice<const float> floats,
                                              rust::Slice<const int32_t> ints);
// Whether this thread builds whole layers as one node (default on). Returns the previous setting.
bool set_fused_layer(bool on);

// Quantization (affine mode, as written by mlx-lm).
UArray quantized_matmul(const Array& x, const Array& w, const Array& scales, const Array& biases,
                        bool transpose, int32_t group_size, int32_t bits);
UArray dequantize(const Array& w, const Array& scales, const Array& biases, int32_t group_size,
                  int32_t bits, uint8_t dtype);
std::unique_ptr<ArrayVec> quantize(const Array& w, int32_t group_size, int32_t bits);
// A quantized KV cache's slots `[B, H, T, ·]` in the scales' dtype (cpp/kv_dequantize.cc on
// the CPU in float32, else MLX's dequantize).
UArray dequantize_kv(const Array& w, const Array& scales, const Array& biases, int32_t group_size, int32_t bits);
// `x · Wᵀ` with W affine-quantized and kept packed: float32 x on the CPU runs this
// project's kernels (cpp/packed_linear.cc), anything else MLX's quantized_matmul.
UArray quantized_linear(const Array& x, const Array& w, const Array& scales, const Array& biases,
                        int32_t group_size, int32_t bits, bool int8);
std::unique_ptr<ArrayVec> quantized_linears(const Array& x, const ArrayVec& parts, int32_t group_size, int32_t bits,
                                            bool int8);
// x [..., X, k] times the experts `indices` [..., top_k] picks from a stack W [E, n, k]
// (dense or affine-quantized) → [..., top_k, n] (cpp/expert_linear.cc).
UArray expert_linear(const Array& x, const Array& w, const Array& indices);
UArray expert_quantized_linear(const Array& x, const Array& w, const Array& scales, const Array& biases,
                               const Array& indices, int32_t group_size, int32_t bits);
// Whether the CPU kernels take this layout (2, 4 or 8 bits; groups the vectors divide).
bool int8_activations_supported(int32_t bits, int32_t group_size, int64_t k);
bool packed_supported(int32_t bits, int32_t group_size);
// The kernels' instruction set on this thread: "avx512", "avx2", "portable", "" = best.
bool use_packed_isa(rust::Str name);
rust::String packed_isa_in_use();

// Random numbers from explicit keys (reproducible per request).
UArray random_key(uint64_t seed);
std::unique_ptr<ArrayVec> random_split(const Array& key);
UArray random_categorical(const Array& logits, int32_t axis, const Array& key);
UArray random_uniform(rust::Slice<const int32_t> shape, uint8_t dtype, const Array& key);

}  // namespace qwen3_mlx
