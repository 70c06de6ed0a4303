"""Random-weight checkpoints with the real Qwen3-0.6B shapes (bf16, and 4/8-bit quantized the
way mlx-community publishes them), plus the tiny test shape, for bench/compare.exs; and
Qwen3-30B-A3B's shapes with 4 of its 48 layers, 4-bit as mlx-lm's convert writes it, for
bench/moe.exs.

Run in the oracle venv:  python bench/checkpoints.py OUT_DIR [NAME ...]
Writes OUT_DIR/<name>/ for each name given (default: all of CHECKPOINTS); existing ones are kept.
"""

import sys
from pathlib import Path

import mlx.core as mx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from make_fixtures import MOE, TINY, hf_config, quantize, random_weights, save  # noqa: E402
from mlx_lm.models import qwen3, qwen3_moe  # noqa: E402
from mlx_lm.utils import quantize_model  # noqa: E402

# Qwen/Qwen3-0.6B's config.json.
QWEN3_0_6B = dict(
    vocab_size=151936,
    hidden_size=1024,
    intermediate_size=3072,
    num_hidden_layers=28,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=128,
    rms_norm_eps=1e-6,
    rope_theta=1000000.0,
    max_position_embeddings=40960,
)

# Qwen/Qwen3-30B-A3B's config.json with 4 layers instead of 48 (untied, like the original).
QWEN3_30B_A3B_4_LAYERS = {
    **QWEN3_0_6B,
    **MOE,
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "num_hidden_layers": 4,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "moe_intermediate_size": 768,
    "num_experts": 128,
    "num_experts_per_tok": 8,
    "tie_word_embeddings": False,
}

# name: (shape, quantization or None); all bf16 and tied unless the shape says otherwise,
# like the published checkpoints.
CHECKPOINTS = {
    "tiny-bf16": (TINY, None),
    "0.6b-bf16": (QWEN3_0_6B, None),
    "0.6b-8bit": (QWEN3_0_6B, {"group_size": 64, "bits": 8}),
    "0.6b-4bit": (QWEN3_0_6B, {"group_size": 64, "bits": 4}),
    "30b-a3b-4l-4bit": (QWEN3_30B_A3B_4_LAYERS, {"group_size": 64, "bits": 4}),
}


def build(out, shape, quantization):
    shape = dict(shape)
    tied = shape.pop("tie_word_embeddings", True)
    cfg = hf_config(shape, "bfloat16", tied, quantization)
    moe = cfg["model_type"] == "qwen3_moe"
    arch = qwen3_moe if moe else qwen3
    model = arch.Model(arch.ModelArgs.from_dict(cfg))
    random_weights(model, seed=0)
    model.set_dtype(mx.bfloat16)
    if quantization and moe:
        # As mlx-lm's convert does it (routers at 8 bits), and the config it writes.
        cfg.pop("quantization"), cfg.pop("quantization_config")
        model, cfg = quantize_model(model, cfg, quantization["group_size"], quantization["bits"])
    elif quantization:
        quantize(model, quantization)
    save(out, cfg, model, "bfloat16", 1)


def main():
    root = Path(sys.argv[1])
    names = sys.argv[2:] or list(CHECKPOINTS)
    unknown = [n for n in names if n not in CHECKPOINTS]
    if unknown:
        raise SystemExit(f"unknown benchmark checkpoint(s) {unknown}: the names are {list(CHECKPOINTS)}")
    for name, (shape, quantization) in ((n, CHECKPOINTS[n]) for n in names):
        out = root / name
        if (out / "generation_config.json").exists():  # written last
            continue
        print(f"==> building the {name} benchmark checkpoint", file=sys.stderr, flush=True)
        build(out, shape, quantization)


if __name__ == "__main__":
    main()
