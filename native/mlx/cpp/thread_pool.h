// Splitting a CPU kernel's rows across the cores with threads that persist between calls:
// a decode step makes ~200 products of 30–500 µs each, and starting threads for each one
// (~20 µs apiece) would cost a good part of them.
#pragma once

#include <cstdint>

namespace qwen3_mlx {

// fn(ctx, begin, end) over [0, n) in pieces of at least `grain` items, on the calling
// thread and the pool's workers, returning when all are done. One call runs at a time;
// a call made while another runs (another stream's thread) runs alone on its own thread.
using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end);
void parallel_for(int64_t n, int64_t grain, RangeFn fn, void* ctx);

// The threads parallel_for uses, the caller's included: the cores, at most 8, or the
// environment's QWEN3_CPU_THREADS.
int parallel_threads();

// The same with any callable.
template <class F>
void parallel_for(int64_t n, int64_t grain, F& f) {
  parallel_for(
      n, grain, [](void* c, int64_t b, int64_t e) { (*static_cast<F*>(c))(b, e); }, &f);
}

}  // namespace qwen3_mlx
