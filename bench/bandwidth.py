"""Read bandwidth in GB/s, for the roofline in bench/compare.exs: the best of float32
matrix-vector products (what a decode step is) and a sum over 1 GiB — through MLX and
through numpy's own BLAS, so the figure is the machine's, not one library's. Prints one number."""

import time

import mlx.core as mx
import numpy as np

ROWS, COLS = 32768, 8192  # 1 GiB of float32
mx.set_default_device(mx.cpu)
w = mx.random.normal((ROWS, COLS))
v = mx.random.normal((COLS,))
mx.eval(w, v)


def best_seconds(f, n=5):
    f()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


a, b = np.asarray(w), np.asarray(v)
seconds = [
    best_seconds(lambda: mx.eval(w @ v)),
    best_seconds(lambda: mx.eval(mx.sum(w))),
    best_seconds(lambda: a @ b),
    best_seconds(lambda: a.sum()),
]
print(w.nbytes / min(seconds) / 1e9)
