defmodule Qwen3.CLI do
  @moduledoc false
  # Options shared by `mix qwen3.generate` and `mix qwen3.chat`: which model, where, and
  # how to sample.

  @switches [
    model: :string,
    device: :string,
    dtype: :string,
    max_new_tokens: :integer,
    sampler: :string,
    temperature: :float,
    top_p: :float,
    top_k: :integer,
    min_p: :float,
    repetition_penalty: :float,
    seed: :integer,
    stop: :keep,
    loop: :string
  ]

  def switches, do: @switches

  def usage do
    """
      --model DIR|ORG/NAME   checkpoint directory or Hugging Face repo id (QWEN3_MODEL)
      --device cpu|gpu       --dtype f32|bf16|f16
      --max-new-tokens N     --loop elixir|native
      --sampler greedy|top_p_gpu|top_p_cpu  --temperature T  --top-p P  --top-k K
      --min-p P              --repetition-penalty R  --seed S  --stop TEXT (repeatable)
    """
  end

  def parse!(argv, extra) do
    {opts, rest, invalid} = OptionParser.parse(argv, strict: @switches ++ extra)
    if rest != [] or invalid != [], do: Mix.raise("unexpected arguments: #{inspect(rest ++ invalid)}")
    opts
  end

  def load_model!(opts) do
    Mix.Task.run("app.start")

    path =
      opts[:model] || System.get_env("QWEN3_MODEL") || Mix.raise("--model DIR (or QWEN3_MODEL) is required")

    load_opts = [device: atom(opts[:device] || "cpu"), dtype: opts[:dtype] && atom(opts[:dtype])]

    case Qwen3.load(path, load_opts) do
      {:ok, model} -> model
      {:error, e} -> Mix.raise(Exception.message(e))
    end
  end

  @doc "Generation options from the command line (absent ones keep the library defaults)."
  def generation_opts(opts, defaults) do
    sampling =
      for key <- [:temperature, :top_p, :top_k, :min_p, :repetition_penalty, :seed, :max_new_tokens],
          Keyword.has_key?(opts, key),
          do: {key, opts[key]}

    named = for key <- [:sampler, :loop], Keyword.has_key?(opts, key), do: {key, atom(opts[key])}
    stops = Keyword.get_values(opts, :stop)
    stops = if stops == [], do: [], else: [stop: stops]
    Keyword.merge(defaults, sampling ++ named ++ stops)
  end

  def atom(s), do: String.to_atom(s)

  @doc "Writes a `Qwen3.stream_to/4` generation's text as it arrives; returns its result."
  def print_stream(ref) do
    receive do
      {^ref, {:token, text, _id}} ->
        IO.write(text)
        print_stream(ref)

      {^ref, {:done, result}} ->
        {:ok, result}

      {^ref, {:error, e}} ->
        {:error, e}
    end
  end

  def format_timing(%{timing: nil}), do: ""

  def format_timing(%{timing: t, finish_reason: reason, tokens: tokens}) do
    "#{length(tokens)} tokens (#{reason}): prefill #{round(t.prefill_ms)} ms, " <>
      "#{Float.round(t.per_token_ms / 1, 2)} ms/token"
  end
end
