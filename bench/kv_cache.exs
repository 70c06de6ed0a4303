# KV cache memory per token and decode speed with keys and values stored as computed
# (float32 on the CPU; bf16 where the model computes in bf16) and quantized to 8 and 4 bits
# (`kv_bits`), on the 0.6B-shaped bf16 checkpoint: a 1,024-token prompt, then 64 greedy
# tokens; decode = the median gap between tokens. Memory = the bytes of a 4,096-token
# cache's buffers, per token.
#   mix run bench/kv_cache.exs [--write-readme]
Code.require_file("support.exs", __DIR__)

{opts, _} = OptionParser.parse!(System.argv(), strict: [write_readme: :boolean])
[dir] = Bench.checkpoints(["0.6b-bf16"])
model = Qwen3.load!(dir)
prompt = for i <- 0..1023, do: rem(i * 7919 + 11, model.info.vocab_size)

per_token = fn kv_bits ->
  {:ok, cache} = Qwen3.Model.init_kv_cache(model, max_len: 4096, kv_bits: kv_bits)
  {:ok, bytes} = Qwen3.KVCache.nbytes(cache)
  :ok = Qwen3.KVCache.release(cache)
  bytes / 4096
end

decode = fn kv_bits ->
  Bench.median(Bench.decode_gaps(model, prompt, max_new_tokens: 65, max_len: 1100, kv_bits: kv_bits))
end

rows =
  for {label, bits} <- [{"as computed (f32)", nil}, {"8-bit", 8}, {"4-bit", 4}] do
    bytes = per_token.(bits)
    ms = decode.(bits)
    [label, "#{Float.round(bytes / 1024, 1)}", :erlang.float_to_binary(ms, decimals: 1)]
  end

notes = [
  "Groups of 64 along the head dimension, a float32 scale and bias each (the compute dtype's; in bf16 they " <>
    "would take 2 bytes each, and the cache as computed 112 KiB per token)."
]

Bench.report(
  "kv-cache",
  Bench.machine(),
  ["KV cache", "KiB per token", "decode ms/token after 1,024 tokens"],
  rows,
  notes,
  opts[:write_readme]
)
