defmodule Qwen3.Serving.Row do
  @moduledoc false
  # One request inside a serving: queued, then prefilling into its slot's one-row KV cache
  # (in chunks, between decode steps), then decoding with the other rows. The token
  # bookkeeping (stop ids and strings, text, length) is `Qwen3.Generate`'s, per row.

  alias Qwen3.{Array, Generate, KVCache, Model, Sampler}

  @enforce_keys [:ref, :caller, :monitor, :mode, :ids, :opts, :submitted_at]
  defstruct [
    :ref,
    :caller,
    :monitor,
    :mode,
    :ids,
    :opts,
    :submitted_at,
    :deadline,
    :cache,
    :gen,
    :admitted_at,
    fed: 0
  ]

  @type t :: %__MODULE__{}

  @doc "Places the row in `cache`, keeping the longest prefix of its prompt the cache holds."
  @spec admit(t, KVCache.t()) :: {:ok, t} | {:error, Qwen3.Error.t()}
  def admit(row, %KVCache{} = cache) do
    with {:ok, cache, offset} <- known(cache),
         {:ok, cache, rest} <- Generate.keep_prefix(cache, offset, row.ids) do
      {:ok, %{row | cache: cache, fed: length(row.ids) - length(rest), admitted_at: System.monotonic_time()}}
    end
  end

  # A cache whose content is unknown (its last request did not finish) starts empty.
  defp known(%KVCache{tokens: nil} = cache) do
    with :ok <- KVCache.truncate(cache, 0), do: {:ok, %{cache | tokens: []}, 0}
  end

  defp known(cache), do: {:ok, cache, length(cache.tokens)}

  @doc """
  Feeds up to `chunk` more prompt tokens. While more than `chunk` are left it only fills
  the cache (`{:fed, n, row}`); the last part goes through `Qwen3.Generate.start/3`, which
  samples the first token (`{:started, n, token, row}`, `token` as `Generate.accept/2`).
  """
  def prefill(%__MODULE__{} = row, model, chunk) do
    left = length(row.ids) - row.fed

    if left > chunk do
      part = row.ids |> Enum.drop(row.fed) |> Enum.take(chunk)

      with {:ok, ids} <- Array.from_list([part], dtype: :s32, device: model.device),
           {:ok, logits} <- Model.forward(model, ids, row.cache),
           :ok <- Array.eval(logits) do
        fed = row.fed + chunk
        {:fed, chunk, %{row | fed: fed, cache: %{row.cache | tokens: Enum.take(row.ids, fed)}}}
      end
    else
      opts = Keyword.merge(row.opts, kv_cache: row.cache, loop: :native, timeout: :infinity)

      with {:ok, gen} <- Generate.start(row.ids, model, opts),
           {:token, _, _, gen} = token <- Generate.take_first(gen),
           do: {:started, left, token, %{row | gen: gen, fed: length(row.ids)}}
    end
  end

  @doc """
  One decode step for all `rows` together: each feeds its last token into its own cache
  and samples with its own sampler. Returns each row's `Generate.accept/2` result.
  """
  @spec decode([t], Model.t()) :: {:ok, [{t, tuple}]} | {:error, Qwen3.Error.t()}
  def decode(rows, model) do
    last = Enum.map(rows, &[hd(&1.gen.tokens)])

    with {:ok, ids} <- Array.from_list(last, dtype: :s32, device: model.device),
         {:ok, logits} <- Model.forward_rows(model, ids, Enum.map(rows, & &1.gen.cache)),
         {:ok, tokens} <- Sampler.sample_rows(Enum.map(rows, & &1.gen.sampler), logits),
         {:ok, next} <- Array.to_list(tokens) do
      {:ok, Enum.zip_with(rows, next, &{&1, Generate.accept(&1.gen, &2)})}
    end
  end

  @doc "The caller's result, as `Qwen3.generate/3` gives it, and the cache to reuse."
  def result(%__MODULE__{gen: gen} = row) do
    {tokens, meta} = Generate.result(gen)
    queue_ms = System.convert_time_unit(row.admitted_at - row.submitted_at, :native, :microsecond) / 1000
    timing = meta.timing && Map.put(meta.timing, :queue_ms, queue_ms)

    result =
      meta
      |> Map.drop([:kv_cache])
      |> Map.merge(%{tokens: tokens, timing: timing})
      |> Map.put_new(:text, nil)

    {result, meta.kv_cache}
  end
end
