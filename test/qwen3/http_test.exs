defmodule Qwen3.HTTPTest do
  # Qwen3.HTTP in this VM, driven over loopback by a raw client (Qwen3.TestHTTP): many
  # concurrent streams, clients that leave mid-stream, a corpus of bad requests, and a
  # serving that is not there yet. The server must answer each with its status, keep no
  # slot, and stay up.
  use ExUnit.Case, async: false

  import Qwen3.TestHelpers
  alias Qwen3.{Fixtures, Serving, TestHTTP}

  @moduletag timeout: 300_000

  setup_all do
    model = Qwen3.load!(Fixtures.chat_model_path())
    serving = :"http_test_serving_#{System.unique_integer([:positive])}"
    # Supervised: stopped (and their caches freed) before the next module, whose memory
    # measurements must not see them go.
    start_supervised!({Serving, model: model, name: serving, batch_size: 8, max_len: 512, max_queue: 64})

    http =
      start_supervised!({Qwen3.HTTP, serving: serving, port: 0, read_timeout: 1_000, max_body: 1_048_576})

    {:ok, model: model, serving: serving, port: Qwen3.HTTP.port(http)}
  end

  defp stream_completion(port, prompt, opts) do
    body = Map.merge(%{prompt: prompt, stream: true}, Map.new(opts))
    {200, headers, sse} = TestHTTP.request(port, "POST", "/v1/completions", body)
    assert headers["content-type"] == "text/event-stream"
    assert String.ends_with?(sse, "data: [DONE]\n\n")
    sse |> TestHTTP.events() |> Enum.map_join(&hd(&1["choices"])["text"])
  end

  test "64 concurrent streaming clients each get what they would get alone", %{port: port, model: model} do
    requests =
      for i <- 1..64 do
        ids = [rem(i * 37, 5000) + 10, rem(i * 11, 3000) + 20, i]
        http = if rem(i, 2) == 0, do: [temperature: 0], else: [temperature: 1.0, seed: i]
        lib = if rem(i, 2) == 0, do: [], else: [sampler: :sample, temperature: 1.0, seed: i]
        {ids, [max_tokens: 8] ++ http, [max_new_tokens: 8] ++ lib}
      end

    texts =
      requests
      |> Enum.map(fn {ids, http, _} -> Task.async(fn -> stream_completion(port, ids, http) end) end)
      |> Task.await_many(120_000)

    for {text, {ids, _, lib}} <- Enum.zip(texts, requests),
        do: assert(text == Qwen3.generate!(model, ids, lib).text)
  end

  test "clients that leave mid-stream free their slots at once; the server stays up", %{model: model} do
    # Long enough that the requests could not finish by themselves within the second.
    serving = :"http_leaving_#{System.unique_integer([:positive])}"
    start_supervised!({Serving, model: model, name: serving, batch_size: 8, max_len: 8192})
    http = start_supervised!({Qwen3.HTTP, serving: serving, port: 0})
    port = Qwen3.HTTP.port(http)

    body =
      TestHTTP.encode("POST", "/v1/completions", %{prompt: [1, 2, 3], stream: true, max_tokens: 8000}, [])

    sockets =
      for _ <- 1..8 do
        {:ok, socket} = TestHTTP.connect(port)
        :ok = :gen_tcp.send(socket, body)
        {:ok, first} = :gen_tcp.recv(socket, 0, 10_000)
        assert first =~ "200 OK"
        socket
      end

    assert eventually(fn -> Serving.stats(serving).active == 8 end)
    Enum.each(sockets, &:gen_tcp.close/1)

    assert eventually(100, fn -> Serving.stats(serving).active == 0 end),
           "a slot was kept after its client left"

    assert {200, _, _} = TestHTTP.request(port, "GET", "/health")
  end

  @json [{"content-type", "application/json"}]

  test "every bad request gets its status; none crashes the server or keeps a slot", %{
    port: port,
    serving: serving
  } do
    chat = "/v1/chat/completions"
    post = &TestHTTP.encode("POST", chat, &1, @json)

    corpus = [
      {"truncated JSON", post.(~s({"messages": [{"role": "user", "content": "hi"})), 400},
      {"messages not a list", post.(~s({"messages": "hi"})), 400},
      {"a message without a role", post.(~s({"messages": [{"content": "hi"}]})), 400},
      {"max_tokens as text", post.(~s({"messages": [{"role": "user", "content": "x"}], "max_tokens": "8"})),
       400},
      {"a huge number", post.(~s({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1e400})),
       400},
      {"a huge integer",
       post.(~s({"messages": [{"role": "user", "content": "x"}], "max_tokens": 99999999999999999999999})),
       400},
      {"temperature out of range",
       post.(~s({"messages": [{"role": "user", "content": "x"}], "temperature": 7})), 400},
      {"an unknown field", post.(~s({"messages": [{"role": "user", "content": "x"}], "logit_bias": {}})),
       400},
      {"n above 1", post.(~s({"messages": [{"role": "user", "content": "x"}], "n": 2})), 400},
      {"bytes that are not UTF-8",
       post.(<<"{\"messages\": [{\"role\": \"user\", \"content\": \"", 0xFF, 0xFE, "\"}]}">>), 400},
      {"a JSON array", post.("[1, 2]"), 400},
      {"an empty body", post.(""), 400},
      {"a body over the limit", TestHTTP.encode("POST", chat, String.duplicate("x", 10 * 1024 * 1024), []),
       413},
      {"no Content-Length", "POST #{chat} HTTP/1.1\r\nhost: x\r\n\r\n{}", 411},
      {"a chunked body",
       "POST #{chat} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 411},
      {"a bad Content-Length", "POST #{chat} HTTP/1.1\r\nhost: x\r\ncontent-length: lots\r\n\r\n", 400},
      {"a malformed request line", "GARBAGE\r\n\r\n", 400},
      {"a header line too long", "GET /health HTTP/1.1\r\nx-big: #{String.duplicate("a", 20_000)}\r\n\r\n",
       431},
      {"an unknown route", TestHTTP.encode("GET", "/v2/anything", nil, []), 404},
      {"a wrong method", TestHTTP.encode("DELETE", "/v1/models", nil, []), 405},
      {"an unknown model", TestHTTP.encode("GET", "/v1/models/gpt-9", nil, []), 404},
      {"a prompt longer than a slot",
       post.(Qwen3.JSON.encode!(%{messages: [%{role: "user", content: String.duplicate("word ", 800)}]})),
       400}
    ]

    for {what, raw, want} <- corpus do
      {status, headers, body} =
        case TestHTTP.raw(port, raw) do
          {_, _, _} = response -> response
          other -> flunk("#{what}: #{inspect(other)}")
        end

      assert status == want, "#{what}: #{status} #{body}"

      if status != 404 or headers["content-type"] == "application/json",
        do: assert(%{"error" => %{"message" => _, "type" => _}} = Qwen3.JSON.decode!(body), what)
    end

    assert eventually(fn -> Serving.stats(serving).active == 0 end)
    assert {200, _, _} = TestHTTP.request(port, "GET", "/health")
  end

  test "a client that sends its request a byte at a time is timed out with 408", %{port: port} do
    {:ok, socket} = TestHTTP.connect(port)
    started = System.monotonic_time(:millisecond)

    # Sent from another process, as a slow client would, while this one waits for the reply.
    spawn_link(fn ->
      for byte <- String.graphemes("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n") do
        Process.sleep(200)
        :gen_tcp.send(socket, byte)
      end
    end)

    assert {408, _, _} = TestHTTP.read_response(socket, 5_000)
    assert System.monotonic_time(:millisecond) - started < 3_000
    assert {200, _, _} = TestHTTP.request(port, "GET", "/health")
  end

  test "one connection serves request after request (keep-alive)", %{port: port} do
    {:ok, socket} = TestHTTP.connect(port)

    for _ <- 1..3 do
      :ok =
        :gen_tcp.send(
          socket,
          TestHTTP.encode("POST", "/v1/completions", %{prompt: "Hi", max_tokens: 2, temperature: 0}, [])
        )

      assert {200, %{"connection" => "keep-alive"}, body} = TestHTTP.read_response(socket, 10_000)
      assert %{"usage" => %{"completion_tokens" => 2}} = Qwen3.JSON.decode!(body)
    end

    :gen_tcp.close(socket)
  end

  test "until its serving is there, the server says 503; then it serves", %{model: model} do
    name = :"http_later_#{System.unique_integer([:positive])}"
    http = start_supervised!({Qwen3.HTTP, serving: name, port: 0})
    port = Qwen3.HTTP.port(http)
    ask = %{messages: [%{role: "user", content: "hi"}], max_tokens: 2}

    assert {503, _, _} = TestHTTP.request(port, "GET", "/health")
    assert {503, _, body} = TestHTTP.request(port, "POST", "/v1/chat/completions", ask)
    assert %{"error" => %{"type" => "server_error"}} = Qwen3.JSON.decode!(body)

    start_supervised!({Serving, model: model, name: name})
    assert {200, _, _} = TestHTTP.request(port, "GET", "/health")
    assert {200, _, _} = TestHTTP.request(port, "POST", "/v1/chat/completions", ask)
    assert {200, _, metrics} = TestHTTP.request(port, "GET", "/metrics")
    assert metrics =~ ~s(qwen3_http_requests_total{route="/v1/chat/completions",status="503"} 1)
    assert metrics =~ ~s(qwen3_http_requests_total{route="/v1/chat/completions",status="200"} 1)
    assert metrics =~ "qwen3_time_to_first_token_seconds_count 1"
  end
end
