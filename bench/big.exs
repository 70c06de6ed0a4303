# A Qwen3-8B-shaped 4-bit checkpoint (random weights, 36 layers; bench/big_checkpoint.py
# writes it, and the same weights as a Q4_0 GGUF, once into the cache): the memory it takes
# once loaded as stored, and its decode and prefill beside llama.cpp Q4_0 of the same
# weights, in the same run.
#   mix run bench/big.exs [--write-readme]
Code.require_file("support.exs", __DIR__)

{opts, _} = OptionParser.parse!(System.argv(), strict: [write_readme: :boolean])

python = System.fetch_env!("QWEN3_ORACLE_PYTHON")
root = Path.join(System.fetch_env!("QWEN3_CACHE"), "bench-checkpoints")
{llama_dir, 0} = System.cmd(Path.expand("scripts/setup_llama_cpp.sh"), [])
llama_dir = String.trim(llama_dir)

IO.puts(:stderr, "==> the 8B-shaped checkpoints (first time: ~10 minutes, 9 GB)")
{_, 0} = System.cmd(python, ["bench/big_checkpoint.py", root, System.fetch_env!("QWEN3_TOKENIZER_DIR")])
dir = Path.join(root, "8b-4bit")
gguf = Path.join([root, "gguf", "8b-Q4_0.gguf"])

# Peak resident memory of this process so far (Linux), in bytes.
peak_rss = fn ->
  with {:ok, s} <- File.read("/proc/self/status"),
       [kb] <- Regex.run(~r/VmHWM:\s+(\d+) kB/, s, capture: :all_but_first) do
    String.to_integer(kb) * 1024
  else
    _ -> 0
  end
end

header = Bench.machine()
IO.puts(header)
rss_before = Qwen3.Memory.rss()
{load_us, model} = :timer.tc(fn -> Qwen3.Model.load!(dir) end)
rss_loaded = Qwen3.Memory.rss()
vocab = model.info.vocab_size
prompt = fn n -> for i <- 0..(n - 1), do: rem(i * 7919 + 11, vocab) end

{:ok, gen} = Qwen3.Generate.start(prompt.(16), model, max_new_tokens: 33, max_len: 64)

gaps =
  Stream.unfold(gen, fn g ->
    case Qwen3.Generate.next(g) do
      {:token, _, _, g} -> {System.monotonic_time(:microsecond), g}
      {:done, _} -> nil
    end
  end)
  |> Enum.chunk_every(2, 1, :discard)
  |> Enum.map(fn [a, b] -> (b - a) / 1000 end)

{_, r} = Qwen3.Generate.generate!(prompt.(128), model, max_new_tokens: 1, max_len: 129)
ours = %{decode: Bench.median(gaps), prefill: 128_000 / r.timing.prefill_ms, peak: peak_rss.()}

File.cp!("bench/llama_cpp_side.mjs", Path.join(llama_dir, "llama_cpp_side.mjs"))
IO.puts(:stderr, "==> llama.cpp Q4_0")

{out, 0} =
  System.cmd("node", [
    Path.join(llama_dir, "llama_cpp_side.mjs"),
    gguf,
    "--vocab",
    "#{vocab}",
    "--prompt-lens",
    "128",
    "--decode",
    "32",
    "--runs",
    "1",
    "--threads",
    "#{:erlang.system_info(:logical_processors)}"
  ])

llama = out |> String.split("\n", trim: true) |> List.last() |> Qwen3.JSON.decode!()
gb = fn b -> :erlang.float_to_binary(b / 1.0e9, decimals: 2) end
f1 = fn x -> :erlang.float_to_binary(x / 1, decimals: 1) end
[%{"tok_s" => llama_prefill}] = llama["prefill"]
llama_decode = llama["decode"]["median_ms"]

rows = [
  [
    "ours, 4-bit as stored (f32 compute)",
    gb.(model.info.weight_bytes),
    "#{gb.(rss_loaded - rss_before)} / #{gb.(ours.peak)}",
    f1.(ours.decode),
    f1.(ours.prefill),
    f1.(load_us / 1.0e6)
  ],
  [
    "#{llama["llama_cpp"]}, Q4_0",
    gb.(File.stat!(gguf).size),
    "– / #{gb.(llama["max_rss_bytes"])}",
    f1.(llama_decode),
    f1.(llama_prefill),
    ""
  ]
]

head = [
  "8B-shaped, 36 layers",
  "weights GB",
  "RSS GB (added by the load / peak)",
  "decode ms/token",
  "prefill 128 tok/s",
  "load s"
]

note =
  "ours / llama.cpp: decode #{f1.(llama_decode / ours.decode)}× as fast, prefill 128 #{f1.(ours.prefill / llama_prefill)}×"

Bench.report("big", header, head, rows, [note], opts[:write_readme])
