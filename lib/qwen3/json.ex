defmodule Qwen3.JSON do
  @moduledoc """
  JSON through the native library's `serde_json` (the project takes no hex dependencies).

  Decoding gives maps with string keys and `nil` for null; encoding takes maps with atom or
  string keys, lists, binaries, numbers, booleans, `nil` and atoms (as strings).
  """
  alias Qwen3.Native

  @spec decode(binary) :: {:ok, term} | {:error, Qwen3.Error.t()}
  def decode(text) when is_binary(text), do: text |> Native.json_decode() |> Native.direct()

  def decode!(text), do: text |> decode() |> bang()

  @spec encode(term, keyword) :: {:ok, String.t()} | {:error, Qwen3.Error.t()}
  def encode(term, opts \\ []) do
    opts = Keyword.validate!(opts, pretty: false)
    term |> Native.json_encode(opts[:pretty]) |> Native.direct()
  end

  def encode!(term, opts \\ []), do: term |> encode(opts) |> bang()

  defp bang({:ok, v}), do: v
  defp bang({:error, e}), do: raise(e)
end
