defmodule Qwen3.HTTPThinkingBudgetTest do
  # `thinking_budget` in a chat completion request: the steered model thinks "Weather
  # first." unless its budget cuts the think block short; the tool call still follows.
  use ExUnit.Case, async: false

  alias Qwen3.{Fixtures, TestHTTP}

  setup_all do
    model = Qwen3.load!(Fixtures.path("tiny-steered"))
    serving = :"http_budget_#{System.unique_integer([:positive])}"
    start_supervised!({Qwen3.Serving, model: model, name: serving, batch_size: 2, max_len: 256})
    http = start_supervised!({Qwen3.HTTP, serving: serving, port: 0})
    {:ok, port: Qwen3.HTTP.port(http)}
  end

  defp chat(port, extra) do
    body =
      Map.merge(%{messages: [%{role: "user", content: "Weather?"}], max_tokens: 40, temperature: 0}, extra)

    {status, _, text} = TestHTTP.request(port, "POST", "/v1/chat/completions", body)
    {status, Qwen3.JSON.decode!(text)}
  end

  test "the think block holds at most thinking_budget tokens", %{port: port} do
    {200, free} = chat(port, %{})
    {200, capped} = chat(port, %{thinking_budget: 1})
    [free_msg, capped_msg] = for r <- [free, capped], do: hd(r["choices"])["message"]
    assert free_msg["reasoning_content"] == "Weather first."
    assert capped_msg["reasoning_content"] == "Weather"
    # The same call after the think block (each response names its call with its own id).
    calls = fn msg -> for c <- msg["tool_calls"] || [], do: c["function"] end
    assert calls.(capped_msg) == calls.(free_msg) and calls.(free_msg) != []

    {400, error} = chat(port, %{thinking_budget: -1})
    assert error["error"]["param"] == "thinking_budget"
  end
end
