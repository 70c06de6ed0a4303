defmodule Qwen3.Generate do
  @moduledoc """
  Token generation. The decoder layers are driven from Elixir, one fused `layer` call each;
  the graph is evaluated once per token, at the sampler, and the next token's graph is
  built while the current one computes (MLX async eval).

  `generate/3` runs to the end; `start/3` + `next/1` step one token at a time (what
  `stream/3` and `Qwen3.stream/3` are made of).
  """
  alias Qwen3.{Array, Error, KVCache, Model, Native, Sampler, StopStrings}
  alias Qwen3.Tokenizer.Decoder

  @defaults [
              max_new_tokens: 100,
              max_len: 2048,
              kv_cache: nil,
              loop: :elixir,
              stop: [],
              skip_special_tokens: true,
              dump_logits: false,
              profile_timing: true,
              timeout: :infinity
            ] ++ Sampler.defaults()

  @doc "The options `generate/3` accepts, with their defaults."
  def defaults, do: @defaults

  defstruct [
    :model,
    :cache,
    :sampler,
    :opts,
    :stop_ids,
    :decoder,
    :stop_strings,
    :input_ids,
    :pending,
    :remaining,
    :started,
    :deadline,
    :first_at,
    :finished_at,
    :finish_reason,
    tokens: [],
    text: [],
    dumped: []
  ]

  @type t :: %__MODULE__{}
  @type input :: [integer] | [[integer]] | struct

  @doc """
  Generates up to `:max_new_tokens` after `input_ids`: a list of token ids, `[ids]`, or an
  Nx tensor of shape `{n}` or `{1, n}` (when Nx is loaded; there is no Nx dependency).

  Returns `{:ok, {new_token_ids, meta}}`; `meta` holds `:finish_reason` (`:stop` or
  `:length`), `:timing` (`:prefill_ms`, `:per_token_ms`, `:total_ms`), `:kv_cache` and, when
  the model has a tokenizer, `:text` (cut before a matched stop string).

  Passing `meta.kv_cache` back as `:kv_cache` with the whole conversation as `input_ids`
  prefills only what the cache does not hold yet (the longest common prefix is kept).

  Options:
    * `:max_new_tokens` (100), `:max_len` (KV capacity, 2048; ignored with `:kv_cache`);
      generation ends with `:length` when either runs out
    * `:kv_cache` — from `Qwen3.Model.init_kv_cache/2` or a previous call
    * `:sampler` (`:greedy`, `:top_p_gpu`, `:top_p_cpu`), `:temperature` (0.95), `:top_p`
      (0.9), `:top_k`, `:min_p`, `:repetition_penalty`, `:repetition_context_size` (20),
      `:seed`, `:rng_key` — see `Qwen3.Sampler`
    * `:stop` — token ids and strings; strings may span tokens (needs a tokenizer); the
      checkpoint's EOS ids always stop
    * `:loop` — `:elixir` (layer by layer from Elixir) or `:native` (one native step)
    * `:skip_special_tokens` (true) — for the text
    * `:dump_logits` — adds `:logits`, one float32 binary of last-position logits per token
    * `:profile_timing` (true) — `:timing` is nil when false
    * `:timeout` (`:infinity`) — milliseconds for the whole generation; past it, the next
      token read returns `{:error, %Qwen3.Error{kind: :timeout}}` and a cache this call made
      is released at once (a step already computing finishes first)

  An empty prompt is `{:error, %Qwen3.Error{kind: :empty_prompt}}`; one longer than the
  cache is `:cache_overflow`; token ids outside the vocabulary are `:invalid_argument`.
  """
  @spec generate(input, Model.t(), keyword) :: {:ok, {[integer], map}} | {:error, Error.t()}
  def generate(input_ids, %Model{} = model, opts \\ []) do
    with {:ok, gen} <- start(input_ids, model, opts), do: run(gen)
  end

  def generate!(input_ids, model, opts \\ []) do
    case generate(input_ids, model, opts) do
      {:ok, result} -> result
      {:error, e} -> raise e
    end
  end

  defp run(gen) do
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
  def stream(input_ids, %Model{} = model, opts \\ []) do
    Stream.resource(
      fn ->
        case start(input_ids, model, opts) do
          {:ok, gen} -> gen
          {:error, e} -> raise e
        end
      end,
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

  @doc "Validates, prefills and samples the first token (still computing when this returns)."
  @spec start(input, Model.t(), keyword) :: {:ok, t} | {:error, Error.t()}
  def start(input_ids, %Model{} = model, opts \\ []) do
    {opts, spec} = check_options!(opts, model)
    ids = normalize_ids(input_ids)
    started = System.monotonic_time()

    with :ok <- check_ids(ids, model.info.vocab_size),
         {:ok, cache, new_ids} <- prepare_cache(model, ids, opts),
         {:ok, sampler} <- Sampler.new(model, spec, opts, ids),
         {:ok, prompt} <- Array.from_list([new_ids], dtype: :s32, device: model.device),
         {:ok, logits} <- step(model, prompt, cache, opts[:loop]),
         {:ok, token} <- Sampler.sample(sampler, logits),
         :ok <- async_eval([token]) do
      stop_ids = opts[:stop] |> Enum.filter(&is_integer/1)
      stop_strings = opts[:stop] |> Enum.filter(&is_binary/1)
      # After the prefill the cache holds all of `ids`; each later token fed needs a slot,
      # and the last token sampled is never fed.
      room = cache.max_len - length(ids) + 1

      {:ok,
       %__MODULE__{
         model: model,
         cache: cache,
         sampler: sampler,
         opts: opts,
         stop_ids: MapSet.new(model.info.eos_token_ids ++ stop_ids),
         decoder:
           model.tokenizer && Decoder.new(model.tokenizer, skip_special_tokens: opts[:skip_special_tokens]),
         stop_strings: StopStrings.new(stop_strings),
         input_ids: ids,
         pending: {token, logits},
         remaining: min(opts[:max_new_tokens], room),
         started: started,
         deadline: deadline(started, opts[:timeout])
       }}
    end
  end

  @doc """
  Reads the token being computed (after building the next step, so both overlap).
  Returns `{:token, id, text_chunk, gen}` (`gen` may be finished), `{:done, gen}` once
  finished, or `{:error, e}`.
  """
  @spec next(t) :: {:token, integer, String.t(), t} | {:done, t} | {:error, Error.t()}
  def next(%__MODULE__{finish_reason: reason} = gen) when reason != nil, do: {:done, gen}

  def next(gen), do: if(expired?(gen), do: time_out(gen), else: read_next(gen))

  defp expired?(%__MODULE__{deadline: nil}), do: false
  defp expired?(%__MODULE__{deadline: deadline}), do: System.monotonic_time() > deadline

  defp read_next(%__MODULE__{pending: {token, logits}} = gen) do
    upcoming = if gen.remaining > 1, do: build_next(gen, token)

    with {:ok, [id]} <- Array.to_list(token),
         {:ok, dumped} <- dump(gen.opts, logits, gen.dumped) do
      case accept(%{gen | dumped: dumped}, id) do
        {:token, id, text, %{finish_reason: nil} = gen} -> continue(id, text, gen, upcoming)
        finished -> finished
      end
    end
  end

  defp continue(id, text, gen, {:ok, pending}), do: {:token, id, text, %{gen | pending: pending}}
  defp continue(_id, _text, _gen, {:error, _} = error), do: error

  @doc false
  # Reads the token computed by `start/3` without building a next step (`Qwen3.Serving`
  # steps its rows together).
  @spec take_first(t) :: {:token, integer, String.t(), t} | {:error, Error.t()}
  def take_first(%__MODULE__{pending: {token, _logits}} = gen) do
    with {:ok, [id]} <- Array.to_list(token), do: accept(%{gen | pending: nil}, id)
  end

  @doc false
  # Takes the next token id: counts it, decodes its text, and finishes on a stop id, a stop
  # string or the length limit. Returns `{:token, id, text_chunk, gen}`.
  @spec accept(t, integer) :: {:token, integer, String.t(), t}
  def accept(gen, id) do
    gen = %{
      gen
      | first_at: gen.first_at || System.monotonic_time(),
        tokens: [id | gen.tokens],
        remaining: gen.remaining - 1,
        pending: nil
    }

    cond do
      MapSet.member?(gen.stop_ids, id) -> finish(gen, "", :stop)
      gen.remaining == 0 -> with_text(gen, id, &finish(&1, &2, :length))
      true -> with_text(gen, id, &{:token, id, &2, %{&1 | text: [&1.text, &2]}})
    end
  end

  # Decodes the token and looks for stop strings; a match finishes the generation.
  defp with_text(%__MODULE__{decoder: nil} = gen, _id, then), do: then.(gen, "")

  defp with_text(gen, id, then) do
    {chunk, decoder} = Decoder.push(gen.decoder, id)
    gen = %{gen | decoder: decoder}

    case StopStrings.push(gen.stop_strings, chunk) do
      {:cont, text, stops} -> then.(%{gen | stop_strings: stops}, text)
      {:stop, text} -> finish(%{gen | stop_strings: StopStrings.new([])}, text, :stop, false)
    end
  end

  # The last text: what was held back, unless a stop string cut it off.
  defp finish(gen, text, reason, flush? \\ true) do
    text = if flush? and gen.decoder, do: text <> flush_text(gen), else: text
    now = System.monotonic_time()
    gen = %{gen | finish_reason: reason, finished_at: now, text: [gen.text, text]}
    {:token, hd(gen.tokens), text, gen}
  end

  defp flush_text(gen) do
    case StopStrings.push(gen.stop_strings, Decoder.flush(gen.decoder)) do
      {:cont, text, stops} -> text <> StopStrings.flush(stops)
      {:stop, text} -> text
    end
  end

  defp time_out(gen) do
    # Only a cache this call made: one the caller passed in stays theirs to use.
    if gen.opts[:kv_cache] == nil, do: KVCache.release(gen.cache)
    ms = System.convert_time_unit(System.monotonic_time() - gen.started, :native, :millisecond)

    {:error,
     %Error{
       kind: :timeout,
       message:
         "generation passed its #{gen.opts[:timeout]} ms timeout (#{ms} ms, #{length(gen.tokens)} tokens)"
     }}
  end

  defp deadline(_started, :infinity), do: nil
  defp deadline(started, ms), do: started + System.convert_time_unit(ms, :millisecond, :native)

  @doc false
  def check_ids([], _vocab), do: {:error, %Error{kind: :empty_prompt, message: "the prompt has no tokens"}}

  def check_ids(ids, vocab) do
    case Enum.find(ids, &(&1 >= vocab)) do
      nil ->
        :ok

      id ->
        {:error,
         %Error{
           kind: :invalid_argument,
           message: "token id #{id} is outside the vocabulary (0..#{vocab - 1})"
         }}
    end
  end

  @doc "`{new_token_ids, meta}` of a finished generation (see `generate/3`)."
  @spec result(t) :: {[integer], map}
  def result(%__MODULE__{finish_reason: reason} = gen) when reason != nil do
    tokens = Enum.reverse(gen.tokens)
    meta = %{finish_reason: reason, timing: timing(gen, length(tokens)), kv_cache: cache_after(gen, tokens)}
    meta = if gen.decoder, do: Map.put(meta, :text, IO.iodata_to_binary(gen.text)), else: meta
    meta = if gen.opts[:dump_logits], do: Map.put(meta, :logits, Enum.reverse(gen.dumped)), else: meta
    {tokens, meta}
  end

  defp timing(gen, n) do
    if gen.opts[:profile_timing] do
      ms = &(System.convert_time_unit(&1, :native, :microsecond) / 1000)

      %{
        prefill_ms: ms.(gen.first_at - gen.started),
        per_token_ms: if(n > 1, do: ms.(gen.finished_at - gen.first_at) / (n - 1), else: 0.0),
        total_ms: ms.(gen.finished_at - gen.started)
      }
    end
  end

  # The cache holds a prefix of input ++ generated (the last token may not have been fed).
  defp cache_after(gen, tokens) do
    case KVCache.offset(gen.cache) do
      {:ok, offset} -> %{gen.cache | tokens: Enum.take(gen.input_ids ++ tokens, offset)}
      {:error, _} -> %{gen.cache | tokens: nil}
    end
  end

  defp build_next(gen, token) do
    with {:ok, logits} <- step(gen.model, token, gen.cache, gen.opts[:loop]),
         {:ok, next_token} <- Sampler.sample(gen.sampler, logits),
         :ok <- async_eval([next_token]),
         do: {:ok, {next_token, logits}}
  end

  @doc false
  # Validated options (defaults filled in) and the sampler spec; raises ArgumentError.
  def check_options!(opts, model) do
    opts = Keyword.validate!(opts, @defaults)
    {opts, validate!(opts, model)}
  end

  defp validate!(opts, model) do
    Sampler.check!(opts, :max_new_tokens, &(is_integer(&1) and &1 >= 1), "a positive integer")
    Sampler.check!(opts, :max_len, &(is_integer(&1) and &1 >= 1), "a positive integer")

    Sampler.check!(
      opts,
      :timeout,
      &(&1 == :infinity or (is_integer(&1) and &1 >= 0)),
      ":infinity or milliseconds (a non-negative integer)"
    )

    unless opts[:loop] in [:elixir, :native],
      do: raise(ArgumentError, ":loop must be :elixir or :native, got #{inspect(opts[:loop])}")

    stop = opts[:stop]

    unless is_list(stop) and Enum.all?(stop, &((is_integer(&1) and &1 >= 0) or (is_binary(&1) and &1 != ""))),
      do:
        raise(ArgumentError, ":stop must be a list of token ids and non-empty strings, got #{inspect(stop)}")

    if Enum.any?(stop, &is_binary/1) and model.tokenizer == nil,
      do: raise(ArgumentError, "stop strings need a tokenizer, and this model was loaded without one")

    unless is_nil(opts[:kv_cache]) or is_struct(opts[:kv_cache], KVCache),
      do: raise(ArgumentError, ":kv_cache must be a Qwen3.KVCache, got #{inspect(opts[:kv_cache])}")

    Sampler.spec!(opts)
  end

  @doc false
  def normalize_ids(%{__struct__: Nx.Tensor} = tensor) do
    if Code.ensure_loaded?(Nx),
      do: tensor |> then(&apply(Nx, :to_flat_list, [&1])) |> normalize_ids(),
      else: raise(ArgumentError, "got an Nx tensor but Nx is not loaded")
  end

  def normalize_ids([row]) when is_list(row), do: normalize_ids(row)

  def normalize_ids(ids) when is_list(ids) do
    if Enum.all?(ids, &(is_integer(&1) and &1 >= 0)),
      do: ids,
      else: raise(ArgumentError, "input_ids must be non-negative integers, got #{inspect(ids, limit: 8)}")
  end

  def normalize_ids(other),
    do: raise(ArgumentError, "input_ids must be a list of token ids, got #{inspect(other, limit: 8)}")

  # A fresh cache, or the given one with what it holds that `ids` does not start with removed.
  defp prepare_cache(model, ids, opts) do
    case opts[:kv_cache] do
      nil ->
        with {:ok, cache} <- Model.init_kv_cache(model, max_len: opts[:max_len]), do: {:ok, cache, ids}

      cache ->
        with {:ok, offset} <- KVCache.offset(cache), do: reuse(cache, offset, ids)
    end
  end

  defp reuse(%KVCache{tokens: known} = cache, offset, ids) when length(known) == offset,
    do: keep_prefix(cache, offset, ids)

  # Tokens unknown (a cache made by hand and filled elsewhere): `ids` must extend it.
  defp reuse(cache, offset, ids) when length(ids) > offset, do: {:ok, cache, Enum.drop(ids, offset)}

  defp reuse(_cache, offset, ids),
    do:
      {:error,
       %Error{
         kind: :invalid_argument,
         message: "the cache already holds #{offset} tokens; input_ids (#{length(ids)}) must extend them"
       }}

  @doc false
  # Cuts `cache` (holding `offset` tokens, all known) back to the longest prefix of `ids` it
  # holds. Returns it with its tokens and the ids still to feed: at least the last one, so
  # there are logits to sample from. `Qwen3.Serving` reuses its slots this way.
  def keep_prefix(%KVCache{tokens: known} = cache, offset, ids) do
    keep = min(common_prefix(known, ids), length(ids) - 1)

    with :ok <- if(keep < offset, do: KVCache.truncate(cache, keep), else: :ok),
         do: {:ok, %{cache | tokens: Enum.take(ids, keep)}, Enum.drop(ids, keep)}
  end

  @doc false
  # How many leading elements two lists share.
  def common_prefix(a, b), do: common_prefix(a, b, 0)

  defp common_prefix([a | as], [a | bs], n), do: common_prefix(as, bs, n + 1)
  defp common_prefix(_, _, n), do: n

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

  defp dump(opts, logits, dumped) do
    if opts[:dump_logits] do
      with {:ok, f32} <- Array.astype(logits, :f32),
           {:ok, bin} <- Array.to_binary(f32),
           do: {:ok, [bin | dumped]}
    else
      {:ok, dumped}
    end
  end
end
