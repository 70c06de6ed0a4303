defmodule Qwen3.Sampler do
  @moduledoc """
  How the next token is chosen.

    * `:greedy` — the most likely token (after the repetition penalty)
    * `:sample` — temperature, top-k, top-p and min-p applied in the MLX graph on the
      model's device (GPU or CPU); the sampled token stays lazy and feeds the next step
    * `:sample_host` — the same filters on the host, in Rust, after evaluating the logits

  `:top_p_gpu` and `:top_p_cpu` are the deprecated names of `:sample` and `:sample_host`.

  Filters run in this order: repetition penalty (Hugging Face's, over the last
  `:repetition_context_size` tokens, prompt included), presence and frequency penalties
  (OpenAI's, over the generated tokens), temperature, top-k, top-p, min-p.

  A setting a call leaves unset takes the checkpoint's `generation_config.json` (Qwen3's
  say temperature 0.6, top-p 0.95, top-k 20), else its default: temperature 1.0 and every
  filter off. So precedence is: the call, then `generation_config.json`, then the default;
  `nil` given for `:top_k`, `:min_p` or `:repetition_penalty` turns that filter off. The
  sampler itself is greedy unless the call names another (`do_sample` is not read), as
  in mlx-lm. The spec is resolved and checked once, in Rust, by `spec!/2`.

  A sampler owns its random stream: `:seed` (or `:rng_key`) makes it reproducible; without
  one each generation draws a fresh seed.
  """
  alias Qwen3.{Array, Error, Model, Native}

  defmodule Spec do
    @moduledoc """
    A resolved, validated sampler spec: `settings` shows what it does (`:sampler`,
    `:temperature`, `:top_k`, `:top_p`, `:min_p`, `:repetition_penalty`,
    `:repetition_context_size`, `:presence_penalty`, `:frequency_penalty`; 0 and 1.0 mean
    off).
    """
    @enforce_keys [:ref, :settings]
    defstruct [:ref, :settings]
    @type t :: %__MODULE__{ref: reference, settings: map}
  end

  @renamed %{top_p_gpu: :sample, top_p_cpu: :sample_host}

  @doc """
  The spec of a call's sampling options (`Qwen3.Options.sampler_keys/0`; only those it
  set) on `model` (or `nil`: no generation config). Raises `ArgumentError` naming a bad
  option.
  """
  @spec spec!(Model.t() | nil, keyword) :: Spec.t()
  def spec!(model, opts) do
    opts = Enum.map(opts, &rename/1)
    ref = if model, do: model.ref

    case Native.sampler_spec(ref, opts) do
      {:ok, {spec, settings}} ->
        %Spec{ref: spec, settings: settings}

      {:error, {:invalid_option, key, expected}} ->
        raise ArgumentError, "#{inspect(key)} must be #{expected}, got #{inspect(opts[key])}"

      {:error, {:invalid_argument, message}} ->
        raise ArgumentError, message
    end
  end

  defp rename({:sampler, old}) when is_map_key(@renamed, old) do
    new = Map.fetch!(@renamed, old)
    key = {__MODULE__, :warned, old}

    unless :persistent_term.get(key, false) do
      :persistent_term.put(key, true)
      IO.warn("sampler: #{inspect(old)} is deprecated, use #{inspect(new)}", [])
    end

    {:sampler, new}
  end

  defp rename(pair), do: pair

  @doc """
  A sampler for one generation on `model`'s device. `opts` gives `:seed` or `:rng_key`
  (checked by `Qwen3.Options`); `history` is the prompt, for the repetition penalty; with a
  `Qwen3.Constraint`, it draws only what the constraint allows; with `:thinking_budget`, it
  closes `<think>` blocks after that many tokens.
  """
  @spec new(Model.t(), Spec.t(), keyword, [non_neg_integer], Qwen3.Constraint.t() | nil) ::
          {:ok, reference} | {:error, Error.t()}
  def new(%Model{device: device} = model, %Spec{ref: spec}, opts, history, constraint \\ nil) do
    constraint = constraint && {constraint.ref, constraint.start}

    with {:ok, seed} <- seed(opts),
         {:ok, thinking} <- thinking_budget(model, opts[:thinking_budget]) do
      Native.sampler_new(device, spec, seed, [history], constraint, thinking) |> Native.await()
    end
  end

  # `{open, close, budget}`: the ids of `<think>` and `</think>` in the model's tokenizer.
  defp thinking_budget(_model, nil), do: {:ok, nil}

  defp thinking_budget(%Model{tokenizer: %Qwen3.Tokenizer{} = t}, budget) do
    case {Qwen3.Tokenizer.token_to_id(t, "<think>"), Qwen3.Tokenizer.token_to_id(t, "</think>")} do
      {open, close} when is_integer(open) and is_integer(close) ->
        {:ok, {open, close, budget}}

      _ ->
        {:error,
         %Error{
           kind: :invalid_argument,
           message: ":thinking_budget: the tokenizer has no <think> and </think> tokens"
         }}
    end
  end

  defp thinking_budget(%Model{path: path}, _),
    do:
      {:error,
       %Error{
         kind: :not_found,
         message: ":thinking_budget needs the tokenizer, and #{path} has no tokenizer.json"
       }}

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

  @doc """
  For each row of `logits`, the log-probability of `Enum.at(ids, row)` under the raw logits
  (the model's distribution, before penalties and temperature) and the `top` (0..20) most
  likely tokens: `%{logprob: float, top: [{id, logprob}]}`, most likely first.
  """
  @spec logprobs(Array.t(), [non_neg_integer], 0..20) :: {:ok, [map]} | {:error, Error.t()}
  def logprobs(%Array{ref: logits}, ids, top) do
    with {:ok, rows} <- Native.sampler_logprobs(logits, ids, top) |> Native.await() do
      {:ok, for({lp, alternatives} <- rows, do: %{logprob: lp, top: alternatives})}
    end
  end

  @doc "The next token of each row (`{B}` uint32), row `i` drawn by `Enum.at(samplers, i)`."
  @spec sample_rows([reference], Array.t()) :: {:ok, Array.t()} | {:error, Error.t()}
  def sample_rows(samplers, %Array{ref: logits}) when is_list(samplers),
    do: Native.sampler_sample_rows(samplers, logits) |> Native.await_array()
end
