defmodule Qwen3.Serving.Row do
  @moduledoc false
  # One request inside a serving: queued, then prefilling into its slot's one-row KV cache
  # (in chunks, between decode steps), then decoding with the other rows. Its bookkeeping
  # (stop ids and strings, text, length) is its `Qwen3.Generate`'s, fed one id per step.

  alias Qwen3.{Array, Generate, KVCache, Model, Request, Sampler, Sequence}

  @enforce_keys [:ref, :caller, :monitor, :mode, :request, :submitted_at]
  defstruct [
    :ref,
    :caller,
    :monitor,
    :mode,
    :request,
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
    ids = row.request.ids

    with {:ok, cache} <- known(cache),
         {:ok, cache, rest} <- KVCache.keep_prefix(cache, ids) do
      {:ok, %{row | cache: cache, fed: length(ids) - length(rest), admitted_at: System.monotonic_time()}}
    end
  end

  # A cache whose content is unknown (its last request did not finish) starts empty.
  defp known(%KVCache{tokens: nil} = cache), do: KVCache.reset(cache)
  defp known(cache), do: {:ok, cache}

  @doc """
  Feeds up to `chunk` more prompt tokens. While more than `chunk` are left it only fills
  the cache (`{:fed, n, row}`); the last part goes through `Qwen3.Generate.start/3`, which
  samples the first token (`{:started, n, token, row}`, `token` as `Generate.accept/2`).
  """
  def prefill(%__MODULE__{request: %Request{ids: ids}} = row, model, chunk) do
    left = length(ids) - row.fed

    if left > chunk do
      part = ids |> Enum.drop(row.fed) |> Enum.take(chunk)

      with {:ok, part_ids} <- Array.from_list([part], dtype: :s32, device: model.device),
           {:ok, logits} <- Model.forward(model, part_ids, row.cache),
           :ok <- Array.eval(logits) do
        fed = row.fed + chunk
        {:fed, chunk, %{row | fed: fed, cache: %{row.cache | tokens: Enum.take(ids, fed)}}}
      end
    else
      request = Request.put_opts(row.request, kv_cache: row.cache, loop: :native, timeout: :infinity)

      with {:ok, gen} <- Generate.start(request, model),
           {:token, _, _, gen} = token <- Generate.take_first(gen),
           do: {:started, left, token, %{row | gen: gen, fed: length(ids)}}
    end
  end

  @doc """
  One decode step for all `rows` together: each feeds its last token into its own cache
  and samples with its own sampler. Returns each row's `Generate.accept/2` result.
  """
  @spec decode([t], Model.t()) :: {:ok, [{t, tuple}]} | {:error, Qwen3.Error.t()}
  def decode(rows, model) do
    last = Enum.map(rows, &[Sequence.last_token(&1.gen.sequence)])

    with {:ok, ids} <- Array.from_list(last, dtype: :s32, device: model.device),
         {:ok, logits} <- Model.forward_rows(model, ids, Enum.map(rows, & &1.gen.cache)),
         {:ok, tokens} <- Sampler.sample_rows(Enum.map(rows, & &1.gen.sampler), logits),
         {:ok, next} <- Array.to_list(tokens),
         {:ok, logprobs} <- logprobs(rows, logits, next) do
      {:ok,
       Enum.zip_with([rows, next, logprobs], fn [row, id, lp] -> {row, Generate.accept(row.gen, id, lp)} end)}
    end
  end

  # One host pass for the rows that asked, with the most alternatives any of them wants.
  defp logprobs(rows, logits, ids) do
    wanted = Enum.map(rows, &Sequence.logprobs_wanted(&1.gen.sequence))

    case Enum.reject(wanted, &is_nil/1) do
      [] ->
        {:ok, Enum.map(rows, fn _ -> nil end)}

      tops ->
        with {:ok, all} <- Sampler.logprobs(logits, ids, Enum.max(tops)) do
          {:ok, Enum.zip_with(all, wanted, fn lp, top -> top && %{lp | top: Enum.take(lp.top, top)} end)}
        end
    end
  end

  @doc "Whether the row's generation has finished."
  def finished?(%__MODULE__{gen: gen}), do: gen != nil and Sequence.finished?(gen.sequence)

  @doc "Tokens the row has generated so far."
  def tokens_taken(%__MODULE__{gen: nil}), do: 0
  def tokens_taken(%__MODULE__{gen: gen}), do: Sequence.size(gen.sequence)

  @doc "The caller's result, as `Qwen3.generate/3` gives it, and the cache to reuse."
  def result(%__MODULE__{gen: gen} = row) do
    {cache, result} = Map.pop(Generate.result(gen), :kv_cache)
    queue_ms = System.convert_time_unit(row.admitted_at - row.submitted_at, :native, :microsecond) / 1000
    {%{result | timing: result.timing && Map.put(result.timing, :queue_ms, queue_ms)}, cache}
  end
end
