"""The mlx-lm side of bench/compare.exs: greedy generation with mlx-lm's own loop
(`generate_step`) on one checkpoint, on the same MLX wheel. Prints one JSON object.

python bench/mlx_lm_side.py CKPT --compute {checkpoint,float32} --prompt-lens 128,512
                            --decode 128 --budget SECONDS
A measurement that would take longer than --budget is shortened and says so: prefill runs
at the longest power-of-two prompt whose estimated time fits (`measured_at`), decode stops
after --budget seconds (`tokens`).
"""

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import mlx.core as mx
from mlx_lm.generate import generate_step
from mlx_lm.utils import load_model


def prompt(n, vocab):
    """The same ids bench/compare.exs feeds (a fixed, non-repeating pattern)."""
    return [(i * 7919 + 11) % vocab for i in range(n)]


def first_token_seconds(model, ids):
    start = time.perf_counter()
    steps = generate_step(mx.array(ids), model, max_tokens=1)
    next(steps)
    return time.perf_counter() - start


def prefill(model, vocab, n, budget, measured):
    """Tokens/s of the prefill at `n` tokens, or at a shorter length if `n` would overrun:
    the median of 3 runs, as on our side, or of fewer when more would pass the budget.
    `measured` maps prompt lengths to the seconds of the runs already taken (reused)."""
    rate = 16 / statistics.median(measured[16])
    at = n
    while at > 16 and at / rate > budget:
        at //= 2
    runs = measured.setdefault(at, [])
    while len(runs) < 3 and (not runs or sum(runs) + runs[0] <= budget):
        runs.append(first_token_seconds(model, prompt(at, vocab)))
    seconds = statistics.median(runs)
    return {"tokens": n, "measured_at": at, "runs": len(runs), "ms": seconds * 1000, "tok_s": at / seconds}


def decode(model, vocab, n, budget):
    """Milliseconds between greedy tokens after a 16-token prompt (mlx-lm's async loop)."""
    gaps, last, start = [], None, time.perf_counter()
    for _ in generate_step(mx.array(prompt(16, vocab)), model, max_tokens=n + 1):
        now = time.perf_counter()
        if last is not None:
            gaps.append((now - last) * 1000)
        last = now
        if now - start > budget and len(gaps) >= 8:
            break
    gaps.sort()
    return {
        "tokens": len(gaps),
        "mean_ms": statistics.fmean(gaps),
        "median_ms": statistics.median(gaps),
        "p95_ms": gaps[min(len(gaps) - 1, int(0.95 * len(gaps)))],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("--compute", choices=["checkpoint", "float32"], default="checkpoint")
    ap.add_argument("--prompt-lens", default="128,512")
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--budget", type=float, default=120.0)
    args = ap.parse_args()

    model, config = load_model(Path(args.ckpt))
    if args.compute == "float32":
        model.set_dtype(mx.float32)
    mx.eval(model.parameters())
    vocab = config["vocab_size"]

    # Warm-up, and a 16-token rate that decides whether long prompts fit the budget.
    mx.reset_peak_memory()
    first_token_seconds(model, prompt(2, vocab))
    measured = {16: [first_token_seconds(model, prompt(16, vocab))]}
    result = {
        "prefill": [prefill(model, vocab, int(n), args.budget, measured) for n in args.prompt_lens.split(",")],
        "decode": decode(model, vocab, args.decode, args.budget),
        "mlx_peak_bytes": mx.get_peak_memory(),
        # ru_maxrss is in KiB on Linux, bytes on macOS.
        "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
