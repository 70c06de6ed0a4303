defmodule Qwen3.ToolCalls do
  @moduledoc """
  Qwen3's tool calls: the model writes `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`
  (the chat template renders `tools` and teaches it so). `parse/1` takes them out of a
  reply's text as OpenAI-shaped calls; text between the tags that is not a JSON object with
  a `"name"` stays content, as it was.
  """
  alias Qwen3.JSON

  @open "<tool_call>"
  @close "</tool_call>"

  @typedoc "An OpenAI tool call: `arguments` is the JSON text of the arguments object."
  @type call :: %{id: String.t(), type: String.t(), function: %{name: String.t(), arguments: String.t()}}

  @doc "The tags a call sits between."
  def tags, do: {@open, @close}

  @doc """
  `{content, calls}`: the text without its well-formed tool calls (trimmed when it had
  any), and the calls in order.
  """
  @spec parse(String.t()) :: {String.t(), [call]}
  def parse(text) do
    {content, calls} = scan(text, [], [])
    if calls == [], do: {text, []}, else: {content |> IO.iodata_to_binary() |> String.trim(), calls}
  end

  defp scan(text, content, calls) do
    with [before, rest] <- String.split(text, @open, parts: 2),
         [body, after_call] <- String.split(rest, @close, parts: 2),
         {:ok, call} <- call(body) do
      scan(after_call, [content, before], [call | calls])
    else
      _ -> {[content, text], Enum.reverse(calls)}
    end
  end

  @doc "The call a tag's body holds, or `:error` when it is not one."
  @spec call(String.t()) :: {:ok, call} | :error
  def call(body) do
    case JSON.decode(String.trim(body)) do
      {:ok, %{"name" => name} = decoded} when is_binary(name) ->
        arguments = Map.get(decoded, "arguments", %{})
        arguments = if is_binary(arguments), do: arguments, else: JSON.encode!(arguments)
        {:ok, %{id: new_id(), type: "function", function: %{name: name, arguments: arguments}}}

      _ ->
        :error
    end
  end

  # OpenAI's shape of id: "call_" and 24 random characters.
  defp new_id, do: "call_" <> Base.encode32(:crypto.strong_rand_bytes(15), case: :lower, padding: false)
end
