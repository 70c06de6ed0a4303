defmodule Qwen3.Sequence do
  @moduledoc """
  One generation's bookkeeping, whoever drives the model: the tokens taken so far, their
  text (decoded incrementally and cut before a stop string), when to finish (a stop id, a
  stop string, the length limit) and the timings. `Qwen3.Generate` and `Qwen3.Serving`
  both feed it the sampled ids with `accept/2` and read `result/1` at the end.
  """
  alias Qwen3.{Array, Model, StopStrings}
  alias Qwen3.Tokenizer.Decoder

  defstruct [
    :stop_ids,
    :decoder,
    :stop_strings,
    :remaining,
    :started,
    :first_at,
    :finished_at,
    :finish_reason,
    :profile_timing,
    tokens: [],
    text: [],
    logits: nil,
    logprobs: nil,
    top_logprobs: 0
  ]

  @type t :: %__MODULE__{}

  @doc """
  A sequence of at most `limit` new tokens for `model`, with the checked generation options
  `opts` (`:stop`, `:skip_special_tokens`, `:dump_logits`, `:logprobs`, `:top_logprobs`,
  `:profile_timing`), started at
  `started` (`System.monotonic_time/0`).
  """
  @spec new(Model.t(), keyword, pos_integer, integer) :: t
  def new(%Model{} = model, opts, limit, started) do
    {stop_ids, stop_strings} = Enum.split_with(opts[:stop], &is_integer/1)
    skip = opts[:skip_special_tokens]

    %__MODULE__{
      stop_ids: MapSet.new(model.info.eos_token_ids ++ stop_ids),
      decoder: model.tokenizer && Decoder.new(model.tokenizer, skip_special_tokens: skip),
      stop_strings: StopStrings.new(stop_strings),
      remaining: limit,
      started: started,
      profile_timing: opts[:profile_timing],
      logits: if(opts[:dump_logits], do: []),
      logprobs: if(opts[:logprobs], do: []),
      top_logprobs: opts[:top_logprobs]
    }
  end

  @doc "Whether the sequence has finished (`:stop` or `:length`)."
  @spec finished?(t) :: boolean
  def finished?(%__MODULE__{finish_reason: reason}), do: reason != nil

  @doc "How many more tokens it may take."
  @spec remaining(t) :: non_neg_integer
  def remaining(%__MODULE__{remaining: n}), do: n

  @doc "How many tokens it has taken."
  @spec size(t) :: non_neg_integer
  def size(%__MODULE__{tokens: tokens}), do: length(tokens)

  @doc "The last token taken (the one a driver feeds next)."
  @spec last_token(t) :: non_neg_integer
  def last_token(%__MODULE__{tokens: [id | _]}), do: id

  @doc """
  Takes the next token id: counts it, decodes its text, and finishes on a stop id, a stop
  string or the length limit. Returns `{:token, id, text_chunk, sequence}`; the chunk is ""
  while a character or a possible stop string is incomplete.
  """
  @spec accept(t, non_neg_integer) :: {:token, non_neg_integer, String.t(), t}
  def accept(%__MODULE__{finish_reason: nil} = seq, id) do
    seq = %{
      seq
      | first_at: seq.first_at || System.monotonic_time(),
        tokens: [id | seq.tokens],
        remaining: seq.remaining - 1
    }

    cond do
      MapSet.member?(seq.stop_ids, id) -> finish(seq, "", :stop)
      seq.remaining == 0 -> with_text(seq, id, &finish(&1, &2, :length))
      true -> with_text(seq, id, &{:token, id, &2, %{&1 | text: [&1.text, &2]}})
    end
  end

  @doc """
  Keeps the logits a token was sampled from, when the options asked for `:dump_logits`
  (reads them: a float32 binary per token).
  """
  @spec keep_logits(t, Array.t()) :: {:ok, t} | {:error, Qwen3.Error.t()}
  def keep_logits(%__MODULE__{logits: nil} = seq, _logits), do: {:ok, seq}

  def keep_logits(seq, logits) do
    with {:ok, f32} <- Array.astype(logits, :f32),
         {:ok, bin} <- Array.to_binary(f32),
         do: {:ok, %{seq | logits: [bin | seq.logits]}}
  end

  @doc """
  How many alternatives per token the sequence keeps log-probabilities of, or nil when it
  keeps none (`:logprobs` off).
  """
  @spec logprobs_wanted(t) :: nil | 0..20
  def logprobs_wanted(%__MODULE__{logprobs: nil}), do: nil
  def logprobs_wanted(%__MODULE__{top_logprobs: top}), do: top

  @doc """
  Keeps the log-probabilities of the token about to be accepted (`Qwen3.Sampler.logprobs/3`
  for its row), when the options asked for `:logprobs`.
  """
  @spec keep_logprobs(t, map | nil) :: t
  def keep_logprobs(%__MODULE__{logprobs: nil} = seq, _entry), do: seq

  def keep_logprobs(seq, %{logprob: lp, top: top}),
    do: %{seq | logprobs: [%{logprob: lp, top: top} | seq.logprobs]}

  @doc "The log-probabilities kept for the last token taken (nil when none are kept)."
  @spec last_logprobs(t) :: map | nil
  def last_logprobs(%__MODULE__{logprobs: [last | _]}), do: last
  def last_logprobs(_seq), do: nil

  @doc """
  What a finished sequence produced: `:tokens` (the new ids), `:text` (nil without a
  tokenizer), `:finish_reason`, `:timing` (`:prefill_ms`, `:per_token_ms`, `:total_ms`; nil
  when not profiled), with `:logprobs` a list per token of `%{logprob:, top: [{id, logprob}]}`,
  and, when dumped, `:logits`.
  """
  @spec result(t) :: map
  def result(%__MODULE__{finish_reason: reason} = seq) when reason != nil do
    tokens = Enum.reverse(seq.tokens)
    text = if seq.decoder, do: IO.iodata_to_binary(seq.text)
    result = %{tokens: tokens, text: text, finish_reason: reason, timing: timing(seq, length(tokens))}
    result = if seq.logprobs, do: Map.put(result, :logprobs, Enum.reverse(seq.logprobs)), else: result
    if seq.logits, do: Map.put(result, :logits, Enum.reverse(seq.logits)), else: result
  end

  # Decodes the token and looks for stop strings; a match finishes the sequence.
  defp with_text(%__MODULE__{decoder: nil} = seq, _id, then), do: then.(seq, "")

  defp with_text(seq, id, then) do
    {chunk, decoder} = Decoder.push(seq.decoder, id)
    seq = %{seq | decoder: decoder}

    case StopStrings.push(seq.stop_strings, chunk) do
      {:cont, text, stops} -> then.(%{seq | stop_strings: stops}, text)
      {:stop, text} -> finish(%{seq | stop_strings: StopStrings.new([])}, text, :stop, false)
    end
  end

  # The last text: what was held back, unless a stop string cut it off.
  defp finish(seq, text, reason, flush? \\ true) do
    text = if flush? and seq.decoder, do: text <> flush_text(seq), else: text
    seq = %{seq | finish_reason: reason, finished_at: System.monotonic_time(), text: [seq.text, text]}
    {:token, hd(seq.tokens), text, seq}
  end

  defp flush_text(seq) do
    case StopStrings.push(seq.stop_strings, Decoder.flush(seq.decoder)) do
      {:cont, text, stops} -> text <> StopStrings.flush(stops)
      {:stop, text} -> text
    end
  end

  defp timing(seq, n) do
    if seq.profile_timing do
      ms = &(System.convert_time_unit(&1, :native, :microsecond) / 1000)

      %{
        prefill_ms: ms.(seq.first_at - seq.started),
        per_token_ms: if(n > 1, do: ms.(seq.finished_at - seq.first_at) / (n - 1), else: 0.0),
        total_ms: ms.(seq.finished_at - seq.started)
      }
    end
  end
end
