# Aggregate throughput of Qwen3.Serving (continuous batching) with 1, 4 and 8 concurrent
# callers against the same requests run one after another with Qwen3.generate/3: same
# checkpoint, same run, greedy, each caller with its own 32-token prompt.
#   mix run bench/serving.exs [--only NAME,...] [--weights stored,widened,int8] [--tokens N]
# (int8: weights as stored, packed products with int8 activations where the CPU has VNNI)
#                             [--write-readme] [CKPT_DIR ...]
# Without directories it uses the tiny and 0.6B-shaped bf16 checkpoints of bench/checkpoints.py,
# and the 0.6B-shaped 4-bit one twice: as stored (packed kernels) and widened to float32.
Code.require_file("support.exs", __DIR__)
alias Qwen3.{Model, Serving}

{opts, dirs} =
  OptionParser.parse!(System.argv(),
    strict: [only: :string, weights: :string, tokens: :integer, write_readme: :boolean]
  )

callers = [1, 4, 8]
prompt_len = 32

# {checkpoint dir, how its weights are kept on the CPU}
cases =
  cond do
    opts[:weights] ->
      names = String.split(opts[:only] || "tiny-bf16,0.6b-bf16,0.6b-4bit", ",")
      dirs = if dirs == [], do: Bench.checkpoints(names), else: dirs
      weights = opts[:weights] |> String.split(",") |> Enum.map(&String.to_existing_atom/1)
      for dir <- dirs, w <- weights, do: {dir, w}

    dirs != [] or opts[:only] ->
      dirs = if dirs == [], do: Bench.checkpoints(String.split(opts[:only], ",")), else: dirs
      for dir <- dirs, do: {dir, :stored}

    true ->
      [tiny, bf16, q4] = Bench.checkpoints(["tiny-bf16", "0.6b-bf16", "0.6b-4bit"])
      [{tiny, :stored}, {bf16, :stored}, {q4, :stored}, {q4, :int8}, {q4, :widened}]
  end

load_opts = fn
  :int8 -> [weights: :stored, activations: :int8]
  weights -> [weights: weights]
end

prompt = fn i, vocab -> for j <- 0..(prompt_len - 1), do: rem(i * 7919 + j * 104_729 + 11, vocab) end

timed = fn f ->
  t = System.monotonic_time()
  result = f.()
  {System.convert_time_unit(System.monotonic_time() - t, :native, :microsecond) / 1.0e6, result}
end

# The same KV capacity as a serving slot: a fresh 2,048-token cache per call would cost more.
one_after_another = fn model, prompts, n ->
  Enum.map(prompts, &Qwen3.generate!(model, &1, max_new_tokens: n, max_len: prompt_len + n + 8).tokens)
end

all_at_once = fn name, prompts, n ->
  prompts
  |> Enum.map(fn p -> Task.async(fn -> elem(Serving.generate(name, p, max_new_tokens: n), 1).tokens end) end)
  |> Task.await_many(:infinity)
end

# Fresh prompts every time: a slot keeps its last prompt, and a repeated one would skip
# its prefill on the serving side only.
measure = fn model, name, c, n ->
  salt = System.unique_integer([:positive]) * 8
  prompts = for i <- 0..(c - 1), do: prompt.(salt + i, model.info.vocab_size)
  {seq_s, seq} = timed.(fn -> one_after_another.(model, prompts, n) end)
  before = Serving.stats(name)
  {srv_s, srv} = timed.(fn -> all_at_once.(name, prompts, n) end)
  later = Serving.stats(name)
  count = fn lists -> lists |> Enum.map(&length/1) |> Enum.sum() end

  %{
    seq: count.(seq) / seq_s,
    srv: count.(srv) / srv_s,
    tokens: count.(srv),
    same: srv == seq,
    batch: (later.decode_rows - before.decode_rows) / max(later.decode_steps - before.decode_steps, 1)
  }
end

header = Bench.machine()
IO.puts(header <> "\n")
f1 = &:erlang.float_to_binary(&1 / 1, decimals: 1)
f2 = &:erlang.float_to_binary(&1 / 1, decimals: 2)

rows =
  for {dir, weights} <- cases do
    model = Model.load!(dir, load_opts.(weights))
    big? = model.info.hidden_size >= 1024
    n = opts[:tokens] || if(big?, do: 32, else: 128)
    runs = if big?, do: 1, else: 3
    name = :"bench_#{Path.basename(dir)}_#{weights}"
    {:ok, serving} = Serving.start_link(model: model, name: name, batch_size: 8, max_len: prompt_len + n + 8)
    measure.(model, name, 2, 4)

    for c <- callers do
      samples = for _ <- 1..runs, do: measure.(model, name, c, n)
      m = Enum.find(samples, &(&1.srv / &1.seq == Bench.median(Enum.map(samples, fn s -> s.srv / s.seq end))))

      row =
        [
          Path.basename(dir),
          "#{weights}",
          "#{c}",
          "#{m.tokens}",
          f1.(m.seq),
          f1.(m.srv),
          "**#{f2.(m.srv / m.seq)}×**",
          f2.(m.batch)
        ] ++
          [if(Enum.all?(samples, & &1.same), do: "yes", else: "no")]

      IO.puts(Enum.join(row, "  "))
      row
    end
    |> tap(fn _ -> GenServer.stop(serving) end)
  end
  |> Enum.concat()

head = [
  "checkpoint",
  "weights",
  "callers",
  "tokens",
  "one after another tok/s",
  "serving tok/s",
  "ratio",
  "mean batch",
  "same tokens"
]

Bench.report("serving", header, head, rows, [], opts[:write_readme])
