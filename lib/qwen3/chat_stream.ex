defmodule Qwen3.ChatStream do
  @moduledoc """
  Splits a chat reply's text, as it streams, into what it is: `{:reasoning, text}` (the
  `<think>` block), `{:content, text}` (the answer) and `{:tool_call, call}` (a
  `Qwen3.ToolCalls` call, once its closing tag has arrived). A tag split across chunks is
  held back until it is whole; a malformed tool call comes out as content.

      {events, state} = Qwen3.ChatStream.push(Qwen3.ChatStream.new(), chunk)
      events ++ Qwen3.ChatStream.flush(state)
  """
  alias Qwen3.ToolCalls

  @think "<think>"
  @end_think "</think>"
  {open, close} = ToolCalls.tags()
  @open_call open
  @close_call close

  defstruct mode: :start, buffer: ""

  @type t :: %__MODULE__{}
  @type event :: {:reasoning, String.t()} | {:content, String.t()} | {:tool_call, ToolCalls.call()}

  @spec new() :: t
  def new, do: %__MODULE__{}

  @doc "The events `chunk` completes, in order, and the state for the next chunk."
  @spec push(t, String.t()) :: {[event], t}
  def push(%__MODULE__{} = state, chunk) do
    {events, state} = step(%{state | buffer: state.buffer <> chunk}, [])
    {events |> Enum.reverse() |> merge(), state}
  end

  @doc "What is left once the reply has ended (an unclosed tool call is content)."
  @spec flush(t) :: [event]
  def flush(%__MODULE__{mode: :tool_call, buffer: b}), do: nonempty(:content, @open_call <> b)
  def flush(%__MODULE__{mode: :thinking, buffer: b}), do: nonempty(:reasoning, b)
  def flush(%__MODULE__{buffer: b}), do: nonempty(:content, b)

  defp nonempty(_kind, ""), do: []
  defp nonempty(kind, text), do: [{kind, text}]

  # The reply opens with `<think>` (maybe after white space), or never does.
  defp step(%{mode: :start, buffer: b} = s, acc) do
    trimmed = String.trim_leading(b)

    cond do
      String.starts_with?(trimmed, @think) ->
        step(%{s | mode: :thinking, buffer: String.replace_prefix(trimmed, @think, "")}, acc)

      String.starts_with?(@think, trimmed) ->
        {acc, s}

      true ->
        step(%{s | mode: :content}, acc)
    end
  end

  defp step(%{mode: :thinking} = s, acc) do
    case until(s.buffer, @end_think) do
      {:found, before, rest} ->
        step(%{s | mode: :after_think, buffer: rest}, push_event(acc, :reasoning, before))

      {:partial, ready, held} ->
        {push_event(acc, :reasoning, ready), %{s | buffer: held}}
    end
  end

  # The answer's leading white space (between `</think>` and the text) is dropped.
  defp step(%{mode: :after_think, buffer: b} = s, acc) do
    case String.trim_leading(b) do
      "" -> {acc, %{s | buffer: ""}}
      rest -> step(%{s | mode: :content, buffer: rest}, acc)
    end
  end

  defp step(%{mode: :content} = s, acc) do
    case until(s.buffer, @open_call) do
      {:found, before, rest} -> step(%{s | mode: :tool_call, buffer: rest}, push_event(acc, :content, before))
      {:partial, ready, held} -> {push_event(acc, :content, ready), %{s | buffer: held}}
    end
  end

  defp step(%{mode: :tool_call} = s, acc) do
    case String.split(s.buffer, @close_call, parts: 2) do
      [body, rest] ->
        event =
          case ToolCalls.call(body) do
            {:ok, call} -> {:tool_call, call}
            :error -> {:content, @open_call <> body <> @close_call}
          end

        step(%{s | mode: :content, buffer: rest}, [event | acc])

      [_] ->
        {acc, s}
    end
  end

  defp push_event(acc, _kind, ""), do: acc
  defp push_event(acc, kind, text), do: [{kind, text} | acc]

  # `{:found, before, after}` the tag, or the text that cannot begin it and the tail that may.
  defp until(text, tag) do
    case String.split(text, tag, parts: 2) do
      [before, rest] ->
        {:found, before, rest}

      [_] ->
        held = longest_suffix_prefix(text, tag)
        {:partial, binary_part(text, 0, byte_size(text) - byte_size(held)), held}
    end
  end

  defp longest_suffix_prefix(text, tag) do
    max = min(byte_size(text), byte_size(tag) - 1)

    Enum.find_value(max..1//-1, "", fn n ->
      suffix = binary_part(text, byte_size(text) - n, n)
      if String.starts_with?(tag, suffix), do: suffix
    end)
  end

  # Neighbouring events of one kind become one.
  defp merge([{kind, a}, {kind, b} | rest]) when kind in [:reasoning, :content],
    do: merge([{kind, a <> b} | rest])

  defp merge([event | rest]), do: [event | merge(rest)]
  defp merge([]), do: []
end
