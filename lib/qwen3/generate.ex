defmodule Qwen3.Generate do
  @moduledoc """
  Token generation. The decoder layers are driven from Elixir, one fused `layer` call each;
  the graph is evaluated once per token, at the sampler, and the next token's graph is
  built while the current one computes (MLX async eval).
  """
  alias Qwen3.{Array, Error, KVCache, Model, Native}

  @defaults [
    max_new_tokens: 100,
    max_len: 2048,
    kv_cache: nil,
    sampler: :greedy,
    loop: :elixir,
    stop: [],
    dump_logits: false,
    profile_timing: true
  ]

  @doc """
  Generates up to `:max_new_tokens` after `input_ids` (a list of token ids, or `[ids]`).

  Returns `{:ok, {new_token_ids, meta}}` with `meta` holding `:finish_reason` (`:stop` or
  `:length`), `:timing` (`:prefill_ms`, `:per_token_ms`, `:total_ms`) and `:kv_cache`.
  Passing that cache back with the whole conversation as `input_ids` prefills only the
  tokens after the cache's offset.

  Options: `:max_new_tokens` (100), `:max_len` (KV capacity, 2048; ignored with
  `:kv_cache`), `:kv_cache`, `:sampler` (`:greedy`), `:loop` (`:elixir` drives the layers
  from Elixir, `:native` runs one native step per token), `:stop` (extra stop token ids;
  the checkpoint's EOS ids always stop), `:dump_logits` (adds `:logits`, one float32
  binary of last-position logits per generated token).
  """
  @spec generate([integer] | [[integer]], Model.t(), keyword) ::
          {:ok, {[integer], map}} | {:error, Error.t()}
  def generate(input_ids, %Model{} = model, opts \\ []) do
    opts = Keyword.validate!(opts, @defaults)
    validate!(opts)
    ids = normalize_ids(input_ids)
    started = System.monotonic_time()

    with {:ok, cache} <- cache_for(model, opts),
         {:ok, offset} <- KVCache.offset(cache),
         {:ok, new_ids} <- new_tokens(ids, offset),
         {:ok, prompt} <- Array.from_list([new_ids], dtype: :s32),
         {:ok, logits} <- prefill(model, prompt, cache, opts[:loop]),
         {:ok, token} <- sample(logits, opts),
         :ok <- async_eval([token]) do
      stop = MapSet.new(model.info.eos_token_ids ++ opts[:stop])
      state = %{model: model, cache: cache, opts: opts, stop: stop, started: started, first_at: nil}

      decode(state, token, logits, [], [], opts[:max_new_tokens])
      |> finish(state, cache, started)
    end
  end

  def generate!(input_ids, model, opts \\ []) do
    case generate(input_ids, model, opts) do
      {:ok, result} -> result
      {:error, e} -> raise e
    end
  end

  defp validate!(opts) do
    unless is_integer(opts[:max_new_tokens]) and opts[:max_new_tokens] >= 1,
      do:
        raise(
          ArgumentError,
          ":max_new_tokens must be a positive integer, got #{inspect(opts[:max_new_tokens])}"
        )

    unless is_integer(opts[:max_len]) and opts[:max_len] >= 1,
      do: raise(ArgumentError, ":max_len must be a positive integer, got #{inspect(opts[:max_len])}")

    unless opts[:sampler] in [:greedy],
      do: raise(ArgumentError, "unknown :sampler #{inspect(opts[:sampler])} (supported: :greedy)")

    unless opts[:loop] in [:elixir, :native],
      do: raise(ArgumentError, ":loop must be :elixir or :native, got #{inspect(opts[:loop])}")

    unless is_list(opts[:stop]) and Enum.all?(opts[:stop], &is_integer/1),
      do: raise(ArgumentError, ":stop must be a list of token ids")

    unless is_nil(opts[:kv_cache]) or is_struct(opts[:kv_cache], KVCache),
      do: raise(ArgumentError, ":kv_cache must be a Qwen3.KVCache")
  end

  defp normalize_ids([row]) when is_list(row), do: normalize_ids(row)

  defp normalize_ids(ids) when is_list(ids) do
    if ids != [] and Enum.all?(ids, &is_integer/1),
      do: ids,
      else: raise(ArgumentError, "input_ids must be a non-empty list of token ids")
  end

  defp cache_for(model, opts),
    do: (opts[:kv_cache] && {:ok, opts[:kv_cache]}) || Model.init_kv_cache(model, max_len: opts[:max_len])

  defp new_tokens(ids, offset) when length(ids) > offset, do: {:ok, Enum.drop(ids, offset)}

  defp new_tokens(ids, offset),
    do:
      {:error,
       %Error{
         kind: :invalid_argument,
         message: "the cache already holds #{offset} tokens; input_ids (#{length(ids)}) must extend them"
       }}

  # Prefill checks user ids against the vocabulary; later steps feed sampled tokens.
  defp prefill(model, ids, cache, loop) do
    with :ok <- Model.check_ids(model, ids), do: step(model, ids, cache, loop)
  end

  defp step(model, ids, cache, :native), do: Model.forward(model, ids, cache)

  defp step(model, ids, cache, :elixir) do
    with {:ok, h} <- Model.embed(model, ids),
         {:ok, h} <- run_layers(model, h, cache),
         do: Model.final_logits(model, h)
  end

  defp run_layers(model, h, cache) do
    Enum.reduce_while(0..(model.info.num_hidden_layers - 1), {:ok, h}, fn i, {:ok, h} ->
      case Model.layer(model, i, h, cache) do
        {:ok, h} -> {:cont, {:ok, h}}
        error -> {:halt, error}
      end
    end)
  end

  defp sample(%Array{ref: logits}, _opts), do: Native.sample_greedy(logits) |> Native.await_array()

  defp async_eval(arrays),
    do: arrays |> Enum.map(& &1.ref) |> Native.array_async_eval() |> Native.await_ok()

  # `token` is being computed; build the next step before reading it.
  defp decode(state, token, logits, acc, dumped, remaining) do
    next =
      if remaining > 1 do
        with {:ok, next_logits} <- step(state.model, token, state.cache, state.opts[:loop]),
             {:ok, next_token} <- sample(next_logits, state.opts),
             :ok <- async_eval([next_token]),
             do: {:ok, {next_token, next_logits}}
      end

    with {:ok, [id]} <- Array.to_list(token),
         {:ok, dumped} <- dump(state.opts, logits, dumped) do
      state = %{state | first_at: state.first_at || System.monotonic_time()}
      acc = [id | acc]

      cond do
        MapSet.member?(state.stop, id) -> {:ok, acc, dumped, :stop, state}
        remaining == 1 -> {:ok, acc, dumped, :length, state}
        true -> with {:ok, {t, l}} <- next, do: decode(state, t, l, acc, dumped, remaining - 1)
      end
    end
  end

  defp dump(opts, logits, dumped) do
    if opts[:dump_logits] do
      with {:ok, f32} <- Array.astype(logits, :f32),
           {:ok, bin} <- Array.to_binary(f32),
           do: {:ok, [bin | dumped]}
    else
      {:ok, dumped}
    end
  end

  defp finish({:ok, acc, dumped, reason, state}, _state0, cache, started) do
    now = System.monotonic_time()
    ms = &(System.convert_time_unit(&1, :native, :microsecond) / 1000)
    tokens = Enum.reverse(acc)
    n = length(tokens)
    prefill_ms = ms.(state.first_at - started)

    timing = %{
      prefill_ms: prefill_ms,
      per_token_ms: if(n > 1, do: ms.(now - state.first_at) / (n - 1), else: 0.0),
      total_ms: ms.(now - started)
    }

    meta = %{finish_reason: reason, timing: timing, kv_cache: cache}
    meta = if state.opts[:dump_logits], do: Map.put(meta, :logits, Enum.reverse(dumped)), else: meta
    {:ok, {tokens, meta}}
  end

  defp finish({:error, _} = error, _, _, _), do: error
end
