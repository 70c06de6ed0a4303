# This project vs mlx-lm and llama.cpp, side by side in one run, on the same checkpoints.
#   mix run bench/compare.exs [--budget S] [--only NAME,...] [--write-readme] [CKPT_DIR ...]
# Without directories it builds (once, into the cache) random checkpoints with the real
# Qwen3-0.6B shapes in bf16, 8-bit and 4-bit, and the tiny test shape (bench/checkpoints.py),
# and the same 0.6B weights as GGUF for llama.cpp (bench/gguf_checkpoint.py; F32 and BF16
# beside the bf16 checkpoint, Q8_0 beside 8-bit, Q4_0 beside 4-bit). Ours runs with the
# weights as stored (the default) and widened to float32 at load (the path before).
# See bench/README.md for what each column means.
alias Qwen3.{Generate, Memory, Model}

{opts, dirs} =
  OptionParser.parse!(System.argv(), strict: [budget: :integer, only: :string, write_readme: :boolean])

budget = opts[:budget] || 120
python = System.fetch_env!("QWEN3_ORACLE_PYTHON")
prompt_lens = [128, 512]
decode_tokens = 128
runs = 3

Code.require_file("support.exs", __DIR__)

dirs =
  if dirs == [] do
    only =
      if opts[:only], do: String.split(opts[:only], ","), else: ~w(tiny-bf16 0.6b-bf16 0.6b-8bit 0.6b-4bit)

    Bench.checkpoints(only)
  else
    dirs
  end

median = &Bench.median/1
p95 = fn xs -> xs |> Enum.sort() |> Enum.at(min(length(xs) - 1, trunc(0.95 * length(xs)))) end
# The same fixed, non-repeating ids as bench/mlx_lm_side.py.
prompt = fn n, vocab -> for i <- 0..(n - 1), do: rem(i * 7919 + 11, vocab) end

# Our prefill: time to the first token, median of `runs`.
prefill = fn model, n, loop, gen_opts ->
  ids = prompt.(n, model.info.vocab_size)

  # Each run frees its KV cache at once, so the peak column counts one cache, not many.
  run = fn ->
    {_, result} = Generate.generate!(ids, model, [max_new_tokens: 1, max_len: n + 1, loop: loop] ++ gen_opts)
    :ok = Qwen3.KVCache.release(result.kv_cache)
    result.timing
  end

  run.()
  t = median.(for _ <- 1..runs, do: run.().prefill_ms)
  %{tokens: n, ms: t, tok_s: n * 1000 / t}
end

# Our decode: the gap between consecutive tokens, read as the caller sees them.
decode_gaps = fn model, loop, gen_opts ->
  opts = [max_new_tokens: decode_tokens + 1, loop: loop] ++ gen_opts
  Bench.decode_gaps(model, prompt.(16, model.info.vocab_size), opts)
end

# The mlx-lm side loads the same OpenBLAS: it gets the kernels and thread timeout ours got (Qwen3.Blas).
blas_env = Qwen3.Blas.environment()

mlx_lm = fn dir, compute ->
  args = ["bench/mlx_lm_side.py", dir, "--compute", compute, "--budget", "#{budget}"]

  {out, 0} =
    System.cmd(python, args ++ ["--prompt-lens", Enum.join(prompt_lens, ","), "--decode", "#{decode_tokens}"],
      env: blas_env
    )

  out |> String.split("\n", trim: true) |> List.last() |> Qwen3.JSON.decode!()
end

bandwidth = fn ->
  {out, 0} = System.cmd(python, ["bench/bandwidth.py"], env: blas_env)
  out |> String.trim() |> String.to_float()
end

# The llama.cpp side (scripts/setup_llama_cpp.sh installs it): GGUF files of the 0.6B bf16
# checkpoint's weights, by the checkpoint they stand beside.
gguf_types = %{"0.6b-bf16" => ~w(F32 BF16), "0.6b-8bit" => ~w(Q8_0), "0.6b-4bit" => ~w(Q4_0)}

llama_cpp_dir = fn ->
  {dir, 0} = System.cmd(Path.expand("scripts/setup_llama_cpp.sh"), [])
  dir = String.trim(dir)
  File.cp!("bench/llama_cpp_side.mjs", Path.join(dir, "llama_cpp_side.mjs"))
  dir
end

llama_cpp = fn name, vocab ->
  types = Map.get(gguf_types, name, [])
  dir = if types != [], do: llama_cpp_dir.()
  [source] = Bench.checkpoints(["0.6b-bf16"])
  gguf_dir = Path.join(Path.dirname(source), "gguf")

  for type <- types do
    File.mkdir_p!(gguf_dir)
    file = Path.join(gguf_dir, "0.6b-#{type}.gguf")

    unless File.exists?(file) do
      IO.puts(:stderr, "==> writing #{file}")
      part = file <> ".part"
      args = ["bench/gguf_checkpoint.py", source, System.fetch_env!("QWEN3_TOKENIZER_DIR"), part, type]
      {_, 0} = System.cmd(python, args)
      File.rename!(part, file)
    end

    IO.puts(:stderr, "==> #{name}: llama.cpp #{type}")

    args = [
      Path.join(dir, "llama_cpp_side.mjs"),
      file,
      "--vocab",
      "#{vocab}",
      "--prompt-lens",
      Enum.join(prompt_lens, ","),
      "--decode",
      "#{decode_tokens}",
      "--threads",
      "#{:erlang.system_info(:logical_processors)}"
    ]

    {out, 0} = System.cmd("node", args)
    {type, out |> String.split("\n", trim: true) |> List.last() |> Qwen3.JSON.decode!()}
  end
end

# `gen_opts`: generation options for every run (kv_bits: 16, a float16 KV cache).
ours = fn dir, load_opts, loops, gen_opts ->
  # The previous checkpoint's model is garbage by now; collect it so its memory is freed.
  :erlang.garbage_collect()
  model = Model.load!(dir, load_opts)
  :ok = Memory.clear_cache()
  :ok = Memory.reset_peak()
  pre = for loop <- loops, n <- prompt_lens, into: %{}, do: {{loop, n}, prefill.(model, n, loop, gen_opts)}
  # Alternate the loops so drift in machine load hits both alike.
  gaps = for _ <- 1..runs, loop <- loops, do: {loop, decode_gaps.(model, loop, gen_opts)}

  dec =
    for {loop, runs_gaps} <- Enum.group_by(gaps, &elem(&1, 0), &elem(&1, 1)), into: %{} do
      all = List.flatten(runs_gaps)

      {loop,
       %{
         mean_ms: Enum.sum(all) / length(all),
         median_ms: median.(Enum.map(runs_gaps, median)),
         p95_ms: p95.(all),
         tokens: length(all)
       }}
    end

  # Only the info is kept: holding the model would add it to the next checkpoint's peak.
  %{info: model.info, prefill: pre, decode: dec, mlx_peak: Memory.stats!().peak, rss: Memory.rss()}
end

header_machine = "#{Bench.machine()} · OpenBLAS core #{Qwen3.Blas.openblas_coretype() || "as detected"}"
gbs = bandwidth.()
IO.puts("#{header_machine}\nmeasured read bandwidth: #{Float.round(gbs, 1)} GB/s\n")

rows =
  for dir <- dirs do
    name = Path.basename(dir)
    IO.puts(:stderr, "==> #{name}: ours")
    o = ours.(dir, [weights: :stored], [:elixir, :native], [])

    # Packed 4/8-bit weights: also with int8 activations (AVX-512 VNNI CPUs only), and with
    # those and a float16 KV cache (kv_bits: 16; llama.cpp's cache is float16 too).
    {int8, half} =
      if o.info.quantized == :packed do
        IO.puts(:stderr, "==> #{name}: ours, int8 activations")
        run = ours.(dir, [weights: :stored, activations: :int8], [:elixir, :native], [])

        if run.info.int8_activations do
          IO.puts(:stderr, "==> #{name}: ours, int8 activations, float16 KV cache")
          {run, ours.(dir, [weights: :stored, activations: :int8], [:elixir, :native], kv_bits: 16)}
        else
          {nil, nil}
        end
      else
        {nil, nil}
      end

    IO.puts(:stderr, "==> #{name}: ours, weights widened at load")
    wide = ours.(dir, [weights: :widened], [:elixir], [])
    IO.puts(:stderr, "==> #{name}: mlx-lm (checkpoint dtype)")
    ref = mlx_lm.(dir, "checkpoint")
    # Quantized layers stay quantized under set_dtype: a float32 run would repeat the first.
    ref32 =
      if o.info.quantized == :none do
        IO.puts(:stderr, "==> #{name}: mlx-lm (float32)")
        mlx_lm.(dir, "float32")
      end

    llama = llama_cpp.(name, o.info.vocab_size)
    %{name: name, ours: o, int8: int8, half: half, wide: wide, ref: ref, ref32: ref32, llama: llama}
  end

mb = fn bytes -> "#{round(bytes / 1_048_576)}" end
f1 = fn x -> :erlang.float_to_binary(x / 1, decimals: 1) end
f2 = fn x -> :erlang.float_to_binary(x / 1, decimals: 2) end

# mlx-lm cells say when a budget shortened them.
ref_prefill = fn r, i ->
  p = Enum.at(r["prefill"], i)
  suffix = if p["measured_at"] != p["tokens"], do: " (at #{p["measured_at"]})", else: ""
  {p["tok_s"], f1.(p["tok_s"]) <> suffix}
end

ref_decode = fn r ->
  d = r["decode"]
  suffix = if d["tokens"] < decode_tokens, do: " (#{d["tokens"]} tok)", else: ""
  {d["mean_ms"], "#{f1.(d["mean_ms"])} / #{f1.(d["median_ms"])} / #{f1.(d["p95_ms"])}#{suffix}"}
end

# The dtype ours computes in, and what its weights are held as.
form = fn info ->
  held =
    cond do
      info.weights == :widened -> "#{info.dtype} weights"
      info.quantized == :packed -> "packed weights"
      true -> "weights as stored"
    end

  "#{info.dtype}, #{held}"
end

our_line = fn name, o, loop, label ->
  d = o.decode[loop]
  roof = o.info.weight_bytes / 1.0e9 / gbs * 1000

  [
    name,
    "#{label} (#{form.(o.info)})",
    f1.(o.prefill[{loop, 128}].tok_s),
    f1.(o.prefill[{loop, 512}].tok_s),
    "#{f2.(d.mean_ms)} / #{f2.(d.median_ms)} / #{f2.(d.p95_ms)}",
    "#{f1.(1000 / d.mean_ms)}",
    "#{mb.(o.mlx_peak)} / #{mb.(o.rss)}",
    "#{mb.(o.info.weight_bytes)}",
    "#{round(100 * roof / d.mean_ms)}%"
  ]
end

table =
  for %{name: name, ours: o, int8: int8, half: half, wide: wide, ref: ref, ref32: ref32, llama: llama} <- rows do
    info = o.info

    lines =
      [
        our_line.(name, o, :elixir, "ours, Elixir loop"),
        our_line.(name, o, :native, "ours, native step")
      ] ++
        if(int8,
          do: [
            our_line.(name, int8, :elixir, "ours, Elixir loop, int8 activations"),
            our_line.(name, int8, :native, "ours, native step, int8 activations"),
            our_line.(name, half, :elixir, "ours, Elixir loop, int8 activations, f16 KV cache"),
            our_line.(name, half, :native, "ours, native step, int8 activations, f16 KV cache")
          ],
          else: []
        ) ++
        [our_line.(name, wide, :elixir, "ours, Elixir loop")]

    refs =
      for {r, label} <- [{ref, "mlx-lm (checkpoint dtype)"}, {ref32, "mlx-lm (float32)"}], r != nil do
        {med, dec} = ref_decode.(r)

        [
          name,
          label,
          elem(ref_prefill.(r, 0), 1),
          elem(ref_prefill.(r, 1), 1),
          dec,
          f1.(1000 / med),
          "#{mb.(r["mlx_peak_bytes"])} / #{mb.(r["max_rss_bytes"])}",
          "",
          ""
        ]
      end

    llamas =
      for {type, r} <- llama do
        {med, dec} = ref_decode.(r)

        [
          name,
          "llama.cpp #{type}, #{r["threads"]} threads",
          elem(ref_prefill.(r, 0), 1),
          elem(ref_prefill.(r, 1), 1),
          dec,
          f1.(1000 / med),
          "– / #{mb.(r["max_rss_bytes"])}",
          "",
          ""
        ]
      end

    ratio = fn ours_v, ref_v -> f1.(ours_v / ref_v) <> "×" end
    {rp, _} = ref_prefill.(ref, 1)
    {rd, _} = ref_decode.(ref)
    ed = o.decode[:elixir].mean_ms
    nd = o.decode[:native].mean_ms

    # Against llama.cpp at the same bits (BF16 for the bf16 checkpoint).
    vs_llama =
      case Enum.find(llama, fn {t, _} -> t in ~w(BF16 Q8_0 Q4_0) end) do
        {type, r} ->
          {lp, _} = ref_prefill.(r, 1)
          {ld, _} = ref_decode.(r)

          int8_vs =
            if int8,
              do:
                " (int8 activations, Elixir loop / native step: decode " <>
                  "#{ratio.(ld, int8.decode[:elixir].mean_ms)} / #{ratio.(ld, int8.decode[:native].mean_ms)}, " <>
                  "prefill 512 #{ratio.(int8.prefill[{:elixir, 512}].tok_s, lp)} / " <>
                  "#{ratio.(int8.prefill[{:native, 512}].tok_s, lp)}; with a float16 KV cache: decode " <>
                  "#{ratio.(ld, half.decode[:elixir].mean_ms)} / #{ratio.(ld, half.decode[:native].mean_ms)})",
              else: ""

          "; vs llama.cpp #{type}: decode #{ratio.(ld, ed)}, prefill 512 " <>
            ratio.(o.prefill[{:elixir, 512}].tok_s, lp) <> int8_vs

        nil ->
          ""
      end

    summary =
      "#{name}: ours (Elixir loop) / mlx-lm: prefill 512 #{ratio.(o.prefill[{:elixir, 512}].tok_s, rp)}, " <>
        "decode #{ratio.(rd, ed)}#{vs_llama}; as stored vs widened: decode " <>
        "#{ratio.(wide.decode[:elixir].mean_ms, ed)}, prefill 512 " <>
        "#{ratio.(o.prefill[{:elixir, 512}].tok_s, wide.prefill[{:elixir, 512}].tok_s)}; Elixir loop / " <>
        "native step #{Float.round(ed / nd, 3)}; bytes per token #{mb.(info.weight_bytes)} MiB"

    {lines ++ refs ++ llamas, summary}
  end

head = [
  "checkpoint",
  "run",
  "prefill 128 tok/s",
  "prefill 512 tok/s",
  "decode ms/token (mean / median / p95)",
  "decode tok/s",
  "peak MiB (MLX / RSS)",
  "weights MiB",
  "roofline"
]

md =
  ([head, Enum.map(head, fn _ -> "---" end)] ++ Enum.flat_map(table, &elem(&1, 0)))
  |> Enum.map_join("\n", &("| " <> Enum.join(&1, " | ") <> " |"))

summaries = Enum.map_join(table, "\n", &("- " <> elem(&1, 1)))

llama_version =
  case for(%{llama: l} <- rows, {_, r} <- l, do: r["llama_cpp"]) do
    [v | _] -> " · #{v}"
    [] -> ""
  end

report = """
#{Date.utc_today()} · #{header_machine} · read bandwidth #{f1.(gbs)} GB/s#{llama_version}

#{md}

#{summaries}
"""

IO.puts(report)

if opts[:write_readme], do: Bench.write_readme("results", report)
