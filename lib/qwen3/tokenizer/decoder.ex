defmodule Qwen3.Tokenizer.Decoder do
  @moduledoc """
  Incremental detokenization for streaming. Byte-level BPE tokens can end inside a UTF-8
  character, and a token's text can depend on its neighbours, so each step decodes a short
  window and emits only the text that became final.

      dec = Decoder.new(tokenizer)
      {"Hel", dec} = Decoder.push(dec, id1)
      ...
      rest = Decoder.flush(dec)
  """
  alias Qwen3.Tokenizer

  @enforce_keys [:tokenizer]
  defstruct [:tokenizer, skip_special_tokens: true, window: [], emitted: 0, emitted_text: ""]

  @type t :: %__MODULE__{}

  @doc "`:skip_special_tokens` (true) leaves `<|im_end|>` and the like out of the text."
  def new(%Tokenizer{} = tokenizer, opts \\ []) do
    opts = Keyword.validate!(opts, skip_special_tokens: true)
    %__MODULE__{tokenizer: tokenizer, skip_special_tokens: opts[:skip_special_tokens]}
  end

  @doc """
  Adds one token; returns the text that is now final (possibly "") and the new state.
  `window` holds the ids since the last emitted boundary plus the pending ones; the first
  `emitted` of them decode to `emitted_text`.
  """
  @spec push(t, non_neg_integer) :: {String.t(), t}
  def push(%__MODULE__{} = d, id) do
    window = d.window ++ [id]
    text = decode(d, window)
    size = byte_size(d.emitted_text)

    if byte_size(text) > size and not String.ends_with?(text, "\uFFFD") and
         binary_part(text, 0, size) == d.emitted_text do
      new = binary_part(text, size, byte_size(text) - size)
      # The next window starts after the ids just emitted through, keeping none pending.
      fresh = Enum.drop(window, d.emitted)
      {new, %{d | window: fresh, emitted: length(fresh), emitted_text: decode(d, fresh)}}
    else
      {"", %{d | window: window}}
    end
  end

  @doc "Text of the ids still pending (an unfinished character decodes as U+FFFD)."
  @spec flush(t) :: String.t()
  def flush(%__MODULE__{window: window, emitted: emitted} = d) when length(window) > emitted do
    text = decode(d, window)
    size = byte_size(d.emitted_text)
    if byte_size(text) >= size, do: binary_part(text, size, byte_size(text) - size), else: text
  end

  def flush(%__MODULE__{}), do: ""

  defp decode(_d, []), do: ""

  defp decode(d, ids) do
    Tokenizer.decode!(d.tokenizer, ids, skip_special_tokens: d.skip_special_tokens)
  end
end
