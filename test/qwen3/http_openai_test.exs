defmodule Qwen3.HTTPOpenAITest do
  # The real `openai` Python client (pinned, in the oracle venv) against two `mix
  # qwen3.server` processes: the tiny real-vocabulary checkpoint (batch 1 and no queue, so
  # that concurrent requests overflow it) and the steered one, whose greedy reply is a think
  # block and a tool call. What the client sees is checked against `Qwen3.chat/3` and
  # `Qwen3.generate/3` on the same checkpoints here.
  use ExUnit.Case, async: false

  alias Qwen3.Fixtures

  @moduletag timeout: 300_000
  @key "test-key-123"

  # `mix qwen3.server` as its own OS process; the port comes back through a file.
  defp start_server(model, extra, tmp) do
    port_file = Path.join(tmp, "port-#{System.unique_integer([:positive])}")
    mix = System.find_executable("mix")
    args = ~w(qwen3.server --model #{model} --port 0 --api-key #{@key} --port-file #{port_file}) ++ extra

    port =
      Port.open({:spawn_executable, mix}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        args: args,
        env: [{~c"MIX_ENV", ~c"test"}]
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    on_exit(fn -> System.cmd("kill", [to_string(os_pid)]) end)
    {port, await_port_file(port, port_file, 120_000)}
  end

  defp await_port_file(port, file, left) do
    case File.read(file) do
      {:ok, text} when text != "" ->
        String.to_integer(text)

      _ when left <= 0 ->
        flunk("mix qwen3.server did not listen within 120 s")

      _ ->
        receive do
          {^port, {:exit_status, status}} -> flunk("mix qwen3.server exited with status #{status}")
          {^port, {:data, _}} -> await_port_file(port, file, left)
        after
          100 -> await_port_file(port, file, left - 100)
        end
    end
  end

  @tag :tmp_dir
  test "chat, streams, completions, tools, logprobs, seeds, stops and errors through the openai client",
       %{tmp_dir: tmp} do
    chat_model = Fixtures.chat_model_path()
    steered_model = Fixtures.path("tiny-steered")
    {_, chat_port} = start_server(chat_model, ~w(--batch-size 1 --max-queue 0), tmp)
    {_, steered_port} = start_server(steered_model, [], tmp)

    python = System.fetch_env!("QWEN3_ORACLE_PYTHON")
    script = Path.expand("../support/openai_client.py", __DIR__)
    url = &"http://127.0.0.1:#{&1}/v1"
    args = [script, url.(chat_port), @key, "tiny-chat", url.(steered_port)]
    {out, status} = System.cmd(python, args, stderr_to_stdout: true)
    assert status == 0, out
    seen = out |> String.split("\n", trim: true) |> List.last() |> Qwen3.JSON.decode!()

    model = Qwen3.load!(chat_model)
    hello = [%{role: "user", content: "Hello there"}]
    greedy = Qwen3.chat!(model, hello, max_new_tokens: 8)

    # Greedy through HTTP is the library's greedy, whole and streamed.
    assert seen["chat"]["content"] == greedy.content
    assert seen["chat"]["finish_reason"] == "length"

    assert Map.take(seen["chat"]["usage"], ~w(prompt_tokens completion_tokens total_tokens)) == %{
             "prompt_tokens" => greedy.prompt_tokens,
             "completion_tokens" => 8,
             "total_tokens" => greedy.prompt_tokens + 8
           }

    assert seen["chat"]["object"] == "chat.completion" and seen["chat"]["model"] == "tiny-chat"
    assert seen["chat_stream"]["content"] == greedy.content
    assert seen["chat_stream"]["finish_reason"] == "length" and seen["chat_stream"]["roles"] == ["assistant"]
    assert seen["chat_stream"]["usage"]["completion_tokens"] == 8

    text = Qwen3.generate!(model, "The sea", max_new_tokens: 6)
    assert seen["completion"]["text"] == text.text
    assert Enum.join(seen["completion"]["tokens"]) == text.text
    assert seen["completion"]["top"] == List.duplicate(2, 6)
    assert seen["completion_stream"] == text.text
    assert seen["completion_ids"]["text"] == Qwen3.generate!(model, [1, 2, 3], max_new_tokens: 5).text
    assert seen["completion_ids"]["usage"]["prompt_tokens"] == 3

    [a, b, c] = seen["seeds"]
    assert a == b and a != c

    stop = seen["stop"]
    assert stop["finish_reason"] == "stop"

    assert String.starts_with?(greedy.content, stop["content"]) and
             not String.contains?(stop["content"], stop["stop"])

    lp = seen["logprobs"]
    assert lp["n"] == 5 and lp["tokens"] == lp["content"] and lp["first_is_top"]
    assert Enum.all?(lp["top"], &(length(&1) == 3)) and Enum.all?(lp["values"], &(&1 <= 0))

    assert seen["json_schema"]["finish_reason"] == "stop"
    assert %{"n" => n} = Qwen3.JSON.decode!(seen["json_schema"]["content"])
    assert n in 1..5
    assert seen["json_object"]["finish_reason"] in ["stop", "length"]

    if seen["json_object"]["finish_reason"] == "stop",
      do: assert(is_map(Qwen3.JSON.decode!(seen["json_object"]["content"])))

    assert seen["bad_schema"]["status"] == 400

    # The steered model's reply: a think block and a call, parsed whole and streamed.
    call = %{"name" => "get_weather", "arguments" => %{"days" => 3}}
    assert seen["tools"]["finish_reason"] == "tool_calls"
    assert seen["tools"]["reasoning"] == "Weather first."
    assert seen["tools"]["content"] in [nil, ""]
    assert [%{"id" => "call_" <> _} = got] = seen["tools"]["calls"]
    assert Map.delete(got, "id") == call
    assert seen["tools_stream"]["calls"] == [call]
    assert seen["tools_stream"]["reasoning"] == "Weather first."
    assert seen["tools_stream"]["finish_reason"] == "tool_calls"
    assert seen["tools_continued"] == "tool_calls"

    errors = seen["errors"]
    assert errors["bad_json"] == 400
    assert errors["wrong_type"]["status"] == 400 and errors["unknown_field"]["status"] == 400
    assert errors["unknown_model"]["status"] == 404
    assert errors["no_key"]["status"] == 401
    assert {errors["route"], errors["method"], errors["too_large"]} == {404, 405, 413}
    assert errors["shape"] == ["code", "message", "param", "type"]
    assert seen["models"] == ["tiny-chat"]

    # Four at once on a serving that holds one: the others are told to come back.
    assert Enum.count(seen["overload"], &(&1 == 200)) >= 1
    assert Enum.any?(seen["overload"], &match?(%{"status" => 429}, &1))
  end
end
