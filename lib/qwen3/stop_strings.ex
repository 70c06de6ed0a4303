defmodule Qwen3.StopStrings do
  @moduledoc """
  Finds stop strings in streamed text, even when one spans several tokens. Text that might
  be the start of a stop string is held back until it is known not to be one, so streamed
  chunks never contain any part of a stop string.
  """
  defstruct stops: [], held: ""

  @type t :: %__MODULE__{stops: [String.t()], held: String.t()}

  def new(stops) when is_list(stops), do: %__MODULE__{stops: Enum.reject(stops, &(&1 == ""))}

  @doc "Adds text: `{:cont, text_to_emit, state}` or `{:stop, text_before_the_stop}`."
  @spec push(t, String.t()) :: {:cont, String.t(), t} | {:stop, String.t()}
  def push(%__MODULE__{stops: []} = s, text), do: {:cont, text, s}

  def push(%__MODULE__{} = s, text) do
    buffer = s.held <> text

    case first_match(buffer, s.stops) do
      nil ->
        keep = held_suffix_size(buffer, s.stops)
        emit = byte_size(buffer) - keep
        {:cont, binary_part(buffer, 0, emit), %{s | held: binary_part(buffer, emit, keep)}}

      at ->
        {:stop, binary_part(buffer, 0, at)}
    end
  end

  @doc "The held-back text, when the generation ends for another reason."
  def flush(%__MODULE__{held: held}), do: held

  defp first_match(buffer, stops) do
    stops
    |> Enum.flat_map(fn stop ->
      case :binary.match(buffer, stop) do
        {at, _} -> [at]
        :nomatch -> []
      end
    end)
    |> Enum.min(fn -> nil end)
  end

  # The longest end of `buffer` that some stop string begins with.
  defp held_suffix_size(buffer, stops) do
    longest = stops |> Enum.map(&byte_size/1) |> Enum.max()
    max_k = min(longest - 1, byte_size(buffer))

    Enum.find(max_k..1//-1, 0, fn k ->
      suffix = binary_part(buffer, byte_size(buffer) - k, k)
      Enum.any?(stops, &String.starts_with?(&1, suffix))
    end)
  end
end
