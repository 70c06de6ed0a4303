defmodule Qwen3.JSON do
  @moduledoc """
  JSON through the native library's `serde_json` (the project takes no hex dependencies).

  Decoding gives maps with string keys and `nil` for null; encoding takes maps with atom or
  string keys, lists, binaries, numbers, booleans, `nil` and atoms (as strings).
  """
  alias Qwen3.Native

  @spec decode(binary) :: {:ok, term} | {:error, Qwen3.Error.t()}
  def decode(text) when is_binary(text), do: text |> Native.json_decode() |> Native.direct()

  def decode!(text), do: text |> decode() |> Qwen3.Error.unwrap!()

  @spec encode(term, keyword) :: {:ok, String.t()} | {:error, Qwen3.Error.t()}
  def encode(term, opts \\ []) do
    opts = Keyword.validate!(opts, pretty: false)
    term |> plain() |> Native.json_encode(opts[:pretty]) |> Native.direct()
  end

  @doc false
  # The native side reads map keys as binaries: atom keys become strings, tuples lists.
  def plain(%{__struct__: _} = struct), do: struct |> Map.from_struct() |> plain()
  def plain(%{} = map), do: Map.new(map, fn {k, v} -> {key(k), plain(v)} end)
  def plain(list) when is_list(list), do: Enum.map(list, &plain/1)
  def plain(tuple) when is_tuple(tuple), do: tuple |> Tuple.to_list() |> plain()
  def plain(other), do: other

  defp key(k) when is_atom(k), do: Atom.to_string(k)
  defp key(k) when is_binary(k), do: k
  defp key(k), do: to_string(k)

  def encode!(term, opts \\ []), do: term |> encode(opts) |> Qwen3.Error.unwrap!()
end
