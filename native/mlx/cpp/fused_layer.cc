// A whole Qwen3 decoder layer as one CPU graph node, for a few tokens (a decode step) with
// packed weights. Run as ~13 nodes, each of the ~300 a 0.6B decode step makes costs ~10 µs
// on the CPU stream between kernels (MLX's hand-offs, allocations, the graph walk's
// thread taking a core), 3.7 ms of a 16 ms step on an AMD EPYC; here the same kernels run
// back to back in one task, in the same order, so the result is the same to the bit. A
// decode step's layers can be one node too (fused_decoder_stack): ~2% off a 0.6B-4bit
// token on an AMD EPYC with 2 cores, the hand-offs between 28 layer nodes.
//
// The new keys and values are written into the cache's buffers in place, at slots no graph
// built before reads (the cache only ever reads slots below its offset). The node's second
// and third outputs are those buffers themselves (as mx::depends passes a buffer on, without
// its extra node), so that whatever reads them comes after the write. (Taking the buffers
// over by donation cannot work: MLX gives each output its own copy of the inputs list, so
// an input of a multi-output node is never donatable.)
#include "mlx/cpp/fused_layer.h"

#include <algorithm>
#include <array>
#include <memory>
#include <stdexcept>
#include <utility>

#include "mlx/cpp/cpu_kernel.h"
#include "mlx/cpp/cpu_rows.h"
#include "mlx/cpp/packed_linear.h"

namespace qwen3_mlx {
namespace {

// The layer's norms (and RoPE's wavelengths, if any) and matrices, which the node holds
// instead of taking them as inputs: ~25 fewer arrays for MLX to walk, hold and let go
// each step, on the thread that builds the next step and between kernels on the stream's.
enum Vector { kInputNorm, kQNorm, kKNorm, kPostNorm, kFreqs };
enum Matrix { kQ, kK, kV, kO, kGate, kUp, kDown, kMatrixCount };

struct Constants {
  std::vector<mx::array> vectors, matrices;  // evaluated; held for the addresses in `weights`
  std::array<AffineWeights, kMatrixCount> weights;
};

struct Sizes {
  int64_t batch, tokens, hidden, heads, kv_heads, head_dim, ff, slot;
  int64_t rows() const { return batch * tokens; }
  // Matrix m's [out, in] features.
  std::array<int64_t, 2> shape(int m) const {
    const int64_t q = heads * head_dim, kv = kv_heads * head_dim;
    const int64_t shapes[kMatrixCount][2] = {{q, hidden},  {kv, hidden}, {kv, hidden}, {hidden, q},
                                             {ff, hidden}, {ff, hidden}, {hidden, ff}};
    return {shapes[m][0], shapes[m][1]};
  }
};

void add_into(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = y[i] + x[i];
}

// Copies `from` ([B, T, H, D] with `token_stride` floats between tokens, `head_stride`
// between heads) into the cache [B, H, slots, D] of T at slot n.slot (float16 rounded as
// MLX's astype rounds it).
template <class T>
void write_slots_of(const float* from, int64_t token_stride, int64_t head_stride, int64_t batch_stride,
                    const Sizes& n, mx::array& cache) {
  const int64_t slots = cache.shape(2);
  T* base = cache.data<T>();
  for (int64_t b = 0; b < n.batch; ++b)
    for (int64_t h = 0; h < n.kv_heads; ++h)
      for (int64_t t = 0; t < n.tokens; ++t) {
        const float* src = from + b * batch_stride + h * head_stride + t * token_stride;
        T* dst = base + ((b * n.kv_heads + h) * slots + n.slot + t) * n.head_dim;
        for (int64_t i = 0; i < n.head_dim; ++i) dst[i] = static_cast<T>(src[i]);
      }
}

void write_slots(const float* from, int64_t token_stride, int64_t head_stride, int64_t batch_stride, const Sizes& n,
                 mx::array& cache) {
  const auto write = cache.dtype() == mx::float16 ? write_slots_of<mx::float16_t> : write_slots_of<float>;
  write(from, token_stride, head_stride, batch_stride, n, cache);
}

class LayerRun {
 public:
  LayerRun(const FusedLayerParams& p, const Sizes& n, std::shared_ptr<const Constants> c)
      : p_(p), n_(n), c_(std::move(c)) {}

  // The layer on x, writing the new tokens' keys and values into `keys` and `values` (the
  // cache's buffers) and its output into y.
  void operator()(mx::array x, const mx::array& positions, const mx::array& keys, const mx::array& values,
                  mx::array& y) const {
    const auto& vectors = c_->vectors;
    const Sizes& n = n_;
    const int64_t rows = n.rows(), q_width = n.heads * n.head_dim, kv_width = n.kv_heads * n.head_dim;
    for (const auto* cache : {&keys, &values})
      if (!cache->flags().row_contiguous || cache->data_size() != cache->size())
        throw std::runtime_error("FusedDecoderLayer: the cache's buffers are not whole, row-contiguous arrays");
    if (!x.flags().row_contiguous) {
      mx::array copy = scratch_array(x.shape());
      copy_rows(x, copy);
      x = copy;
    }

    auto normed = scratch_array({static_cast<int>(n.batch), static_cast<int>(n.tokens), static_cast<int>(n.hidden)});
    rms_norm_rows({x, vectors[kInputNorm]}, normed, p_.eps);
    auto q = scratch_array(token_rows(q_width)), k = scratch_array(token_rows(kv_width));
    auto v = scratch_array(token_rows(kv_width));
    products(kQ, normed, {q.data<float>(), k.data<float>(), v.data<float>()});

    auto q_heads = scratch_array(head_rows(n.heads)), k_heads = scratch_array(head_rows(n.kv_heads));
    rope_heads(positions, q, kQNorm, q_heads);
    rope_heads(positions, k, kKNorm, k_heads);
    mx::array keys_out = keys, values_out = values;
    write_slots(k_heads.data<float>(), n.head_dim, n.tokens * n.head_dim, n.kv_heads * n.tokens * n.head_dim, n,
                keys_out);
    write_slots(v.data<float>(), kv_width, n.head_dim, n.tokens * kv_width, n, values_out);

    const int seen = static_cast<int>(n.slot + n.tokens);
    const mx::Shape held{static_cast<int>(n.batch), static_cast<int>(n.kv_heads), seen, static_cast<int>(n.head_dim)};
    auto attended = scratch_array(token_rows(q_width));
    attend({q_heads, leading_view(keys, held), leading_view(values, held)}, attended.data<float>(), true, p_.scale,
           n.tokens > 1);
    products(kO, attended, {y.data<float>()});
    add_into(y.data<float>(), x.data<float>(), rows * n.hidden);

    rms_norm_rows({y, vectors[kPostNorm]}, normed, p_.eps);
    auto gate = scratch_array(token_rows(n.ff)), up = scratch_array(token_rows(n.ff));
    products(kGate, normed, {gate.data<float>(), up.data<float>()});
    auto act = scratch_array(token_rows(n.ff));
    swiglu_rows({gate, up}, act);
    auto down = scratch_array(token_rows(n.hidden));
    products(kDown, act, {down.data<float>()});
    add_into(y.data<float>(), down.data<float>(), rows * n.hidden);
  }

  const void* identity() const { return c_->weights[kQ].w; }

 private:
  mx::Shape token_rows(int64_t width) const {
    return {static_cast<int>(n_.batch), static_cast<int>(n_.tokens), static_cast<int>(width)};
  }
  mx::Shape head_rows(int64_t heads) const {
    return {static_cast<int>(n_.batch), static_cast<int>(heads), static_cast<int>(n_.tokens),
            static_cast<int>(n_.head_dim)};
  }

  // Products of x's rows with the matrices from `first` on, one per output.
  void products(int first, const mx::array& x, std::initializer_list<float*> ys) const {
    packed_products(p_.bits, p_.group, p_.int8, std::span(c_->weights).subspan(first, ys.size()), x.data<float>(),
                    n_.rows(), x.shape(-1), std::span<float* const>(ys.begin(), ys.size()));
  }

  void rope_heads(const mx::array& positions, const mx::array& x, int norm, mx::array& out) const {
    std::vector<mx::array> args{x, positions, c_->vectors[norm]};
    if (p_.has_freqs) args.push_back(c_->vectors[kFreqs]);
    norm_rope_rows(args, out, p_.eps, p_.base, p_.factor);
  }

  FusedLayerParams p_;
  Sizes n_;
  std::shared_ptr<const Constants> c_;
};

thread_local bool fused_layer_on = true;

}  // namespace

bool set_fused_layer(bool on) { return std::exchange(fused_layer_on, on); }
bool fused_layer_applies() { return fused_layer_on; }

namespace {

// The layer's run where the node applies to these shapes, layouts and dtypes, else nullopt
// (the caller builds the layer op by op). Checks what the node reads without checking it
// again each step: the held weights' layouts, the cache's shape and dtype.
std::optional<LayerRun> layer_run(const mx::array& x, const std::vector<mx::array>& vectors, const mx::array& keys,
                                  const mx::array& values, const std::vector<mx::array>& matrices,
                                  const FusedLayerParams& p) {
  // vectors: input norm, q norm, k norm, post-attention norm, positions, and freqs if any.
  // bits 0: half-precision weights (each matrix's weight three times: no scales or biases).
  const bool half = p.bits == 0;
  if (vectors.size() != (p.has_freqs ? 6u : 5u) || matrices.size() != 3 * kMatrixCount || p.bits < 0 ||
      (half && p.int8)) {
    return std::nullopt;
  }
  if (x.ndim() != 3 || keys.ndim() != 4 || values.shape() != keys.shape() || x.size() == 0) return std::nullopt;
  const int64_t d = keys.shape(3);
  const Sizes n{x.shape(0),
                x.shape(1),
                x.shape(2),
                p.heads,
                keys.shape(1),
                d,
                matrices[3 * kGate].shape(0),
                p.slot};
  const bool fits = n.tokens <= kFusedAttentionQueries && keys.shape(0) == n.batch && p.kv_heads == n.kv_heads &&
                    n.heads % std::max<int64_t>(n.kv_heads, 1) == 0 && n.slot >= 0 &&
                    n.slot + n.tokens <= keys.shape(2) && d % 2 == 0;
  // The cache: float32, or float16 (the kernels widen it).
  const bool cache_fits =
      (keys.dtype() == mx::float32 || keys.dtype() == mx::float16) && values.dtype() == keys.dtype();
  if (!fits || !cache_fits || !fused_cpu_applies({&x}) || !packed_supported(p.bits, p.group)) return std::nullopt;
  const int64_t lengths[] = {n.hidden, d, d, n.hidden};
  for (int i = 0; i < 4; ++i)
    if (vectors[i].dtype() != mx::float32 || vectors[i].ndim() != 1 || vectors[i].shape(0) != lengths[i])
      return std::nullopt;
  if (!positions_fit(vectors[4], static_cast<int>(n.batch), p.has_freqs ? &vectors[5] : nullptr,
                     static_cast<int>(d / 2))) {
    return std::nullopt;
  }
  // Each matrix [out, in]: its packed words, scales and biases loaded, of one layout.
  for (int m = 0; m < kMatrixCount; ++m) {
    const auto &w = matrices[3 * m], &scales = matrices[3 * m + 1], &biases = matrices[3 * m + 2];
    const bool ok = half ? w.ndim() == 2 && w.shape(0) == n.shape(m)[0] && w.shape(1) == n.shape(m)[1] &&
                               w.dtype() != mx::float32 && stored_type(w.dtype()) &&
                               w.dtype() == matrices[0].dtype() && loaded_row_contiguous(w)
                         : affine_columns(w, scales, biases, p.group, p.bits) == n.shape(m)[1] &&
                               w.shape(0) == n.shape(m)[0] && scales.dtype() == matrices[1].dtype() &&
                               loaded_row_contiguous(w) && loaded_row_contiguous(scales) &&
                               loaded_row_contiguous(biases);
    if (!ok) return std::nullopt;
  }
  auto c = std::make_shared<Constants>();
  c->vectors = {vectors[0], vectors[1], vectors[2], vectors[3]};
  if (p.has_freqs) c->vectors.push_back(vectors[5]);
  c->matrices = matrices;
  const Stored type = *stored_type(matrices[half ? 0 : 1].dtype());
  for (int m = 0; m < kMatrixCount; ++m) {
    const auto part = [&](int i) { return half && i > 0 ? nullptr : matrices[3 * m + i].data<void>(); };
    c->weights[m] = {part(0), part(1), part(2), n.shape(m)[0], type};
  }
  return LayerRun(p, n, std::move(c));
}

std::vector<float> node_params(const FusedLayerParams& p, size_t layers) {
  return {p.eps,
          p.base,
          p.factor,
          p.scale,
          static_cast<float>(p.heads),
          static_cast<float>(p.slot),
          static_cast<float>(p.bits),
          static_cast<float>(p.group),
          p.int8 ? 1.0f : 0.0f,
          static_cast<float>(layers)};
}

}  // namespace

std::optional<std::vector<mx::array>> fused_decoder_layer(const mx::array& x, const std::vector<mx::array>& vectors,
                                                          const mx::array& keys, const mx::array& values,
                                                          const std::vector<mx::array>& matrices,
                                                          const FusedLayerParams& p) {
  auto run = layer_run(x, vectors, keys, values, matrices, p);
  if (!run) return std::nullopt;
  const void* identity = run->identity();
  auto node = [run = std::move(*run)](const std::vector<mx::array>& in, std::vector<mx::array>& out) {
    run(in[0], in[1], in[2], in[3], out[0]);
  };
  return cpu_kernel_nodes("FusedDecoderLayer", {x.shape(), keys.shape(), values.shape()}, node_params(p, 1),
                          {x, vectors[4], keys, values}, std::move(node), identity, {-1, 2, 3});
}

std::optional<std::vector<mx::array>> fused_decoder_stack(const mx::array& x, const std::vector<StackLayer>& layers,
                                                          const FusedLayerParams& p) {
  if (layers.empty()) return std::nullopt;
  std::vector<LayerRun> runs;
  std::vector<mx::Shape> shapes{x.shape()};
  std::vector<mx::array> inputs{x, layers[0].vectors.at(4)};
  std::vector<int> shares{-1};
  for (const auto& layer : layers) {
    // One position for all: the layers' caches are at the same slot.
    if (layer.vectors.size() < 5 || layer.vectors[4].id() != inputs[1].id()) return std::nullopt;
    auto run = layer_run(x, layer.vectors, layer.keys, layer.values, layer.matrices, p);
    if (!run) return std::nullopt;
    runs.push_back(std::move(*run));
    for (const auto* buffer : {&layer.keys, &layer.values}) {
      shares.push_back(static_cast<int>(inputs.size()));
      shapes.push_back(buffer->shape());
      inputs.push_back(*buffer);
    }
  }
  const void* identity = runs[0].identity();
  auto node = [runs = std::move(runs)](const std::vector<mx::array>& in, std::vector<mx::array>& out) {
    mx::array h = in[0];
    for (size_t i = 0; i < runs.size(); ++i) {
      mx::array y = i + 1 == runs.size() ? out[0] : scratch_array(h.shape());
      runs[i](h, in[1], in[2 + 2 * i], in[3 + 2 * i], y);
      h = y;
    }
  };
  return cpu_kernel_nodes("FusedDecoderStack", std::move(shapes), node_params(p, layers.size()), std::move(inputs),
                          std::move(node), identity, std::move(shares));
}

}  // namespace qwen3_mlx
