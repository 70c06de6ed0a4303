// The graph node for products with weights kept as stored (packed_linear.h), and the
// choice of kernels (packed_kernels.h) for it.
#include "mlx/cpp/packed_linear.h"

#include <algorithm>
#include <span>
#include <vector>

#include "mlx/cpp/blas.h"
#include "mlx/cpp/cpu_kernel.h"
#include "mlx/cpp/int8_kernels.h"
#include "mlx/cpp/packed_kernels.h"
#include "mlx/cpp/thread_pool.h"

namespace qwen3_mlx {
namespace {

thread_local const PackedIsa* forced_isa = nullptr;

// Up to this many rows the packed kernels run directly, each piece of weights read once for
// all rows in blocks of kPackedRowsMax: on 0.6B-shaped 4/8-bit and bf16 weights with 2
// cores, 16 rows took 0.4x and 32 rows 0.55-0.6x the time of dequantized tiles + sgemm.
constexpr int64_t kDirectRowsMax = 32;

// The fewest rows of weights per tile when dequantizing for sgemm.
constexpr int64_t kTileRows = 128;

// Buffers reused between calls by the thread that runs the kernels (MLX's CPU stream).
struct Scratch {
  std::vector<float> x, group_sums, tile, gathered, group_scales;
  std::vector<int8_t> q;
};
thread_local Scratch scratch;

// Output features [0, Σ n) of products that share their input rows, split across the cores
// together (so that small products make one hand-out, not one each): `kernel(p, j0, j1)`
// for each product's part of a piece. Pieces hold at least ~32 KiB of weights (smaller
// ones cost more to hand out than to run), for a few rows ≥ 1 MiB where there is that
// much; all the products have the same row size.
template <class Kernel>
void split_features(std::span<PackedProduct> ps, Kernel kernel) {
  const PackedProduct& p = ps[0];
  const int64_t row_bytes = p.bits > 0 ? p.k * p.bits / 8 + 4 * (p.k / p.group) : 2 * p.k;
  int64_t total = 0;
  for (const auto& q : ps) total += q.n;
  int64_t grain = std::max<int64_t>(1, (int64_t{32} << 10) / row_bytes);
  if (p.rows <= kPackedRowsMax) {
    // A few rows read the weights at the memory's pace, which long runs keep up best (two
    // threads reading 1 MiB apiece: 48 GB/s, 32 KiB: 44, AMD EPYC): pieces of ≥ 1 MiB,
    // 1 to 4 per thread.
    const int64_t threads = parallel_threads();
    const int64_t per = std::clamp<int64_t>(total * row_bytes / (threads << 20), 1, 4);
    grain = std::max(grain, (total + threads * per - 1) / (threads * per));
  }
  auto piece = [&](int64_t begin, int64_t end) {
    int64_t first = 0;
    for (const auto& q : ps) {
      const int64_t j0 = std::max(begin, first) - first, j1 = std::min(end, first + q.n) - first;
      if (j0 < j1) kernel(q, j0, j1);
      first += q.n;
    }
  };
  parallel_for(total, grain, piece);
}

// Products of ≤ kDirectRowsMax rows with the same x, its rows prepared once.
void few_rows(const PackedIsa& isa, std::span<PackedProduct> ps, const float* x) {
  const PackedProduct& p = ps[0];
  const int64_t padded = (p.k + isa.lanes - 1) / isa.lanes * isa.lanes, groups = p.bits > 0 ? p.k / p.group : 0;
  scratch.x.resize(static_cast<size_t>(p.rows * padded));
  scratch.group_sums.resize(static_cast<size_t>(p.rows * groups));
  isa.prepare_rows(x, p.rows, p.k, p.bits, p.group, p.type, isa.row_block, scratch.x.data(),
                   scratch.group_sums.data());
  for (auto& q : ps) {
    q.x = scratch.x.data();
    q.x_group_sums = p.bits > 0 ? scratch.group_sums.data() : nullptr;
  }
  split_features(ps, [&](const PackedProduct& q, int64_t j0, int64_t j1) { isa.rows_times(q, j0, j1); });
}

void few_rows(const PackedIsa& isa, PackedProduct p, const float* x) { few_rows(isa, std::span(&p, 1), x); }

// Many rows: W a tile of rows at a time into float32, then sgemm into y's columns. The
// tile is dequantized across the cores in the order prepare_rows gives x's columns, so
// the decoding stays in vectors; tiles of up to 16 MiB keep the sgemm calls few (each one
// packs x again).
void many_rows(const PackedIsa& isa, PackedProduct p, const float* x, int64_t rows) {
  const auto sgemm = blas_sgemm();
  if (!sgemm) {
    for (int64_t r = 0; r < rows; r += kPackedRowsMax) {
      PackedProduct block = p;
      block.rows = static_cast<int>(std::min<int64_t>(kPackedRowsMax, rows - r));
      block.y = p.y + r * p.n;
      few_rows(isa, block, x + r * p.k);
    }
    return;
  }
  if (p.bits > 0 && isa.supports(p.bits, p.group)) {
    scratch.x.resize(static_cast<size_t>(rows * p.k));
    scratch.group_sums.resize(static_cast<size_t>(rows * (p.k / p.group)));
    const int64_t groups = p.k / p.group;
    float *out = scratch.x.data(), *sums = scratch.group_sums.data();
    auto part = [&](int64_t b, int64_t e) {
      isa.prepare_rows(x + b * p.k, static_cast<int>(e - b), p.k, p.bits, p.group, p.type, 1, out + b * p.k,
                       sums + b * groups);
    };
    parallel_for(rows, 16, part);
    x = out;
  }
  const int64_t tile_rows = std::max<int64_t>(kTileRows, (int64_t{16} << 20) / (4 * p.k));
  scratch.tile.resize(static_cast<size_t>(tile_rows * p.k));
  for (int64_t j0 = 0; j0 < p.n; j0 += tile_rows) {
    const int64_t j1 = std::min(p.n, j0 + tile_rows);
    float* tile = scratch.tile.data();
    auto part = [&](int64_t b, int64_t e) { isa.dequantize_rows(p, j0 + b, j0 + e, tile + b * p.k); };
    parallel_for(j1 - j0, 16, part);
    sgemm(kRowMajor, kNoTrans, kTrans, static_cast<int>(rows), static_cast<int>(j1 - j0), static_cast<int>(p.k),
          1.0f, x, static_cast<int>(p.k), scratch.tile.data(), static_cast<int>(p.k), 0.0f, p.y + j0,
          static_cast<int>(p.n));
  }
}

// Any number of rows through the int8 kernels, for products with the same x: the rows
// quantized across the cores once, then the output features split across them. Up to 8
// rows the row kernels read each weight once; more go through weight tiles, whose copy is
// repaid by every 8 rows after the first (16 rows of a 0.6B prefill: 0.75x the time).
void int8_products(std::span<PackedProduct> ps, const float* x, int64_t rows) {
  const PackedProduct& p = ps[0];
  const int64_t k = p.k, groups = k / p.group;
  scratch.q.resize(static_cast<size_t>(rows * k));
  scratch.group_scales.resize(static_cast<size_t>(rows * groups));
  scratch.group_sums.resize(static_cast<size_t>(rows * groups));
  int8_t* q = scratch.q.data();
  float *scales = scratch.group_scales.data(), *sums = scratch.group_sums.data();
  auto prepare = [&](int64_t b, int64_t e) {
    int8_prepare(x + b * k, static_cast<int>(e - b), k, p.bits, p.group, q + b * k, scales + b * groups,
                 sums + b * groups);
  };
  parallel_for(rows, 16, prepare);
  const Int8Rows xs{q, scales, sums, static_cast<int>(rows)};
  if (rows <= kPackedRowsMax) {
    split_features(ps, [&](const PackedProduct& one, int64_t j0, int64_t j1) { int8_rows_times(one, xs, j0, j1); });
    return;
  }
  split_features(ps, [&](const PackedProduct& one, int64_t j0, int64_t j1) {
    thread_local std::vector<uint8_t> tile;
    tile.resize(static_cast<size_t>(int8_tile_bytes(one.bits, one.group, one.k)));
    int8_tile_rows_times(one, xs, j0, j1, tile.data());
  });
}

// x's rows, row-contiguous: as they are, or gathered (a view, a broadcast).
const float* input_rows(const mx::array& x, int64_t rows, int64_t k) {
  if (x.flags().row_contiguous) return x.data<float>();
  Rows view(x);
  scratch.gathered.resize(static_cast<size_t>(rows * k));
  std::vector<float> row;
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = view.row(r, row);
    std::copy(src, src + k, scratch.gathered.begin() + r * k);
  }
  return scratch.gathered.data();
}

// Products of row-contiguous float32 rows x [rows, k] with weights[i] into ys[i] (affine,
// or half weights with w alone and `type` theirs), all of one layout: through `isa`'s
// kernels, or the int8 ones where null.
void products_of_rows(const PackedIsa* isa, int bits, int group, std::span<const AffineWeights> weights,
                      const float* xs, int64_t rows, int64_t k, std::span<float* const> ys) {
  std::vector<PackedProduct> ps(ys.size());
  for (size_t i = 0; i < ys.size(); ++i) {
    PackedProduct& p = ps[i];
    const AffineWeights& w = weights[i];
    p.w = static_cast<const uint8_t*>(w.w);
    p.scales = w.scales;
    p.biases = w.biases;
    p.type = w.type;
    p.bits = bits;
    p.group = group;
    p.rows = static_cast<int>(std::min<int64_t>(rows, kDirectRowsMax));
    p.n = w.n;
    p.k = k;
    p.y = ys[i];
  }
  if (!isa) {
    int8_products(ps, xs, rows);
  } else if (rows <= kDirectRowsMax) {
    few_rows(*isa, ps, xs);
  } else {
    for (const auto& p : ps) many_rows(*isa, p, xs, rows);
  }
}

// Products of in[0] with the weights in[1..] (as products_of_rows takes them) into outs.
void run_products(const PackedIsa* isa, int bits, int group, const std::vector<mx::array>& in,
                  std::vector<mx::array>& outs) {
  const auto& x = in[0];
  const int64_t k = x.shape(-1), rows = static_cast<int64_t>(x.size()) / k;
  std::vector<float*> ys;
  std::vector<AffineWeights> weights;
  for (size_t i = 0; i < outs.size(); ++i) {
    ys.push_back(outs[i].data<float>());
    const mx::array& w = in[1 + 3 * i];
    if (bits > 0) {
      const mx::array &scales = in[2 + 3 * i], &biases = in[3 + 3 * i];
      weights.push_back({w.data<void>(), scales.data<void>(), biases.data<void>(), w.shape(0),
                         *stored_type(scales.dtype())});
    } else {
      weights.push_back({w.data<void>(), nullptr, nullptr, w.shape(0), *stored_type(w.dtype())});
    }
  }
  products_of_rows(isa, bits, group, weights, input_rows(x, rows, k), rows, k, ys);
}

void run_product(const PackedIsa* isa, int bits, int group, const std::vector<mx::array>& in, mx::array& out) {
  std::vector<mx::array> outs{out};
  run_products(isa, bits, group, in, outs);
}

bool applies_to(const mx::array& x, int64_t k) {
  return current_device() == mx::Device::cpu && x.dtype() == mx::float32 && x.ndim() >= 1 && x.shape(-1) == k &&
         x.size() > 0;
}

mx::Shape out_shape(const mx::array& x, int n) {
  auto shape = x.shape();
  shape.back() = n;
  return shape;
}

}  // namespace

const PackedIsa* isa_for(int bits, int group) {
  if (forced_isa) return forced_isa->supports(bits, group) ? forced_isa : nullptr;
  return packed_isa_for(bits, group);
}

std::optional<Stored> stored_type(mx::Dtype t) {
  if (t == mx::float32) return Stored::F32;
  if (t == mx::bfloat16) return Stored::BF16;
  if (t == mx::float16) return Stored::F16;
  return std::nullopt;
}

void packed_rows_product(const PackedIsa& isa, PackedProduct p, const float* x, int64_t rows) {
  if (rows <= kDirectRowsMax) {
    p.rows = static_cast<int>(rows);
    few_rows(isa, p, x);
  } else {
    many_rows(isa, p, x, rows);
  }
}

mx::array row_contiguous(const mx::array& a) {
  if (loaded_row_contiguous(a)) return a;
  return mx::contiguous(a, false, mx::Device::cpu);
}

std::optional<std::vector<mx::array>> packed_affine_linears(const mx::array& x, const std::vector<mx::array>& parts,
                                                           int group, int bits, bool int8) {
  if (parts.empty() || parts.size() % 3 != 0 || group <= 0 || bits <= 0) return std::nullopt;
  const auto* isa = isa_for(bits, group);
  if (!isa) return std::nullopt;
  std::vector<mx::Shape> shapes;
  std::vector<mx::array> inputs{x};
  for (size_t i = 0; i < parts.size(); i += 3) {
    const auto &w = parts[i], &scales = parts[i + 1], &biases = parts[i + 2];
    const int64_t k = affine_columns(w, scales, biases, group, bits);
    if (k == 0 || !applies_to(x, k) || scales.dtype() != parts[1].dtype()) return std::nullopt;
    shapes.push_back(out_shape(x, w.shape(0)));
    inputs.insert(inputs.end(), {row_contiguous(w), row_contiguous(scales), row_contiguous(biases)});
  }
  const int64_t k = x.shape(-1);
  const float count = static_cast<float>(shapes.size());
  if (int8_products_for(bits, group, k, static_cast<int64_t>(x.size()) / k, int8)) {
    return cpu_kernel_nodes("PackedAffineLinearInt8", std::move(shapes),
                            {static_cast<float>(bits), static_cast<float>(group), count}, std::move(inputs),
                            [bits, group](const std::vector<mx::array>& in, std::vector<mx::array>& out) {
                              run_products(nullptr, bits, group, in, out);
                            });
  }
  return cpu_kernel_nodes(
      "PackedAffineLinear", std::move(shapes),
      {static_cast<float>(bits), static_cast<float>(group), static_cast<float>(isa->lanes), count}, std::move(inputs),
      [isa, bits, group](const std::vector<mx::array>& in, std::vector<mx::array>& out) {
        run_products(isa, bits, group, in, out);
      });
}

std::optional<mx::array> packed_affine_linear(const mx::array& x, const mx::array& w, const mx::array& scales,
                                              const mx::array& biases, int group, int bits, bool int8) {
  auto out = packed_affine_linears(x, {w, scales, biases}, group, bits, int8);
  if (!out) return std::nullopt;
  return (*out)[0];
}

std::optional<mx::array> packed_half_linear(const mx::array& x, const mx::array& w) {
  if (w.ndim() != 2 || (w.dtype() != mx::bfloat16 && w.dtype() != mx::float16)) return std::nullopt;
  const auto* isa = isa_for(0, 0);
  if (!isa || !applies_to(x, w.shape(1))) return std::nullopt;
  return cpu_kernel_node("PackedHalfLinear", out_shape(x, w.shape(0)), {static_cast<float>(isa->lanes)},
                         {x, row_contiguous(w)}, [isa](const std::vector<mx::array>& in, mx::array& out) {
                           run_product(isa, 0, 0, in, out);
                         });
}

int64_t affine_columns(const mx::array& w, const mx::array& scales, const mx::array& biases, int group, int bits) {
  if (w.ndim() != 2 || w.dtype() != mx::uint32 || group <= 0 || bits <= 0) return 0;
  const int64_t k = static_cast<int64_t>(w.shape(1)) * 32 / bits;
  const mx::Shape groups{w.shape(0), static_cast<int>(k / group)};
  const bool fits = k % group == 0 && scales.shape() == groups && biases.shape() == groups &&
                    scales.dtype() == biases.dtype() && stored_type(scales.dtype());
  return fits ? k : 0;
}

bool int8_products_for(int bits, int group, int64_t k, int64_t rows, bool int8) {
  // One row of 8-bit weights reads 1 byte per value and the float kernels keep up with
  // memory there (0.6B-shaped LM head: 3.3 against 4.3 ms on an AMD EPYC): exact and faster.
  const bool single_8bit_row = bits == 8 && rows == 1;
  return int8 && !single_8bit_row && int8_activations_supported(bits, group, k);
}

void packed_products(int bits, int group, bool int8, std::span<const AffineWeights> weights, const float* x,
                     int64_t rows, int64_t k, std::span<float* const> ys) {
  const PackedIsa* isa = int8_products_for(bits, group, k, rows, int8) ? nullptr : isa_for(bits, group);
  products_of_rows(isa, bits, group, weights, x, rows, k, ys);
}

bool packed_supported(int bits, int group) { return isa_for(bits, group) != nullptr; }

bool int8_activations_supported(int32_t bits, int32_t group, int64_t k) {
  return int8_cpu_runs() && int8_supported(bits, group, k);
}

bool set_packed_isa(const std::string& name) {
  if (name.empty()) {
    forced_isa = nullptr;
    return true;
  }
  for (const PackedIsa* isa : {packed_isa_avx512(), packed_isa_avx2(), &packed_isa_portable()}) {
    if (isa && name == isa->name && packed_isa_runs(*isa)) {
      forced_isa = isa;
      return true;
    }
  }
  return false;
}

std::string packed_isa_name() { return forced_isa ? forced_isa->name : packed_isa().name; }

}  // namespace qwen3_mlx
