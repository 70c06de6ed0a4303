defmodule Qwen3.ChatStreamTest do
  use ExUnit.Case, async: true

  alias Qwen3.{ChatStream, ToolCalls}

  @reply "<think>\nThe user wants weather.\n</think>\n\nLet me look.<tool_call>\n" <>
           ~s({"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}) <>
           "\n</tool_call>"

  defp run(chunks) do
    {events, state} =
      Enum.reduce(chunks, {[], ChatStream.new()}, fn chunk, {acc, st} ->
        {events, st} = ChatStream.push(st, chunk)
        {acc ++ events, st}
      end)

    events ++ ChatStream.flush(state)
  end

  # Events of one kind joined, in order of first appearance.
  defp joined(events, kind), do: for({^kind, text} <- events, into: "", do: text)

  defp calls(events),
    do:
      for({:tool_call, c} <- events, do: %{c.function | arguments: Qwen3.JSON.decode!(c.function.arguments)})

  test "however the text is cut, the parts are the same" do
    whole = run([@reply])
    assert joined(whole, :reasoning) == "\nThe user wants weather.\n"
    assert joined(whole, :content) == "Let me look."
    assert calls(whole) == [%{name: "get_weather", arguments: %{"city" => "Paris", "days" => 3}}]

    for size <- [1, 2, 3, 5, 7, 11] do
      chunks = for <<c::binary-size(size) <- @reply>>, do: c
      rest = binary_part(@reply, div(byte_size(@reply), size) * size, rem(byte_size(@reply), size))
      events = run(chunks ++ [rest])
      assert joined(events, :reasoning) == joined(whole, :reasoning), "size #{size}"
      assert joined(events, :content) == joined(whole, :content), "size #{size}"
      assert calls(events) == calls(whole), "size #{size}"
    end
  end

  test "without tags it is all content; a malformed call stays content; an unclosed one too" do
    assert run(["Hello", " there"]) == [{:content, "Hello"}, {:content, " there"}]
    bad = "a<tool_call>{not json}</tool_call>b"
    assert joined(run([bad]), :content) == bad
    assert joined(run(["x<tool_call>{\"name\": \"f\""]), :content) == "x<tool_call>{\"name\": \"f\""
    assert run(["<thi", "nk>deep"]) == [{:reasoning, "deep"}]
  end

  test "ToolCalls.parse takes calls out of a reply and leaves other text alone" do
    {content, [call]} = ToolCalls.parse(~s(Sure.<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call>))
    assert content == "Sure."
    assert call.type == "function" and call.function.name == "f"
    assert String.starts_with?(call.id, "call_")
    assert Qwen3.JSON.decode!(call.function.arguments) == %{"x" => 1}
    assert ToolCalls.parse("<tool_call>nope</tool_call>") == {"<tool_call>nope</tool_call>", []}
  end

  test "Qwen3.chat/3 returns the steered model's think block and tool call, and continues after it" do
    model = Qwen3.load!(Qwen3.Fixtures.path("tiny-steered"))
    want = File.read!(Path.join(Qwen3.Fixtures.path("tiny-steered"), "steered_reply.txt"))
    messages = [%{role: "user", content: "Weather?"}]
    {:ok, reply} = Qwen3.chat(model, messages, max_new_tokens: 40)

    assert reply.text <> "<|im_end|>" == want
    assert reply.thinking == "Weather first." and reply.content == ""
    assert [%{function: %{name: "get_weather", arguments: args}}] = reply.tool_calls
    assert Qwen3.JSON.decode!(args) == %{"days" => 3}
    assert %{role: "assistant", tool_calls: [_]} = List.last(reply.messages)

    # The call goes back into the template with its result, as OpenAI clients send it.
    [call] = reply.tool_calls
    turn = reply.messages ++ [%{role: "tool", content: "sunny", tool_call_id: call.id}]
    assert {:ok, %{tool_calls: [_]}} = Qwen3.chat(model, turn, max_new_tokens: 40)
  end
end
