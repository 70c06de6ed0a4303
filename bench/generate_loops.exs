# Per-token decode time: Elixir-driven layer loop vs the all-native step, same checkpoint,
# same run, alternating. Usage: mix run bench/generate_loops.exs [CHECKPOINT_DIR ...]
alias Qwen3.{Generate, Model}

dirs =
  case System.argv() do
    [] -> Enum.map(["dense-f32-tied", "tiny-chat"], &Path.join(System.fetch_env!("QWEN3_FIXTURES"), &1))
    given -> given
  end

median = fn xs -> xs |> Enum.sort() |> Enum.at(div(length(xs), 2)) end

for dir <- dirs do
  model = Model.load!(dir)
  prompt = Enum.to_list(1..16)
  run = fn loop -> elem(Generate.generate!(prompt, model, max_new_tokens: 64, loop: loop), 1).timing end
  for loop <- [:elixir, :native], do: run.(loop)

  samples = for _ <- 1..7, loop <- [:elixir, :native], do: {loop, run.(loop).per_token_ms}
  per = fn loop -> samples |> Enum.filter(&(elem(&1, 0) == loop)) |> Enum.map(&elem(&1, 1)) |> median.() end
  {e, n} = {per.(:elixir), per.(:native)}

  IO.puts(
    "#{inspect(model)}\n  per token (median of 7 × 64 tokens): elixir #{Float.round(e, 3)} ms, " <>
      "native #{Float.round(n, 3)} ms, elixir/native = #{Float.round(e / n, 3)}"
  )
end
