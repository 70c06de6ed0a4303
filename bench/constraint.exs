# What a JSON Schema constraint costs per token: greedy-free sampled decoding with and
# without `json_schema:` on the same checkpoint, in one run, alternating. The schema keeps
# the output going (a long string field), so every step computes a mask over the whole
# vocabulary (151,936 tokens). The checkpoints need the real tokenizer: the tiny-chat test
# fixture and the 0.6B-shaped benchmark checkpoint with the tokenizer linked beside it.
#   mix run bench/constraint.exs [--write-readme]
Code.require_file("support.exs", __DIR__)

{opts, _} = OptionParser.parse!(System.argv(), strict: [write_readme: :boolean])

dirs = [
  Path.join(System.fetch_env!("QWEN3_FIXTURES"), "tiny-chat")
  | Enum.map(Bench.checkpoints(["0.6b-bf16"]), &Bench.with_tokenizer/1)
]

schema = %{type: "object", properties: %{text: %{type: "string", minLength: 400}}, required: ["text"]}

header = Bench.machine()
IO.puts(header <> "\n")
f = &:erlang.float_to_binary(&1 / 1, decimals: 2)

rows =
  for dir <- dirs do
    model = Qwen3.load!(dir)
    big? = model.info.hidden_size >= 1024
    {n, runs} = if big?, do: {24, 3}, else: {96, 7}
    base = [max_new_tokens: n, max_len: 256, sampler: :sample, temperature: 1.0]
    # The first constrained call builds the vocabulary's token trie: not part of a step.
    {:ok, _} = Qwen3.generate(model, "Go", base ++ [json_schema: schema, seed: 0])

    pairs =
      for seed <- 1..runs do
        free = Qwen3.generate!(model, "Go", base ++ [seed: seed])
        bound = Qwen3.generate!(model, "Go", base ++ [seed: seed, json_schema: schema])
        true = length(bound.tokens) == n
        {free.timing.per_token_ms, bound.timing.per_token_ms}
      end

    free = Bench.median(Enum.map(pairs, &elem(&1, 0)))
    bound = Bench.median(Enum.map(pairs, &elem(&1, 1)))

    name =
      dir
      |> Path.basename()
      |> String.replace_prefix("qwen3-bench-", "")
      |> String.replace_suffix("-tokenized", "")

    row = [
      name,
      f.(free),
      f.(bound),
      "**#{Bench.signed(bound - free)}**",
      "**#{Bench.signed((bound / free - 1) * 100)}%**"
    ]

    IO.puts(Enum.join(row, "  "))
    row
  end

head = ["checkpoint", "ms/token, free", "ms/token, JSON Schema", "the mask adds ms", "decode cost"]

md =
  ([head, Enum.map(head, fn _ -> "---" end)] ++ rows)
  |> Enum.map_join("\n", &("| " <> Enum.join(&1, " | ") <> " |"))

report = "#{Date.utc_today()} · #{header}\n\n#{md}\n"
IO.puts("\n" <> report)
if opts[:write_readme], do: Bench.write_readme("constraint", report)
