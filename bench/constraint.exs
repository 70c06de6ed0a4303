# What a JSON Schema constraint costs per token: greedy-free sampled decoding with and
# without `json_schema:` on the same checkpoint, in one run, alternating which goes first. The schema keeps
# the output going (a long string field), so every step computes a mask over the whole
# vocabulary (151,936 tokens). The checkpoints need the real tokenizer: the tiny-chat test
# fixture and the 0.6B-shaped benchmark checkpoint with the tokenizer linked beside it.
#   mix run bench/constraint.exs [--write-readme]
Code.require_file("support.exs", __DIR__)

{opts, _} = OptionParser.parse!(System.argv(), strict: [write_readme: :boolean])

dirs = Bench.tokenized_checkpoints()

schema = %{type: "object", properties: %{text: %{type: "string", minLength: 400}}, required: ["text"]}

header = Bench.machine()
IO.puts(header <> "\n")
f = &:erlang.float_to_binary(&1 / 1, decimals: 2)

rows =
  for dir <- dirs do
    model = Qwen3.load!(dir)
    big? = model.info.hidden_size >= 1024
    {n, runs} = if big?, do: {24, 4}, else: {96, 8}
    base = [max_new_tokens: n, max_len: 256, sampler: :sample, temperature: 1.0]
    # The first constrained call builds the vocabulary's token trie: not part of a step.
    {:ok, _} = Qwen3.generate(model, "Go", base ++ [json_schema: schema, seed: 0])

    pairs =
      for seed <- 1..runs do
        # Which side runs first alternates: on this 2-core VM the second of two
        # back-to-back runs measured several percent faster or slower by its place alone.
        free = fn -> Qwen3.generate!(model, "Go", base ++ [seed: seed]) end
        bound = fn -> Qwen3.generate!(model, "Go", base ++ [seed: seed, json_schema: schema]) end

        {free, bound} =
          if rem(seed, 2) == 0 do
            f = free.()
            {f, bound.()}
          else
            b = bound.()
            {free.(), b}
          end

        true = length(bound.tokens) == n
        {free.timing.per_token_ms, bound.timing.per_token_ms}
      end

    free = Bench.median(Enum.map(pairs, &elem(&1, 0)))
    bound = Bench.median(Enum.map(pairs, &elem(&1, 1)))

    row = [
      Bench.name(dir),
      f.(free),
      f.(bound),
      "**#{Bench.signed(bound - free)}**",
      "**#{Bench.signed((bound / free - 1) * 100)}%**"
    ]

    IO.puts(Enum.join(row, "  "))
    row
  end

# The mask alone: one draw from fixed random logits of the whole vocabulary, with and
# without the constraint, each timed (the draw reads its token, as a decode step does).
alias Qwen3.{Array, Sampler}
model = Qwen3.load!(hd(dirs))
vocab = model.info.vocab_size

logits =
  for(_ <- 1..vocab, into: <<>>, do: <<:rand.normal() * 3::float-32-native>>)
  |> Array.from_binary!([1, vocab], :f32)

spec = Sampler.spec!(model, sampler: :sample, temperature: 1.0, top_k: nil, top_p: 1.0)
# Long enough that 320 draws never finish the string.
long = %{type: "string", minLength: 5000}
{:ok, c} = Qwen3.Constraint.compile(model, [json_schema: long, constraint_start: :first_token], false)

draws = fn constraint ->
  {:ok, s} = Sampler.new(model, spec, [seed: 1], [], constraint)
  for _ <- 1..20, do: {:ok, [_]} = Array.to_list(elem(Sampler.sample(s, logits), 1))

  for _ <- 1..300,
      do: elem(:timer.tc(fn -> {:ok, [_]} = Array.to_list(elem(Sampler.sample(s, logits), 1)) end), 0)
end

pct = fn xs, p -> xs |> Enum.sort() |> Enum.at(round(p * (length(xs) - 1))) end
{free, bound} = {draws.(nil), draws.(c)}

mask_line =
  "One draw from #{vocab} logits (300 timed): free median #{pct.(free, 0.5)} µs, p99 #{pct.(free, 0.99)} µs; " <>
    "constrained median #{pct.(bound, 0.5)} µs, p99 #{pct.(bound, 0.99)} µs: the mask adds " <>
    "#{pct.(bound, 0.5) - pct.(free, 0.5)} µs at the median."

IO.puts(mask_line)

head = ["checkpoint", "ms/token, free", "ms/token, JSON Schema", "the mask adds ms", "decode cost"]

Bench.report("constraint", header, head, rows, [mask_line], opts[:write_readme])
