"""The llama.cpp side's checkpoints: one of bench/checkpoints.py's bf16 random-weight
checkpoints written as GGUF (architecture qwen3) in F32, BF16, Q8_0 or Q4_0, so that
llama.cpp runs the same weights as this project and mlx-lm. Every matrix takes the one
type (no Q6_K output or embedding, as llama-quantize --pure): like for like with the
4/8-bit MLX checkpoints, which quantize the embedding too. Norms stay F32, as llama.cpp
wants them. The vocabulary is the real Qwen3 tokenizer's, padded to the model's rows.

Run in the oracle venv (mlx reads the safetensors, gguf writes and quantizes):
  python bench/gguf_checkpoint.py CKPT_DIR TOKENIZER_DIR OUT.gguf {F32,BF16,Q8_0,Q4_0}
"""

import json
import sys
from pathlib import Path

import gguf
import mlx.core as mx
import numpy as np

TYPES = {
    "F32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
    "BF16": (gguf.GGMLQuantizationType.BF16, gguf.LlamaFileType.MOSTLY_BF16),
    "Q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    "Q4_0": (gguf.GGMLQuantizationType.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0),
}

# Hugging Face name (after "model.layers.{i}.") → GGUF name (after "blk.{i}.").
LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    _, _, i, rest = hf.split(".", 3)
    return f"blk.{i}.{LAYER[rest]}"


def add_tokenizer(w, tokenizer_dir, vocab_size):
    """The byte-level BPE vocabulary and merges of tokenizer.json, as llama.cpp's converter
    writes Qwen's (model "gpt2", pre-tokenizer "qwen2"); rows past the tokenizer are padding."""
    tok = json.loads((Path(tokenizer_dir) / "tokenizer.json").read_text())
    tokens = {i: t for t, i in tok["model"]["vocab"].items()}
    special = set()
    for added in tok["added_tokens"]:
        tokens[added["id"]] = added["content"]
        if added.get("special"):
            special.add(added["id"])
    names, types = [], []
    for i in range(vocab_size):
        if i in tokens:
            names.append(tokens[i])
            types.append(gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL)
        else:
            names.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(names)
    w.add_token_types(types)
    w.add_token_merges(merges)
    eos = next(a["id"] for a in tok["added_tokens"] if a["content"] == "<|im_end|>")
    pad = next(a["id"] for a in tok["added_tokens"] if a["content"] == "<|endoftext|>")
    w.add_eos_token_id(eos)
    w.add_pad_token_id(pad)
    w.add_bos_token_id(pad)
    w.add_add_bos_token(False)


def main():
    ckpt, tokenizer_dir, out, kind = sys.argv[1:5]
    qtype, file_type = TYPES[kind]
    cfg = json.loads((Path(ckpt) / "config.json").read_text())
    w = gguf.GGUFWriter(out, "qwen3")
    w.add_name(Path(ckpt).name)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_key_length(cfg["head_dim"])
    w.add_value_length(cfg["head_dim"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_file_type(file_type)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_tokenizer(w, tokenizer_dir, cfg["vocab_size"])
    for file in sorted(Path(ckpt).glob("*.safetensors")):
        for name, array in mx.load(str(file)).items():
            data = np.array(array.astype(mx.float32))
            if data.ndim == 1:
                w.add_tensor(gguf_name(name), data)
            elif qtype == gguf.GGMLQuantizationType.F32:
                w.add_tensor(gguf_name(name), data)
            else:
                w.add_tensor(gguf_name(name), gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
