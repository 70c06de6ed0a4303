# Text embeddings (Qwen3.embed) on the 0.6B-shaped bf16 checkpoint with the real tokenizer:
# texts per second at batch size 1 and 16, on texts of mixed length (8–120 words).
#   mix run bench/embedding.exs [--write-readme]
Code.require_file("support.exs", __DIR__)

{opts, _} = OptionParser.parse!(System.argv(), strict: [write_readme: :boolean])
[dir] = Enum.map(Bench.checkpoints(["0.6b-bf16"]), &Bench.with_tokenizer/1)
model = Qwen3.load!(dir)
words = ~w(the model reads each text once and keeps the state of its last token as the vector)
texts = for i <- 1..32, do: words |> Stream.cycle() |> Enum.take(8 + rem(i * 37, 113)) |> Enum.join(" ")
tokens = texts |> Enum.map(&length(elem(Qwen3.Embedding.tokens(model, &1), 1))) |> Enum.sum()

rate = fn batch_size ->
  Qwen3.embed!(model, Enum.take(texts, batch_size), batch_size: batch_size)
  {us, _} = :timer.tc(fn -> Qwen3.embed!(model, texts, batch_size: batch_size) end)
  length(texts) / (us / 1.0e6)
end

rows =
  for batch_size <- [1, 16] do
    r = rate.(batch_size)

    [
      Integer.to_string(batch_size),
      :erlang.float_to_binary(r, decimals: 2),
      "#{round(r * tokens / length(texts))}"
    ]
  end

notes = [
  "#{length(texts)} texts, #{tokens} tokens in all (EOS included); #{model.info.dtype} compute, weights as stored. " <>
    "Batch 16 left-pads each batch to its longest text (texts are sorted by length first)."
]

Bench.report(
  "embedding",
  Bench.machine(),
  ["batch size", "texts/s", "tokens/s"],
  rows,
  notes,
  opts[:write_readme]
)
