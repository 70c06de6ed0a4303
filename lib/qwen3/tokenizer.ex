defmodule Qwen3.Tokenizer do
  @moduledoc """
  The checkpoint's Hugging Face tokenizer (`tokenizer.json`), run by the `tokenizers` crate.

      {:ok, tok} = Qwen3.Tokenizer.load("path/to/checkpoint")
      {:ok, ids} = Qwen3.Tokenizer.encode(tok, "Hello!")
      {:ok, "Hello!"} = Qwen3.Tokenizer.decode(tok, ids)

  For streaming, `Qwen3.Tokenizer.Decoder` turns ids into text chunks that never split a
  UTF-8 character.
  """
  alias Qwen3.{Error, Native}

  @enforce_keys [:ref, :path]
  defstruct [:ref, :path]

  @type t :: %__MODULE__{ref: reference, path: String.t()}

  @doc "Loads `tokenizer.json` from a checkpoint directory, or a tokenizer file itself."
  @spec load(Path.t()) :: {:ok, t} | {:error, Error.t()}
  def load(path) do
    file = if File.dir?(path), do: Path.join(path, "tokenizer.json"), else: path

    with {:ok, ref} <- file |> Path.expand() |> Native.tokenizer_load() |> Native.direct() do
      {:ok, %__MODULE__{ref: ref, path: Path.expand(file)}}
    end
  end

  def load!(path), do: path |> load() |> Error.unwrap!()

  @doc """
  Text → token ids. `:add_special_tokens` (false) adds the tokenizer's template tokens (Qwen3
  has none). Special tokens written in the text, such as `<|im_start|>`, become their ids.
  """
  @spec encode(t, String.t(), keyword) :: {:ok, [non_neg_integer]} | {:error, Error.t()}
  def encode(%__MODULE__{ref: ref}, text, opts \\ []) when is_binary(text) do
    opts = Keyword.validate!(opts, add_special_tokens: false)
    ref |> Native.tokenizer_encode(text, opts[:add_special_tokens]) |> Native.direct()
  end

  def encode!(tokenizer, text, opts \\ []), do: tokenizer |> encode(text, opts) |> Error.unwrap!()

  @doc "Token ids → text. `:skip_special_tokens` (false) leaves out `<|im_end|>` and the like."
  @spec decode(t, [non_neg_integer], keyword) :: {:ok, String.t()} | {:error, Error.t()}
  def decode(%__MODULE__{ref: ref}, ids, opts \\ []) when is_list(ids) do
    opts = Keyword.validate!(opts, skip_special_tokens: false)

    if Enum.all?(ids, &(is_integer(&1) and &1 >= 0)),
      do: ref |> Native.tokenizer_decode(ids, opts[:skip_special_tokens]) |> Native.direct(),
      else: {:error, %Error{kind: :invalid_argument, message: "token ids must be non-negative integers"}}
  end

  def decode!(tokenizer, ids, opts \\ []), do: tokenizer |> decode(ids, opts) |> Error.unwrap!()

  @doc "The id of a token (`\"<|im_end|>\"`), or nil."
  @spec token_to_id(t, String.t()) :: non_neg_integer | nil
  def token_to_id(%__MODULE__{ref: ref}, token), do: Native.tokenizer_token_to_id(ref, token)

  @doc "The token string of an id, or nil."
  @spec id_to_token(t, non_neg_integer) :: String.t() | nil
  def id_to_token(%__MODULE__{ref: ref}, id) when is_integer(id) and id >= 0,
    do: Native.tokenizer_id_to_token(ref, id)

  @doc """
  Each token's own bytes, as OpenAI's logprobs report them: a piece of a character has
  bytes that are not valid UTF-8 on their own (so its text is shown with a replacement
  character).
  """
  @spec token_bytes(t, [non_neg_integer]) :: [binary]
  def token_bytes(%__MODULE__{ref: ref}, ids) when is_list(ids), do: Native.tokenizer_token_bytes(ref, ids)

  @doc "Vocabulary size, with the added tokens (`<|im_start|>`, `<think>`…) unless `false`."
  def vocab_size(%__MODULE__{ref: ref}, with_added \\ true), do: Native.tokenizer_vocab_size(ref, with_added)

  @doc "The added tokens as `%{id:, content:, special:}`, by id."
  def added_tokens(%__MODULE__{ref: ref}) do
    for {id, content, special} <- Native.tokenizer_added_tokens(ref),
        do: %{id: id, content: content, special: special}
  end

  defimpl Inspect do
    def inspect(t, _opts), do: "#Qwen3.Tokenizer<#{t.path}>"
  end
end
