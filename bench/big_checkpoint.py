"""A Qwen3-8B-shaped checkpoint with random weights, 4-bit (group 64, bf16 scales and
biases, as mlx-community publishes Qwen3-8B-4bit), and the same weights as a Q4_0 GGUF for
llama.cpp. Written a tensor at a time: the float32 weights (33 GB) never exist at once.

Run in the oracle venv:  python bench/big_checkpoint.py OUT_DIR TOKENIZER_DIR
Writes OUT_DIR/8b-4bit/ (sharded safetensors + index) and OUT_DIR/gguf/8b-Q4_0.gguf.
"""

import json
import sys
from pathlib import Path

import gguf
import mlx.core as mx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from gguf_checkpoint import add_tokenizer, gguf_name  # noqa: E402
from make_fixtures import hf_config  # noqa: E402

# Qwen/Qwen3-8B's config.json.
QWEN3_8B = dict(
    vocab_size=151936,
    hidden_size=4096,
    intermediate_size=12288,
    num_hidden_layers=36,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    rms_norm_eps=1e-6,
    rope_theta=1000000.0,
    max_position_embeddings=40960,
)
QUANT = {"group_size": 64, "bits": 4}
SHARD_BYTES = 2 << 30


def tensors(c):
    """(name, shape) of every tensor, in the checkpoint's order."""
    h, q, kv, ff = c["hidden_size"], c["num_attention_heads"] * c["head_dim"], \
        c["num_key_value_heads"] * c["head_dim"], c["intermediate_size"]
    yield "model.embed_tokens.weight", (c["vocab_size"], h)
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        yield p + "input_layernorm.weight", (h,)
        yield p + "self_attn.q_proj.weight", (q, h)
        yield p + "self_attn.k_proj.weight", (kv, h)
        yield p + "self_attn.v_proj.weight", (kv, h)
        yield p + "self_attn.o_proj.weight", (h, q)
        yield p + "self_attn.q_norm.weight", (c["head_dim"],)
        yield p + "self_attn.k_norm.weight", (c["head_dim"],)
        yield p + "post_attention_layernorm.weight", (h,)
        yield p + "mlp.gate_proj.weight", (ff, h)
        yield p + "mlp.up_proj.weight", (ff, h)
        yield p + "mlp.down_proj.weight", (h, ff)
    yield "model.norm.weight", (h,)
    yield "lm_head.weight", (c["vocab_size"], h)


def main():
    root, tokenizer_dir = Path(sys.argv[1]), sys.argv[2]
    out = root / "8b-4bit"
    gguf_path = root / "gguf" / "8b-Q4_0.gguf"
    if (out / "generation_config.json").exists() and gguf_path.exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    gguf_path.parent.mkdir(parents=True, exist_ok=True)
    c = QWEN3_8B
    cfg = hf_config(c, "bfloat16", False, QUANT)

    w = gguf.GGUFWriter(str(gguf_path) + ".part", "qwen3")
    w.add_name("8b-Q4_0")
    w.add_block_count(c["num_hidden_layers"])
    w.add_context_length(c["max_position_embeddings"])
    w.add_embedding_length(c["hidden_size"])
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_head_count(c["num_attention_heads"])
    w.add_head_count_kv(c["num_key_value_heads"])
    w.add_key_length(c["head_dim"])
    w.add_value_length(c["head_dim"])
    w.add_rope_freq_base(c["rope_theta"])
    w.add_layer_norm_rms_eps(c["rms_norm_eps"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_tokenizer(w, tokenizer_dir, c["vocab_size"])

    rng = np.random.default_rng(0)
    shard, shard_bytes, shards, weight_map = {}, 0, [], {}

    def flush():
        nonlocal shard, shard_bytes
        if shard:
            name = f"model-{len(shards) + 1:05d}.safetensors"
            mx.save_safetensors(str(out / name), shard, metadata={"format": "mlx"})
            shards.append(name)
            weight_map.update({k: name for k in shard})
            shard, shard_bytes = {}, 0

    for name, shape in tensors(c):
        print(name, file=sys.stderr, flush=True)
        if len(shape) == 1:
            data = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
            shard[name] = mx.array(data).astype(mx.bfloat16)
            shard_bytes += shard[name].nbytes
            w.add_tensor(gguf_name(name), data)
        else:
            data = (rng.standard_normal(shape, dtype=np.float32) * (2.5 / np.sqrt(shape[1])))
            wq, scales, biases = mx.quantize(mx.array(data).astype(mx.bfloat16), **QUANT)
            stem = name[: -len(".weight")]
            shard[stem + ".weight"] = wq
            shard[stem + ".scales"] = scales
            shard[stem + ".biases"] = biases
            mx.eval(wq, scales, biases)
            shard_bytes += wq.nbytes + scales.nbytes + biases.nbytes
            w.add_tensor(gguf_name(name), gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q4_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q4_0)
        if shard_bytes >= SHARD_BYTES:
            flush()
    flush()

    total = sum((out / s).stat().st_size for s in shards)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    Path(str(gguf_path) + ".part").rename(gguf_path)
    (out / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 151643, "eos_token_id": [151645, 151643]}, indent=2))


if __name__ == "__main__":
    main()
