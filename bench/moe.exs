# Qwen3-MoE decode and prefill against mlx-lm, side by side in one run on one checkpoint:
# Qwen3-30B-A3B's shapes with 4 of its 48 layers, 4-bit as mlx-lm's convert writes it
# (bench/checkpoints.py; ≈ 2 GB, built once into the cache). Bytes per token count only
# the experts a token picks (8 of 128 per layer): the active-expert roofline.
#   mix run bench/moe.exs [--budget S] [--write-readme] [CKPT_DIR]
alias Qwen3.{Generate, Memory, Model}

Code.require_file("support.exs", __DIR__)

{opts, dirs} = OptionParser.parse!(System.argv(), strict: [budget: :integer, write_readme: :boolean])
budget = opts[:budget] || 120
python = System.fetch_env!("QWEN3_ORACLE_PYTHON")
[dir] = if dirs == [], do: Bench.checkpoints(["30b-a3b-4l-4bit"]), else: dirs
{prompt_len, decode_tokens, runs} = {128, 64, 3}
prompt = fn n, vocab -> for i <- 0..(n - 1), do: rem(i * 7919 + 11, vocab) end
blas_env = Qwen3.Blas.environment()

ours = fn loop, model ->
  ids = prompt.(prompt_len, model.info.vocab_size)

  prefill =
    for _ <- 0..runs do
      {_, r} = Generate.generate!(ids, model, max_new_tokens: 1, max_len: prompt_len + 1, loop: loop)
      :ok = Qwen3.KVCache.release(r.kv_cache)
      r.timing.prefill_ms
    end

  gaps =
    Bench.decode_gaps(model, prompt.(16, model.info.vocab_size), max_new_tokens: decode_tokens + 1, loop: loop)

  # The first prefill compiles nothing here but warms the caches: it is left out.
  %{prefill_ms: Bench.median(tl(prefill)), decode_ms: Bench.median(gaps)}
end

model = Model.load!(dir)
:ok = Memory.reset_peak()
elixir = ours.(:elixir, model)
native = ours.(:native, model)
peak = Memory.stats!().peak
info = model.info

IO.puts(:stderr, "==> mlx-lm")

{out, 0} =
  System.cmd(
    python,
    ~w(bench/mlx_lm_side.py #{dir} --compute checkpoint --budget #{budget} --prompt-lens #{prompt_len} --decode #{decode_tokens}),
    env: blas_env
  )

ref = out |> String.split("\n", trim: true) |> List.last() |> Qwen3.JSON.decode!()
{out, 0} = System.cmd(python, ["bench/bandwidth.py"], env: blas_env)
gbs = out |> String.trim() |> String.to_float()

f1 = fn x -> :erlang.float_to_binary(x / 1, decimals: 1) end
mb = fn bytes -> "#{round(bytes / 1_048_576)}" end
roof_ms = info.active_weight_bytes / 1.0e9 / gbs * 1000
ref_prefill = hd(ref["prefill"])

row = fn label, prefill_tok_s, decode_ms, peak_mib ->
  [
    label,
    f1.(prefill_tok_s),
    f1.(decode_ms),
    f1.(1000 / decode_ms),
    peak_mib,
    "#{round(100 * roof_ms / decode_ms)}%"
  ]
end

rows = [
  row.("ours, Elixir loop", prompt_len * 1000 / elixir.prefill_ms, elixir.decode_ms, mb.(peak)),
  row.("ours, native step", prompt_len * 1000 / native.prefill_ms, native.decode_ms, mb.(peak)),
  row.("mlx-lm", ref_prefill["tok_s"], ref["decode"]["median_ms"], mb.(ref["mlx_peak_bytes"]))
]

head = ["run", "prefill #{prompt_len} tok/s", "decode ms/token", "decode tok/s", "MLX peak MiB", "roofline"]

notes = [
  "Checkpoint #{Path.basename(dir)}: #{mb.(info.weight_bytes)} MiB of weights, of which a decode step " <>
    "reads #{mb.(info.active_weight_bytes)} MiB (#{info.num_experts_per_tok} of #{info.num_experts} experts per layer); " <>
    "roofline = those bytes at the measured read bandwidth (#{f1.(gbs)} GB/s) over ms/token.",
  "Ours (Elixir loop) / mlx-lm: decode #{f1.(ref["decode"]["median_ms"] / elixir.decode_ms)}×, " <>
    "prefill #{prompt_len} #{f1.(prompt_len * 1000 / elixir.prefill_ms / ref_prefill["tok_s"])}×."
]

Bench.report("moe", Bench.machine(), head, rows, notes, opts[:write_readme])
