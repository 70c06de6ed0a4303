"""Builds tiny random Qwen3 checkpoints in the exact Hugging Face layout (dense and
MLX-community quantized) and golden outputs from mlx-lm on the same checkpoints.

Run in the oracle venv:  python scripts/make_fixtures.py OUT_DIR [TOKENIZER_DIR]
Writes OUT_DIR/<variant>/ (config.json, *.safetensors, golden/...).
"""

import json
import shutil
import sys
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten
from mlx_lm.models import qwen3, qwen3_moe
from mlx_lm.models.cache import QuantizedKVCache, make_prompt_cache
from mlx_lm.utils import load_model, quantize_model

sys.path.insert(0, str(Path(__file__).parent))
from make_int8_fixtures import int8_golden  # noqa: E402
from make_text_fixtures import build_text_fixtures  # noqa: E402

# head_dim (64) is deliberately not hidden_size / num_attention_heads (32).
TINY = dict(
    vocab_size=1000,
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=64,
    rms_norm_eps=1e-6,
    rope_theta=1000000.0,
    max_position_embeddings=512,
)

# Qwen3-30B-A3B's config.json field for field (transformers 4.51), shapes shrunk; the tiny
# shape above supplies the attention and dense sizes.
MOE = dict(
    architectures=["Qwen3MoeForCausalLM"],
    model_type="qwen3_moe",
    decoder_sparse_step=1,
    mlp_only_layers=[],
    moe_intermediate_size=64,
    norm_topk_prob=True,
    num_experts=8,
    num_experts_per_tok=3,
    output_router_logits=False,
    router_aux_loss_coef=0.001,
)

# MoE variants whose experts are saved one module per expert, as Hugging Face publishes
# Qwen3-MoE (mlx-lm stacks them at load); the others keep mlx-lm's stacked switch_mlp.
PER_EXPERT_TENSORS = {"moe-bf16-per-expert"}

PROMPTS = [[3, 14, 15, 92, 65], [2, 7, 1, 8, 2, 8, 1, 8, 28], list(range(100, 117))]
GREEDY_STEPS = 32

# name: (shape overrides, dtype, tied, quantization or None, shards)
VARIANTS = {
    "dense-f32-tied": ({}, "float32", True, None, 1),
    "dense-bf16-untied": ({}, "bfloat16", False, None, 1),
    "dense-bf16-tied-sharded": ({}, "bfloat16", True, None, 2),
    "dense-f16-untied": ({}, "float16", False, None, 1),
    "q4-g64-tied": ({}, "bfloat16", True, {"group_size": 64, "bits": 4}, 1),
    "q4-g32-untied": ({}, "bfloat16", False, {"group_size": 32, "bits": 4}, 1),
    "q8-g128-untied": ({}, "bfloat16", False, {"group_size": 128, "bits": 8}, 1),
    # Per-module overrides, as mlx-lm writes them for mixed-precision recipes.
    "q-mixed-tied": (
        {},
        "bfloat16",
        True,
        {
            "group_size": 64,
            "bits": 4,
            "model.embed_tokens": {"group_size": 32, "bits": 8},
            "model.layers.1.mlp.down_proj": {"group_size": 128, "bits": 8},
        },
        1,
    ),
    # YaRN with a short original context, so most pairs are stretched at these positions:
    # as `rope_scaling` (transformers 4.x) and as `rope_parameters` (transformers ≥ 5).
    "yarn-f32-tied": (
        {"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}},
        "float32",
        True,
        None,
        1,
    ),
    "yarn-bf16-params": (
        {
            "rope_parameters": {
                "rope_type": "yarn",
                "factor": 8.0,
                "original_max_position_embeddings": 32,
                "beta_fast": 16,
                "rope_theta": 1000000.0,
            }
        },
        "bfloat16",
        False,
        None,
        1,
    ),
    "moe-bf16-per-expert": (MOE, "bfloat16", False, None, 1),
    # Quantized by mlx-lm's own convert path (its router override: 8 bits, groups of 64).
    "moe-q4-g64": (MOE, "bfloat16", False, {"group_size": 64, "bits": 4, "mlx_lm": True}, 1),
    # Layers 0 and 2 dense by decoder_sparse_step, 3 by mlp_only_layers: only layer 1 sparse.
    "moe-f32-step2-tied": (
        {**MOE, "num_hidden_layers": 4, "decoder_sparse_step": 2, "mlp_only_layers": [3], "norm_topk_prob": False},
        "float32",
        True,
        None,
        1,
    ),
}


def hf_config(shape, dtype, tied, quantization):
    cfg = {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "max_window_layers": shape["num_hidden_layers"],
        "rope_scaling": None,
        "sliding_window": None,
        "use_sliding_window": False,
        "use_cache": True,
        "tie_word_embeddings": tied,
        "torch_dtype": dtype,
        "transformers_version": "4.51.0",
        **shape,
    }
    if quantization:
        cfg["quantization"] = quantization
        cfg["quantization_config"] = quantization
    return cfg


def random_weights(model, seed):
    """Large enough that the next token depends on the context (checked below)."""
    rng = np.random.default_rng(seed)
    new = []
    for name, p in tree_flatten(model.parameters()):
        if "norm" in name:
            w = 1.0 + 0.1 * rng.standard_normal(p.shape)
        elif "embed_tokens" in name:
            w = rng.standard_normal(p.shape) * 0.3
        else:
            w = rng.standard_normal(p.shape) / np.sqrt(p.shape[-1]) * 2.5
        new.append((name, mx.array(w.astype(np.float32))))
    model.load_weights(new)


def quantize(model, quantization):
    defaults = {k: quantization[k] for k in ("group_size", "bits")}

    def predicate(path, module):
        if not hasattr(module, "to_quantized"):
            return False
        return quantization.get(path, defaults)

    nn.quantize(model, class_predicate=predicate, **defaults)


def per_expert(weights, experts):
    """mlx-lm's stacked `switch_mlp.{name}.weight` [E, ...] as Hugging Face's
    `experts.{e}.{name}.weight`, one tensor per expert."""
    out = {}
    for k, v in weights.items():
        if ".mlp.switch_mlp." not in k:
            out[k] = v
            continue
        prefix, name = k.split(".switch_mlp.")
        for e in range(experts):
            out[f"{prefix}.experts.{e}.{name}"] = v[e]
    return out


def save(out, cfg, model, dtype, shards, split_experts=False):
    out.mkdir(parents=True, exist_ok=True)
    weights = dict(tree_flatten(model.parameters()))
    if cfg["tie_word_embeddings"]:
        weights.pop("lm_head.weight", None)
    if split_experts:
        weights = per_expert(weights, cfg["num_experts"])
    target = getattr(mx, dtype)
    weights = {k: (v.astype(target) if mx.issubdtype(v.dtype, mx.floating) else v) for k, v in weights.items()}
    names = sorted(weights)
    if shards == 1:
        mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "pt"})
    else:
        index = {"metadata": {"total_size": sum(v.nbytes for v in weights.values())}, "weight_map": {}}
        for i in range(shards):
            part = names[i::shards]
            fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            mx.save_safetensors(str(out / fname), {k: weights[k] for k in part}, metadata={"format": "pt"})
            index["weight_map"].update({k: fname for k in part})
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    (out / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 151643, "eos_token_id": [151645, 151643], "do_sample": True,
                    "temperature": 0.6, "top_p": 0.95, "top_k": 20}, indent=2))


def golden(path, compute):
    """Last-position logits per prompt and greedy tokens, from mlx-lm itself."""
    model, _ = load_model(path)
    if compute == "float32":
        model.set_dtype(mx.float32)
    logits = []
    for prompt in PROMPTS:
        out = model(mx.array([prompt]), cache=make_prompt_cache(model))
        logits.append(out[0, -1].astype(mx.float32))
    cache = make_prompt_cache(model)
    y = model(mx.array([PROMPTS[0]]), cache=cache)[:, -1]
    tokens = []
    for _ in range(GREEDY_STEPS):
        tok = int(mx.argmax(y, axis=-1).item())
        tokens.append(tok)
        y = model(mx.array([[tok]]), cache=cache)[:, -1]
    if len(set(tokens)) < 8:
        raise SystemExit(f"{path}: greedy output barely depends on context: {tokens}")
    gdir = path / "golden"
    gdir.mkdir(exist_ok=True)
    np.stack([np.array(l) for l in logits]).astype("<f4").tofile(gdir / f"logits-{compute}.f32")
    # Plain text twins of meta.json, for readers without a JSON library (Elixir 1.14).
    (gdir / f"greedy-{compute}.txt").write_text(" ".join(map(str, tokens)) + "\n")
    (gdir / "prompts.txt").write_text("".join(" ".join(map(str, p)) + "\n" for p in PROMPTS))
    return {"greedy": tokens, "logits_file": f"golden/logits-{compute}.f32"}


def kv_quant_golden(path):
    """The same checks as `golden` in float32 with mlx-lm's QuantizedKVCache (from the first
    token, groups of 64) at 8 and 4 bits."""
    model, _ = load_model(path)
    model.set_dtype(mx.float32)
    gdir = path / "golden"
    meta = {}
    for bits in (8, 4):
        fresh = lambda: [QuantizedKVCache(group_size=64, bits=bits) for _ in model.layers]  # noqa: E731
        logits = [model(mx.array([p]), cache=fresh())[0, -1] for p in PROMPTS]
        cache = fresh()
        y = model(mx.array([PROMPTS[0]]), cache=cache)[:, -1]
        tokens = []
        for _ in range(GREEDY_STEPS):
            tokens.append(int(mx.argmax(y, axis=-1).item()))
            y = model(mx.array([[tokens[-1]]]), cache=cache)[:, -1]
        np.stack([np.array(l) for l in logits]).astype("<f4").tofile(gdir / f"kv{bits}-logits.f32")
        (gdir / f"kv{bits}-greedy.txt").write_text(" ".join(map(str, tokens)) + "\n")
        meta[bits] = tokens
    return meta


def primitives_golden(path):
    """Layer 0's attention (batch 2: a 3-token chunk, then 2 more at offset 3, causal) and
    MLP on fixed normed inputs, from mlx-lm's own modules, in float32."""
    model, _ = load_model(path)
    model.set_dtype(mx.float32)
    layer = model.model.layers[0]
    rng = np.random.default_rng(123)
    hidden = layer.mlp.down_proj.weight.shape[0]
    x1 = mx.array(rng.standard_normal((2, 3, hidden)).astype(np.float32))
    x2 = mx.array(rng.standard_normal((2, 2, hidden)).astype(np.float32))
    cache = make_prompt_cache(model)[0]
    out = {"x1": x1, "x2": x2}
    out["attention1"] = layer.self_attn(x1, mask="causal", cache=cache)
    out["attention2"] = layer.self_attn(x2, mask="causal", cache=cache)
    out["mlp"] = layer.mlp(x1)
    gdir = path / "golden"
    lines = []
    for name, a in out.items():
        np.array(a.astype(mx.float32)).astype("<f4").tofile(gdir / f"primitive-{name}.f32")
        lines.append(" ".join([name, *map(str, a.shape)]))
    (gdir / "primitives.txt").write_text("".join(line + "\n" for line in lines))


def build_variant(root, name, spec, seed):
    shape_over, dtype, tied, quantization, shards = spec
    shape = {**TINY, **shape_over}
    by_mlx_lm = bool(quantization and quantization.get("mlx_lm"))
    cfg = hf_config(shape, dtype, tied, None if by_mlx_lm else quantization)
    arch = qwen3_moe if cfg["model_type"] == "qwen3_moe" else qwen3
    model = arch.Model(arch.ModelArgs.from_dict(cfg))
    random_weights(model, seed)
    if quantization:
        model.set_dtype(getattr(mx, dtype))
        if by_mlx_lm:
            model, cfg = quantize_model(model, cfg, quantization["group_size"], quantization["bits"])
        else:
            quantize(model, quantization)
    out = root / name
    shutil.rmtree(out, ignore_errors=True)
    save(out, cfg, model, dtype, shards, split_experts=name in PER_EXPERT_TENSORS)
    computes = ["float32"] + ([dtype] if dtype != "float32" else [])
    if arch is qwen3_moe:
        computes = ["float32"]  # MLX's CPU gather_mm, which mlx-lm's experts run, is float32 only
    meta = {"prompts": PROMPTS, "dtype": dtype, "quantized": bool(quantization)}
    meta["golden"] = {c: golden(out, c) for c in computes}
    (out / "golden" / "meta.json").write_text(json.dumps(meta, indent=2))
    if dtype == "float32" and not quantization:
        primitives_golden(out)
    if name == "dense-f32-tied":
        kv_quant_golden(out)
    if quantization:
        int8_golden(out, PROMPTS, GREEDY_STEPS)
    return meta


def build_chat_model(root, tokenizer_dir):
    """The real Qwen3 vocabulary and tokenizer on tiny random weights: for the demo and
    tokenizer/chat tests (its text is random, its plumbing is real)."""
    shape = {**TINY, "vocab_size": 151936, "hidden_size": 64, "head_dim": 32, "intermediate_size": 128}
    cfg = hf_config(shape, "bfloat16", True, None)
    model = qwen3.Model(qwen3.ModelArgs.from_dict(cfg))
    random_weights(model, 7)
    out = root / "tiny-chat"
    shutil.rmtree(out, ignore_errors=True)
    save(out, cfg, model, "bfloat16", 1)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(tokenizer_dir) / f, out / f)


EMBED_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
EMBED_QUERY = "What is the capital of France?"
EMBED_TEXTS = [
    "Paris is the capital and largest city of France.",
    "Hi",
    "Die Hauptstadt Deutschlands ist Berlin, und sie liegt an der Spree. 日本の首都は東京です。",
    f"Instruct: {EMBED_INSTRUCTION}\nQuery:{EMBED_QUERY}",
    "def add(a, b):\n    return a + b\n" * 3,
]


def build_embedding_model(root, tokenizer_dir):
    """A Qwen3-Embedding-shaped checkpoint: a bare backbone (tensor names without `model.`,
    no LM head, tied like Qwen3-Embedding-0.6B) with the real tokenizer, and mlx-lm's
    final hidden state at each text's appended <|endoftext|>, L2-normalised."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    shape = {**TINY, "vocab_size": 151936, "hidden_size": 64, "head_dim": 32, "intermediate_size": 128}
    cfg = hf_config(shape, "float32", True, None)
    model = qwen3.Model(qwen3.ModelArgs.from_dict(cfg))
    random_weights(model, 13)
    out = root / "tiny-embedding"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    weights = {k.removeprefix("model."): v for k, v in tree_flatten(model.parameters()) if k != "lm_head.weight"}
    mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(tokenizer_dir) / f, out / f)
    rows, vectors = [], []
    for text in EMBED_TEXTS:
        ids = tok.encode(text, add_special_tokens=False) + [eos]
        h = model.model(mx.array([ids]))[0, -1].astype(mx.float32)
        vectors.append(np.array(h / mx.linalg.norm(h)))
        rows.append(ids)
    gdir = out / "golden"
    gdir.mkdir()
    np.stack(vectors).astype("<f4").tofile(gdir / "embeddings.f32")
    meta = {"texts": EMBED_TEXTS, "ids": rows, "instruction": EMBED_INSTRUCTION, "query": EMBED_QUERY}
    (gdir / "embeddings.json").write_text(json.dumps(meta, indent=2))


# What the steered model says after any prompt that ends as a chat template's generation
# prompt does ("<|im_start|>assistant\n"): a think block, a tool call, the end of its turn.
STEERED_REPLY = (
    '<think>Weather first.</think><tool_call>{"name":"get_weather","arguments":{"days":3}}'
    "</tool_call><|im_end|>"
)


def build_steered_model(root, tokenizer_dir):
    """The real Qwen3 vocabulary on weights built so that greedy decoding follows one chain
    of tokens: every layer adds nothing to the residual stream (o_proj and down_proj are
    zero), each chain token's embedding is its own unit vector, and the LM head row of the
    token after it is that vector. The chain's tokens are distinct, so the last token alone
    picks the next. For tests of tool calls and think blocks through the whole stack."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    start = tok.encode("<|im_start|>assistant\n", add_special_tokens=False)[-1]
    chain = [start] + tok.encode(STEERED_REPLY, add_special_tokens=False)
    if len(set(chain)) != len(chain):
        raise SystemExit(f"the steered reply repeats a token: {chain}")
    shape = {**TINY, "vocab_size": 151936, "hidden_size": 64, "head_dim": 32, "intermediate_size": 128}
    cfg = hf_config(shape, "float32", False, None)
    model = qwen3.Model(qwen3.ModelArgs.from_dict(cfg))
    random_weights(model, 11)
    rng = np.random.default_rng(11)
    hidden = shape["hidden_size"]
    embed = rng.standard_normal((shape["vocab_size"], hidden)).astype(np.float32) * 0.01
    head = np.zeros((shape["vocab_size"], hidden), np.float32)
    for this, after in zip(chain, chain[1:]):
        u = rng.standard_normal(hidden).astype(np.float32)
        embed[this] = u / np.linalg.norm(u)
        head[after] = embed[this]
    weights = [("model.embed_tokens.weight", mx.array(embed)), ("lm_head.weight", mx.array(head))]
    for i, layer in enumerate(model.model.layers):
        for name, w in (("self_attn.o_proj", layer.self_attn.o_proj), ("mlp.down_proj", layer.mlp.down_proj)):
            weights.append((f"model.layers.{i}.{name}.weight", mx.zeros(w.weight.shape)))
    model.load_weights(weights, strict=False)
    out = root / "tiny-steered"
    shutil.rmtree(out, ignore_errors=True)
    save(out, cfg, model, "float32", 1)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(tokenizer_dir) / f, out / f)
    (out / "steered_reply.txt").write_text(STEERED_REPLY)


def main():
    root = Path(sys.argv[1])
    root.mkdir(parents=True, exist_ok=True)
    mx.set_default_device(mx.cpu)
    summary = {}
    for seed, (name, spec) in enumerate(VARIANTS.items()):
        summary[name] = build_variant(root, name, spec, seed + 1)
        print(name, {c: g["greedy"][:8] for c, g in summary[name]["golden"].items()})
    if len(sys.argv) > 2:
        build_chat_model(root, sys.argv[2])
        build_steered_model(root, sys.argv[2])
        build_embedding_model(root, sys.argv[2])
        build_text_fixtures(root, sys.argv[2])
    (root / "variants.json").write_text(json.dumps(sorted(VARIANTS), indent=2))
    (root / "variants.txt").write_text("".join(v + "\n" for v in sorted(VARIANTS)))


if __name__ == "__main__":
    main()
