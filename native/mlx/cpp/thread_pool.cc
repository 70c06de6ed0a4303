// Workers that wait for the next piece of work by spinning for a short while (the next
// product of a decode step comes within microseconds) and then sleeping; pieces are handed
// out under a mutex (a call has a few dozen), and the caller works too.
#include "mlx/cpp/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace qwen3_mlx {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// The cores, at most 8, or QWEN3_CPU_THREADS when set (1: the caller alone).
int wanted_threads() {
  if (const char* v = std::getenv("QWEN3_CPU_THREADS")) {
    const int n = std::atoi(v);
    if (n >= 1) return std::min(n, 64);
  }
  return std::min(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())), 8);
}

// How long an idle worker spins before it sleeps.
constexpr auto kSpin = std::chrono::microseconds(200);

class Pool {
 public:
  Pool() {
    for (int i = 1; i < wanted_threads(); ++i) {
      // Fewer workers if the system refuses threads: the caller does the rest.
      try {
        workers_.emplace_back([this] { work(); });
      } catch (const std::system_error&) {
        break;
      }
    }
  }

  // Workers block on a condition variable at exit: the pool lives as long as the process.
  Pool(const Pool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  void run(int64_t n, int64_t grain, RangeFn fn, void* ctx) {
    std::unique_lock<std::mutex> one_call(calls_, std::try_to_lock);
    if (!one_call.owns_lock() || workers_.empty() || n <= grain) {
      fn(ctx, 0, n);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(m_);
      fn_ = fn;
      ctx_ = ctx;
      n_ = n;
      // Four pieces per thread balance uneven progress without many hand-outs.
      chunk_ = std::max<int64_t>(grain, (n + 4 * threads() - 1) / (4 * threads()));
      next_ = 0;
      pending_.store(n, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    if (sleeping_.load(std::memory_order_acquire) > 0) wake_.notify_all();
    take_pieces();
    while (pending_.load(std::memory_order_acquire) > 0) cpu_relax();
  }

 private:
  // Runs pieces of the current call until none is left.
  void take_pieces() {
    for (;;) {
      int64_t begin, end;
      RangeFn fn;
      void* ctx;
      {
        std::lock_guard<std::mutex> lock(m_);
        if (next_ >= n_) return;
        begin = next_;
        end = std::min(n_, begin + chunk_);
        next_ = end;
        fn = fn_;
        ctx = ctx_;
      }
      fn(ctx, begin, end);
      pending_.fetch_sub(end - begin, std::memory_order_release);
    }
  }

  void work() {
    uint64_t seen = 0;
    for (;;) {
      const auto until = std::chrono::steady_clock::now() + kSpin;
      int spins = 0;
      while (generation_.load(std::memory_order_acquire) == seen) {
        cpu_relax();
        if (++spins % 64 == 0 && std::chrono::steady_clock::now() > until) {
          std::unique_lock<std::mutex> lock(m_);
          sleeping_.fetch_add(1, std::memory_order_release);
          wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
          sleeping_.fetch_sub(1, std::memory_order_release);
        }
      }
      seen = generation_.load(std::memory_order_acquire);
      take_pieces();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex calls_;  // one call at a time
  std::mutex m_;      // the call's fields and the hand-out position
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> sleeping_{0};
  std::atomic<int64_t> pending_{0};
  RangeFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0, chunk_ = 1, next_ = 0;
};

Pool& pool() {
  // Never destroyed: workers may still be waiting when the process exits.
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

void parallel_for(int64_t n, int64_t grain, RangeFn fn, void* ctx) {
  if (n <= 0) return;
  pool().run(n, std::max<int64_t>(grain, 1), fn, ctx);
}

int parallel_threads() { return pool().threads(); }

}  // namespace qwen3_mlx
