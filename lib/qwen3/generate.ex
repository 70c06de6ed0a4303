defmodule Qwen3.Generate do
  @moduledoc """
  Token generation. The decoder layers are driven from Elixir, one fused `layer` call each;
  the graph is evaluated once per token, at the sampler, and the next token's graph is
  built while the current one computes (MLX async eval).

  `generate/3` runs to the end; `start/3` + `next/1` step one token at a time (what
  `stream/3` and `Qwen3.stream/3` are made of). A driver that steps several generations
  together, as `Qwen3.Serving` does, reads the first token with `take_first/1`, samples
  the rest itself and hands each id to `accept/2`.

  ## Options

  #{Qwen3.Options.docs(:generation)}

  An empty prompt is `{:error, %Qwen3.Error{kind: :empty_prompt}}`; one longer than the
  cache is `:cache_overflow`; token ids outside the vocabulary are `:invalid_argument`.
  """
  alias Qwen3.{Array, Error, KVCache, Model, Native, Prompt, Request, Sampler, Sequence}

  # Tokens a `:max_kv_size` window keeps from the start (mlx-lm's default).
  @window_keep 4

  @enforce_keys [:model, :cache, :sampler, :request, :sequence, :deadline]
  defstruct [:model, :cache, :sampler, :request, :sequence, :deadline, :pending]

  @typedoc """
  A generation in progress. `:cache` (its `Qwen3.KVCache`), `:sampler` and `:sequence`
  (its `Qwen3.Sequence`) are for drivers that step generations themselves, as
  `Qwen3.Serving` does; the rest is internal.
  """
  @type t :: %__MODULE__{
          model: Model.t(),
          cache: KVCache.t(),
          sampler: reference,
          request: Request.t(),
          sequence: Sequence.t(),
          deadline: integer | nil,
          pending: tuple | nil
        }
  @type input :: [integer] | [[integer]] | struct

  @doc """
  Generates up to `:max_new_tokens` after `input`: token ids (see `Qwen3.Prompt`) or a
  `Qwen3.Request`. Returns `{:ok, {new_token_ids, meta}}`, `meta` being `result/1` without
  `:tokens`.

  Passing `meta.kv_cache` back as `:kv_cache` with the whole conversation as the input
  prefills only what the cache does not hold yet (the longest common prefix is kept).
  """
  @spec generate(input, Model.t(), keyword) :: {:ok, {[integer], map}} | {:error, Error.t()}
  def generate(input, %Model{} = model, opts \\ []) do
    with {:ok, gen} <- start(input, model, opts),
         {:ok, result} <- run(gen),
         do: {:ok, Map.pop(result, :tokens)}
  end

  def generate!(input, model, opts \\ []), do: Error.unwrap!(generate(input, model, opts))

  @doc "Runs a started generation to the end: `{:ok, result(gen)}` or the error that stopped it."
  @spec run(t) :: {:ok, map} | {:error, Error.t()}
  def run(%__MODULE__{} = gen) do
    case next(gen) do
      {:token, _id, _text, gen} -> run(gen)
      {:done, gen} -> {:ok, result(gen)}
      {:error, _} = error -> error
    end
  end

  @doc """
  A lazy stream of `{token_id, text_chunk}` (text is "" without a tokenizer). Halting it
  stops the generation. Raises `Qwen3.Error` if the generation cannot start or fails.
  """
  @spec stream(input, Model.t(), keyword) :: Enumerable.t()
  def stream(input, %Model{} = model, opts \\ []) do
    Stream.resource(
      fn -> Error.unwrap!(start(input, model, opts)) end,
      fn gen ->
        case next(gen) do
          {:token, id, text, gen} -> {[{id, text}], gen}
          {:done, gen} -> {:halt, gen}
          {:error, e} -> raise e
        end
      end,
      fn _ -> :ok end
    )
  end

  @doc """
  Checks the input (ids, or a `Qwen3.Request` as it is), prefills and samples the first
  token (still computing when this returns).
  """
  @spec start(input | Request.t(), Model.t(), keyword) :: {:ok, t} | {:error, Error.t()}
  def start(input, model, opts \\ [])

  def start(%Request{} = request, %Model{} = model, []) do
    started = System.monotonic_time()
    %Request{ids: ids, opts: opts} = request

    with {:ok, cache, new_ids} <- prepare_cache(model, ids, opts),
         {:ok, sampler} <- Sampler.new(model, request.spec, opts, ids, request.constraint),
         {:ok, prompt} <- Array.from_list([new_ids], dtype: :s32, device: model.device),
         {:ok, logits} <- step(model, prompt, cache, opts[:loop]),
         {:ok, token} <- Sampler.sample(sampler, logits),
         :ok <- async_eval([token]) do
      # After the prefill the cache holds all of `ids`; each later token fed needs a slot,
      # and the last token sampled is never fed.
      room = if cache.window, do: opts[:max_new_tokens], else: cache.max_len - length(ids) + 1
      limit = min(opts[:max_new_tokens], room)

      {:ok,
       %__MODULE__{
         model: model,
         cache: cache,
         sampler: sampler,
         request: request,
         sequence: Sequence.new(model, opts, limit, started),
         deadline: deadline(started, opts[:timeout]),
         pending: {token, logits}
       }}
    end
  end

  def start(input, %Model{} = model, opts) do
    with {:ok, request} <- Request.new(model, Prompt.ids!(input), opts), do: start(request, model)
  end

  # A fresh cache, or the given one with what it holds that `ids` does not start with removed.
  defp prepare_cache(model, ids, opts) do
    case {opts[:kv_cache], opts[:max_kv_size]} do
      {nil, window} when is_integer(window) ->
        with {:ok, cache} <- Model.init_kv_cache(model, [max_len: window] ++ kv_quant(opts)),
             {:ok, cache} <- KVCache.window(cache, min(@window_keep, window - 1)),
             do: {:ok, cache, ids}

      {nil, nil} ->
        with {:ok, cache} <- Model.init_kv_cache(model, [max_len: opts[:max_len]] ++ kv_quant(opts)),
             do: {:ok, cache, ids}

      {cache, _} ->
        KVCache.reuse(cache, ids)
    end
  end

  defp kv_quant(opts), do: [kv_bits: opts[:kv_bits], kv_group_size: opts[:kv_group_size]]

  @doc """
  Reads the token being computed (after building the next step, so both overlap).
  Returns `{:token, id, text_chunk, gen}` (`gen` may be finished), `{:done, gen}` once
  finished, or `{:error, e}`.
  """
  @spec next(t) :: {:token, integer, String.t(), t} | {:done, t} | {:error, Error.t()}
  def next(%__MODULE__{} = gen) do
    cond do
      Sequence.finished?(gen.sequence) -> {:done, gen}
      gen.deadline && System.monotonic_time() > gen.deadline -> time_out(gen)
      true -> read_next(gen)
    end
  end

  defp read_next(%__MODULE__{pending: {token, logits}} = gen) do
    upcoming = if Sequence.remaining(gen.sequence) > 1, do: build_next(gen, token)

    with {:ok, [id]} <- Array.to_list(token),
         {:ok, sequence} <- Sequence.keep_logits(gen.sequence, logits),
         {:ok, logprobs} <- logprobs(sequence, logits, id) do
      {:token, id, text, gen} = accept(%{gen | sequence: sequence}, id, logprobs)

      # Not finished means `upcoming` was built: at least one more token is allowed.
      case {Sequence.finished?(gen.sequence), upcoming} do
        {true, {:ok, {unused, _}}} -> finish_unused(unused, {:token, id, text, gen})
        {true, _} -> {:token, id, text, gen}
        {false, {:ok, pending}} -> {:token, id, text, %{gen | pending: pending}}
        {false, {:error, _} = error} -> error
      end
    end
  end

  # A step built ahead and not needed (the generation stopped): reading a token waits only for
  # its own step, so this one may still be computing; it is waited for, so that no work of
  # this generation is left running once it returns (nor writes into a buffer that went).
  defp finish_unused(token, reply) do
    case Array.eval(token) do
      :ok -> reply
      error -> error
    end
  end

  @doc """
  Reads the first token `start/3` sampled, without building a next step: for a driver
  that steps generations together and samples them itself (`Qwen3.Serving`).
  """
  @spec take_first(t) :: {:token, integer, String.t(), t} | {:error, Error.t()}
  def take_first(%__MODULE__{pending: {token, logits}} = gen) do
    with {:ok, [id]} <- Array.to_list(token),
         {:ok, logprobs} <- logprobs(gen.sequence, logits, id),
         do: accept(gen, id, logprobs)
  end

  defp logprobs(sequence, logits, id) do
    case Sequence.logprobs_wanted(sequence) do
      nil -> {:ok, nil}
      top -> with {:ok, [row]} <- Sampler.logprobs(logits, [id], top), do: {:ok, row}
    end
  end

  @doc """
  Takes the next sampled id into the generation's `Qwen3.Sequence` (see `Sequence.accept/2`),
  with its log-probabilities when the options asked for them (`Qwen3.Sampler.logprobs/3`).
  """
  @spec accept(t, non_neg_integer, map | nil) :: {:token, integer, String.t(), t}
  def accept(%__MODULE__{} = gen, id, logprobs \\ nil) do
    {:token, id, text, sequence} = gen.sequence |> Sequence.keep_logprobs(logprobs) |> Sequence.accept(id)
    {:token, id, text, %{gen | sequence: sequence, pending: nil}}
  end

  @doc """
  A finished generation's result: `Qwen3.Sequence.result/1` (`:tokens`, `:text`,
  `:finish_reason`, `:timing`, maybe `:logprobs` and `:logits`), `:prompt_tokens` (how many
  the prompt had) and `:kv_cache`, which records the tokens it holds, for a continuation.
  """
  @spec result(t) :: map
  def result(%__MODULE__{} = gen) do
    result = Sequence.result(gen.sequence)

    Map.merge(result, %{
      prompt_tokens: length(gen.request.ids),
      kv_cache: KVCache.record(gen.cache, gen.request.ids ++ result.tokens)
    })
  end

  defp time_out(gen) do
    # Only a cache this call made: one the caller passed in stays theirs to use.
    if gen.request.opts[:kv_cache] == nil, do: KVCache.release(gen.cache)
    ms = System.convert_time_unit(System.monotonic_time() - gen.sequence.started, :native, :millisecond)
    taken = Sequence.size(gen.sequence)
    timeout = gen.request.opts[:timeout]
    message = "generation passed its #{timeout} ms timeout (#{ms} ms, #{taken} tokens)"
    {:error, %Error{kind: :timeout, message: message}}
  end

  defp deadline(_started, :infinity), do: nil
  defp deadline(started, ms), do: started + System.convert_time_unit(ms, :millisecond, :native)

  defp build_next(gen, token) do
    with {:ok, logits} <- step(gen.model, token, gen.cache, gen.request.opts[:loop]),
         {:ok, next_token} <- Sampler.sample(gen.sampler, logits),
         :ok <- async_eval([next_token]),
         do: {:ok, {next_token, logits}}
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

  defp async_eval(arrays),
    do: arrays |> Enum.map(& &1.ref) |> Native.array_async_eval() |> Native.await_ok()
end
