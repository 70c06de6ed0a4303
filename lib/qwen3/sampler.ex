defmodule Qwen3.Sampler do
  @moduledoc """
  How the next token is chosen. Built from generation options by `Qwen3.Generate`.

    * `:greedy` — the most likely token (after the repetition penalty)
    * `:top_p_gpu` — temperature, top-k, top-p and min-p applied in the MLX graph on the
      model's device; the sampled token stays lazy and feeds the next step
    * `:top_p_cpu` — the same filters on the host, in Rust, after evaluating the logits

  Filters run in Hugging Face's order: repetition penalty (over the last
  `:repetition_context_size` tokens, prompt included), temperature, top-k, top-p, min-p.
  A sampler owns its random stream: `:seed` (or `:rng_key`) makes it reproducible; without
  one each generation draws a fresh seed.
  """
  alias Qwen3.{Array, Error, Model, Native}

  @samplers [:greedy, :top_p_cpu, :top_p_gpu]

  @doc "Generation options this module reads, with their defaults."
  def defaults do
    [
      sampler: :greedy,
      temperature: 0.95,
      top_p: 0.9,
      top_k: nil,
      min_p: nil,
      repetition_penalty: nil,
      repetition_context_size: 20,
      seed: nil,
      rng_key: nil
    ]
  end

  @doc "Checks the sampling options (raises `ArgumentError`) and returns the native spec."
  @spec spec!(keyword) :: map
  def spec!(opts) do
    sampler = opts[:sampler]

    unless sampler in @samplers,
      do: raise(ArgumentError, "unknown :sampler #{inspect(sampler)} (use one of #{inspect(@samplers)})")

    check!(opts, :temperature, &(is_number(&1) and &1 >= 0), "a number >= 0")
    check!(opts, :top_p, &(is_number(&1) and &1 > 0 and &1 <= 1), "a number in (0, 1]")
    check!(opts, :top_k, &(is_nil(&1) or (is_integer(&1) and &1 > 0)), "nil or a positive integer")
    check!(opts, :min_p, &(is_nil(&1) or (is_number(&1) and &1 >= 0 and &1 < 1)), "nil or a number in [0, 1)")
    check!(opts, :repetition_penalty, &(is_nil(&1) or (is_number(&1) and &1 > 0)), "nil or a number > 0")
    check!(opts, :repetition_context_size, &(is_integer(&1) and &1 >= 0), "an integer >= 0")

    check!(
      opts,
      :seed,
      &(is_nil(&1) or (is_integer(&1) and &1 in 0..0xFFFFFFFFFFFFFFFF)),
      "nil or a 64-bit unsigned integer"
    )

    check!(opts, :rng_key, &(is_nil(&1) or is_struct(&1, Array)), "nil or a key from Qwen3.Sampler.key/1")

    %{
      temperature: if(sampler == :greedy, do: 0.0, else: opts[:temperature] / 1),
      top_k: opts[:top_k] || 0,
      top_p: opts[:top_p] / 1,
      min_p: (opts[:min_p] || 0) / 1,
      repetition_penalty: (opts[:repetition_penalty] || 1) / 1,
      repetition_context: opts[:repetition_context_size],
      on_host: sampler == :top_p_cpu,
      seed: 0
    }
  end

  @doc false
  # Raises `ArgumentError` naming `key` unless `valid?` holds for its value.
  def check!(opts, key, valid?, expected) do
    unless valid?.(opts[key]),
      do: raise(ArgumentError, "#{inspect(key)} must be #{expected}, got #{inspect(opts[key])}")
  end

  @doc """
  A sampler for one generation on `model`'s device. `history` is the prompt (token ids), for
  the repetition penalty.
  """
  @spec new(Model.t(), map, keyword, [non_neg_integer]) :: {:ok, reference} | {:error, Error.t()}
  def new(%Model{device: device}, spec, opts, history) do
    with {:ok, seed} <- seed(opts) do
      Native.sampler_new(device, %{spec | seed: seed}, [history]) |> Native.await()
    end
  end

  defp seed(opts) do
    cond do
      opts[:rng_key] -> key_seed(opts[:rng_key])
      opts[:seed] -> {:ok, opts[:seed]}
      true -> {:ok, :rand.uniform(0xFFFFFFFFFFFFFFFF) - 1}
    end
  end

  defp key_seed(key) do
    case Array.to_list(key) do
      {:ok, [hi, lo]} when is_integer(hi) and is_integer(lo) ->
        {:ok, Bitwise.bor(Bitwise.bsl(hi, 32), lo)}

      _ ->
        {:error, %Error{kind: :invalid_argument, message: ":rng_key must be a uint32 array of shape {2}"}}
    end
  end

  @doc """
  An MLX PRNG key (`uint32 {2}`, as `mlx.core.random.key(seed)` makes it) for `:rng_key`.
  Generating with `rng_key: key(s)` equals generating with `seed: s`.
  """
  @spec key(non_neg_integer, keyword) :: {:ok, Array.t()} | {:error, Error.t()}
  def key(seed, opts \\ []) when is_integer(seed) and seed in 0..0xFFFFFFFFFFFFFFFF do
    Array.from_list([Bitwise.bsr(seed, 32), Bitwise.band(seed, 0xFFFFFFFF)], Keyword.put(opts, :dtype, :u32))
  end

  @doc "The next token per row (`{B}` uint32) from `logits`."
  @spec sample(reference, Array.t()) :: {:ok, Array.t()} | {:error, Error.t()}
  def sample(sampler, %Array{ref: logits}), do: Native.sampler_sample(sampler, logits) |> Native.await_array()

  @doc "The next token of each row (`{B}` uint32), row `i` drawn by `Enum.at(samplers, i)`."
  @spec sample_rows([reference], Array.t()) :: {:ok, Array.t()} | {:error, Error.t()}
  def sample_rows(samplers, %Array{ref: logits}) when is_list(samplers),
    do: Native.sampler_sample_rows(samplers, logits) |> Native.await_array()
end
