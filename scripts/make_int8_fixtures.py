"""Golden data for `int8_activations`: mlx-lm's own model on the same packed checkpoint, with
every product that the int8 kernels take fed its input as they round it (per weight group:
step max|x| / 127 in float32, x · (127 / max|x|) rounded to nearest even) and the biases'
part taken from x itself, as the kernels take it. An independent implementation of the
method, in MLX's float32 ops, for the Rust and Elixir tests to match tightly.

Run by make_fixtures.py; alone:  python scripts/make_int8_fixtures.py FIXTURE_DIR/VARIANT
"""

import sys
from contextlib import contextmanager
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx_lm.models.cache import make_prompt_cache
from mlx_lm.utils import load_model


def kernels_take(bits, group, k):
    """The layouts cpp/int8_kernels.cc takes (int8_supported)."""
    return bits in (4, 8) and group in (32, 64, 128) and k % (512 // bits) == 0 and k // group <= 1024


def int8_product(x, w, scales, biases, group, bits):
    k = x.shape[-1]
    if not kernels_take(bits, group, k):
        return mx.quantized_matmul(x, w, scales, biases, transpose=True, group_size=group, bits=bits)
    g = x.reshape(*x.shape[:-1], k // group, group)
    top = mx.max(mx.abs(g), axis=-1, keepdims=True)
    inverse = mx.where(top > 0, 127.0 / top, 0.0)
    rounded = mx.clip(mx.round(g * inverse), -127, 127) * (top / 127.0)
    y = mx.quantized_matmul(
        rounded.reshape(x.shape), w, scales, biases, transpose=True, group_size=group, bits=bits
    )
    # The kernels add Σ_g bias · Σ_{c∈g} x with the unrounded x.
    return y + (g.sum(-1) - rounded.sum(-1)) @ biases.T.astype(x.dtype)


@contextmanager
def rounded_activations():
    linear, as_linear = nn.QuantizedLinear.__call__, nn.QuantizedEmbedding.as_linear

    def linear_call(self, x):
        y = int8_product(x, self["weight"], self["scales"], self.get("biases"), self.group_size, self.bits)
        return y + self["bias"] if "bias" in self else y

    def embedding_as_linear(self, x):
        return int8_product(x, self["weight"], self["scales"], self.get("biases"), self.group_size, self.bits)

    nn.QuantizedLinear.__call__, nn.QuantizedEmbedding.as_linear = linear_call, embedding_as_linear
    try:
        yield
    finally:
        nn.QuantizedLinear.__call__, nn.QuantizedEmbedding.as_linear = linear, as_linear


def int8_golden(path, prompts, steps):
    """golden/int8-logits.f32 (last position per prompt) and golden/int8-greedy.txt."""
    model, _ = load_model(path)
    model.set_dtype(mx.float32)
    with rounded_activations():
        logits = [model(mx.array([p]), cache=make_prompt_cache(model))[0, -1] for p in prompts]
        cache = make_prompt_cache(model)
        y = model(mx.array([prompts[0]]), cache=cache)[:, -1]
        tokens = []
        for _ in range(steps):
            tokens.append(int(mx.argmax(y, axis=-1).item()))
            y = model(mx.array([[tokens[-1]]]), cache=cache)[:, -1]
    gdir = Path(path) / "golden"
    np.stack([np.array(l) for l in logits]).astype("<f4").tofile(gdir / "int8-logits.f32")
    (gdir / "int8-greedy.txt").write_text(" ".join(map(str, tokens)) + "\n")
    return tokens


if __name__ == "__main__":
    import json

    variant = Path(sys.argv[1])
    meta = json.loads((variant / "golden" / "meta.json").read_text())
    mx.set_default_device(mx.cpu)
    print(int8_golden(variant, meta["prompts"], len(meta["golden"]["float32"]["greedy"])))
