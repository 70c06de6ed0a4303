defmodule Qwen3.Fixtures do
  @moduledoc false
  # Tiny random checkpoints + mlx-lm golden data, built by scripts/setup_fixtures.sh
  # (run by `make test`, which exports QWEN3_FIXTURES).

  def dir do
    System.get_env("QWEN3_FIXTURES") ||
      raise "QWEN3_FIXTURES is not set: run `make test` or `export QWEN3_FIXTURES=$(scripts/setup_fixtures.sh)`"
  end

  def path(variant), do: Path.join(dir(), variant)

  def variants, do: dir() |> Path.join("variants.txt") |> File.read!() |> String.split()

  def prompts(variant), do: variant |> golden("prompts.txt") |> File.read!() |> lines()

  @doc "Compute dtypes with golden data for `variant`, e.g. [\"bfloat16\", \"float32\"]."
  def computes(variant) do
    for f <- File.ls!(Path.join(path(variant), "golden")),
        String.starts_with?(f, "greedy-"),
        do: f |> String.slice(7..-5)
  end

  def greedy(variant, compute),
    do: variant |> golden("greedy-#{compute}.txt") |> File.read!() |> lines() |> hd()

  @doc "Last-position logits per prompt, as lists of floats."
  def logits(variant, compute) do
    bin = variant |> golden("logits-#{compute}.f32") |> File.read!()
    floats = for <<v::float-32-little <- bin>>, do: v
    Enum.chunk_every(floats, div(length(floats), length(prompts(variant))))
  end

  @doc """
  mlx-lm's layer-0 attention and MLP on fixed inputs (`primitives_golden` in
  make_fixtures.py): `%{name => {shape, floats}}` for x1, x2, attention1, attention2, mlp.
  """
  def primitives(variant) do
    for line <- variant |> golden("primitives.txt") |> File.read!() |> String.split("\n", trim: true),
        into: %{} do
      [name | dims] = String.split(line)
      bin = variant |> golden("primitive-#{name}.f32") |> File.read!()
      {name, {Enum.map(dims, &String.to_integer/1), for(<<v::float-32-little <- bin>>, do: v)}}
    end
  end

  @doc "Hugging Face `transformers` outputs on the real Qwen3 tokenizer (make_text_fixtures.py)."
  def text_golden, do: dir() |> Path.join("text/golden.json") |> File.read!() |> Qwen3.JSON.decode!()

  @doc "The tiny model with the real Qwen3 vocabulary, tokenizer and chat template."
  def chat_model_path, do: path("tiny-chat")

  @doc "mlx-lm's embeddings of the tiny-embedding texts: `{meta, vectors}` (see make_fixtures.py)."
  def embeddings do
    dir = Path.join(path("tiny-embedding"), "golden")
    meta = dir |> Path.join("embeddings.json") |> File.read!() |> Qwen3.JSON.decode!()
    floats = for <<v::float-32-little <- File.read!(Path.join(dir, "embeddings.f32"))>>, do: v
    {meta, Enum.chunk_every(floats, div(length(floats), length(meta["texts"])))}
  end

  defp golden(variant, file), do: Path.join([path(variant), "golden", file])

  defp lines(text),
    do:
      for(
        line <- String.split(text, "\n", trim: true),
        do: line |> String.split() |> Enum.map(&String.to_integer/1)
      )
end
