defmodule Qwen3.CLI do
  @moduledoc false
  # Options shared by `mix qwen3.generate` and `mix qwen3.chat`: which model, where, and
  # how to sample.

  @load_switches [model: :string, device: :string, dtype: :string, weights: :string, activations: :string]

  def switches, do: @load_switches ++ Qwen3.Options.cli_switches()

  def usage do
    """
        --model DIR|ORG/NAME                   checkpoint directory or Hugging Face repo id (QWEN3_MODEL)
        --device cpu|gpu                       --dtype f32|bf16|f16
        --weights stored|widened               as the checkpoint stores them (default), or widened at load
        --activations float32|int8             int8: 4/8-bit products through integer dot products (AVX-512 VNNI CPUs)
    #{Qwen3.Options.cli_usage()}
    """
  end

  def parse!(argv, extra) do
    {opts, rest, invalid} = OptionParser.parse(argv, strict: switches() ++ extra)
    if rest != [] or invalid != [], do: Mix.raise("unexpected arguments: #{inspect(rest ++ invalid)}")
    opts
  end

  def load_model!(opts) do
    Mix.Task.run("app.start")

    path =
      opts[:model] || System.get_env("QWEN3_MODEL") || Mix.raise("--model DIR (or QWEN3_MODEL) is required")

    load_opts = [
      device: String.to_atom(opts[:device] || "cpu"),
      dtype: opts[:dtype] && String.to_atom(opts[:dtype]),
      weights: opts[:weights] && String.to_atom(opts[:weights]),
      activations: String.to_atom(opts[:activations] || "float32")
    ]

    case Qwen3.load(path, load_opts) do
      {:ok, model} -> model
      {:error, e} -> Mix.raise(Exception.message(e))
    end
  end

  @doc "Generation options from the command line over `defaults` (absent ones stay unset)."
  def generation_opts(opts, defaults), do: Keyword.merge(defaults, Qwen3.Options.from_cli(opts))

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
