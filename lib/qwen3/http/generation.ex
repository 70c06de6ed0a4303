defmodule Qwen3.HTTP.Generation do
  @moduledoc false
  # POST /v1/chat/completions and /v1/completions: the request's parameters become serving
  # options (`Qwen3.HTTP.Params`), the serving generates, and the reply takes OpenAI's
  # shape: one JSON object, or server-sent events (`data: {...}` chunks, then
  # `data: [DONE]`). A client that leaves is noticed at the next token (streams) or at
  # once (whole replies), and its request is cancelled.

  alias Qwen3.{ChatStream, Error, Serving, Tokenizer}
  alias Qwen3.HTTP.{Metrics, Params, Reply, Wire}

  @doc "Handles a chat completion; returns the status sent, or `{:closed, status | nil}`."
  def chat(conn, body) do
    case Params.chat(body) do
      {:ok, messages, opts, meta} ->
        opts = Keyword.put_new(opts, :max_new_tokens, conn.max_len)

        if meta.stream,
          do: stream(conn, :chat, messages, opts, meta),
          else: whole(conn, :chat, messages, opts)

      {:error, param, message} ->
        Reply.error(conn, 400, message, param)
    end
  end

  @doc "Handles a text completion."
  def completion(conn, body) do
    case Params.completion(body) do
      {:ok, prompt, opts, meta} ->
        if meta.stream, do: stream(conn, :text, prompt, opts, meta), else: whole(conn, :text, prompt, opts)

      {:error, param, message} ->
        Reply.error(conn, 400, message, param)
    end
  end

  ## Whole replies

  defp whole(conn, kind, prompt, opts) do
    case generate(conn, prompt, opts) do
      {:ok, result} ->
        Metrics.observe(conn.metrics, :time_to_first_token_seconds, first_token_seconds(result))
        Reply.json(conn, 200, reply(conn, kind, prompt, result))

      {:error, %Error{} = e} ->
        Reply.error(conn, e)

      {:invalid, message} ->
        Reply.error(conn, 400, message, nil)

      :client_gone ->
        {:closed, nil}
    end
  end

  # In a task, so that a client that closes its connection while it waits cancels it.
  defp generate(conn, prompt, opts) do
    task =
      Task.async(fn ->
        try do
          Serving.generate(conn.serving, prompt, opts)
        rescue
          e in ArgumentError -> {:invalid, Exception.message(e)}
        end
      end)

    :ok = :inet.setopts(conn.socket, active: :once)

    outcome =
      receive do
        {ref, outcome} when ref == task.ref ->
          Process.demonitor(task.ref, [:flush])
          outcome

        {:tcp_closed, _} ->
          Task.shutdown(task, :brutal_kill)
          :client_gone
      end

    # Passive again before the reply: the client's next request must reach `recv`.
    :inet.setopts(conn.socket, active: false)
    outcome
  end

  defp first_token_seconds(%{timing: %{queue_ms: q, prefill_ms: p}}), do: (q + p) / 1000
  defp first_token_seconds(_), do: 0.0

  defp reply(conn, :chat, messages, result) do
    turn = Qwen3.chat_reply(messages, result)

    message = %{
      role: "assistant",
      content: if(turn.content == "" and turn.tool_calls != [], do: nil, else: turn.content)
    }

    message = if turn.thinking, do: Map.put(message, :reasoning_content, turn.thinking), else: message
    message = if turn.tool_calls != [], do: Map.put(message, :tool_calls, turn.tool_calls), else: message
    reason = if turn.tool_calls != [], do: "tool_calls", else: to_string(result.finish_reason)

    envelope(conn, "chat.completion", [
      %{index: 0, message: message, logprobs: chat_logprobs(conn, result), finish_reason: reason}
    ])
    |> Map.put(:usage, usage(result))
  end

  defp reply(conn, :text, _prompt, result) do
    choice = %{
      index: 0,
      text: result.text || "",
      logprobs: text_logprobs(conn, result.tokens, result[:logprobs]),
      finish_reason: to_string(result.finish_reason)
    }

    conn |> envelope("text_completion", [choice]) |> Map.put(:usage, usage(result))
  end

  defp envelope(conn, object, choices) do
    id = if object == "text_completion", do: "cmpl-" <> conn.id, else: "chatcmpl-" <> conn.id
    %{id: id, object: object, created: conn.created, model: conn.model_id, choices: choices}
  end

  defp usage(result) do
    n = length(result.tokens)
    %{prompt_tokens: result.prompt_tokens, completion_tokens: n, total_tokens: result.prompt_tokens + n}
  end

  ## Streams

  defp stream(conn, kind, prompt, opts, meta) do
    events =
      try do
        Serving.stream(conn.serving, prompt, [events: true] ++ opts)
      rescue
        e in ArgumentError -> {:invalid, Exception.message(e)}
      end

    case events do
      {:invalid, message} ->
        Reply.error(conn, 400, message, nil)

      events ->
        state = %{
          conn: conn,
          kind: kind,
          meta: meta,
          head: false,
          chat: ChatStream.new(),
          logprobs: [],
          tools: 0
        }

        {:closed, events |> Enum.reduce_while(state, &stream_event/2) |> Map.get(:status)}
    end
  end

  defp stream_event({:error, %Error{} = e}, %{head: false} = s),
    do: {:halt, Map.put(s, :status, Reply.error(s.conn, e))}

  defp stream_event({:error, %Error{} = e}, s) do
    send_event(s, %{error: Reply.body(Reply.status(e), e.message, nil)})
    done(s)
    {:halt, Map.put(s, :status, 200)}
  end

  defp stream_event({:token, text, id, logprobs}, s) do
    s = if s.head, do: s, else: open(s)
    s = if logprobs, do: %{s | logprobs: s.logprobs ++ [{id, logprobs}]}, else: s

    {events, s} =
      case s.kind do
        :chat ->
          {events, chat} = ChatStream.push(s.chat, text)
          {events, %{s | chat: chat}}

        :text ->
          {if(text == "", do: [], else: [{:content, text}]), s}
      end

    s = Enum.reduce(events, s, &send_delta/2)
    if gone?(s), do: {:halt, Map.delete(s, :status)}, else: {:cont, s}
  end

  defp stream_event({:done, result}, s) do
    s = if s.kind == :chat, do: Enum.reduce(ChatStream.flush(s.chat), s, &send_delta/2), else: s
    s = if s.logprobs != [], do: send_delta({:content, ""}, s), else: s
    reason = if s.tools > 0, do: "tool_calls", else: to_string(result.finish_reason)

    send_chunk(
      s,
      if(s.kind == :chat, do: %{delta: %{}, finish_reason: reason}, else: %{finish_reason: reason}),
      nil
    )

    if s.meta.include_usage,
      do: send_event(s, s.conn |> envelope(object(s), []) |> Map.put(:usage, usage(result)))

    done(s)
    {:halt, Map.put(s, :status, 200)}
  end

  # The head, and for chat the opening delta with the role.
  defp open(s) do
    Metrics.observe(s.conn.metrics, :time_to_first_token_seconds, Reply.elapsed(s.conn))
    headers = [{"content-type", "text/event-stream"}, {"cache-control", "no-cache"}]
    Wire.start_chunked(s.conn.socket, 200, headers)
    :ok = :inet.setopts(s.conn.socket, active: :once)
    s = %{s | head: true}
    if s.kind == :chat, do: send_chunk(s, %{delta: %{role: "assistant", content: ""}}, nil)
    s
  end

  defp send_delta({:reasoning, text}, s), do: chunk_with_logprobs(s, %{reasoning_content: text})
  defp send_delta({:content, text}, %{kind: :chat} = s), do: chunk_with_logprobs(s, %{content: text})
  defp send_delta({:content, text}, %{kind: :text} = s), do: chunk_with_logprobs(s, text)

  defp send_delta({:tool_call, call}, s) do
    delta = %{tool_calls: [Map.put(call, :index, s.tools)]}
    send_chunk(s, %{delta: delta}, nil)
    %{s | tools: s.tools + 1}
  end

  # Log-probabilities of the tokens taken since the last chunk go with the next one.
  defp chunk_with_logprobs(s, delta) do
    logprobs =
      case {s.logprobs, s.kind} do
        {[], _} -> nil
        {pairs, :chat} -> %{content: logprob_entries(s.conn, pairs)}
        {pairs, :text} -> text_logprobs(s.conn, Enum.map(pairs, &elem(&1, 0)), Enum.map(pairs, &elem(&1, 1)))
      end

    field = if s.kind == :chat, do: %{delta: delta}, else: %{text: delta}
    send_chunk(s, field, logprobs)
    %{s | logprobs: []}
  end

  defp send_chunk(s, fields, logprobs) do
    choice = Map.merge(%{index: 0, logprobs: logprobs, finish_reason: nil}, fields)
    choice = if s.kind == :text, do: Map.put_new(choice, :text, ""), else: choice
    event = envelope(s.conn, object(s), [choice])
    send_event(s, if(s.meta.include_usage, do: Map.put(event, :usage, nil), else: event))
  end

  defp object(%{kind: :chat}), do: "chat.completion.chunk"
  defp object(%{kind: :text}), do: "text_completion"

  defp send_event(s, map), do: Wire.send_chunk(s.conn.socket, ["data: ", Qwen3.JSON.encode!(map), "\n\n"])

  defp done(s) do
    Wire.send_chunk(s.conn.socket, "data: [DONE]\n\n")
    Wire.end_chunked(s.conn.socket)
  end

  defp gone?(s) do
    receive do
      {:tcp_closed, _} -> true
      {:tcp_error, _, _} -> true
      {:tcp, _, _} -> :inet.setopts(s.conn.socket, active: :once) != :ok
    after
      0 -> false
    end
  end

  ## Log-probabilities, in OpenAI's two shapes

  defp chat_logprobs(_conn, %{logprobs: nil}), do: nil

  defp chat_logprobs(conn, %{logprobs: entries, tokens: tokens}) when is_list(entries),
    do: %{content: logprob_entries(conn, Enum.zip(tokens, entries))}

  defp chat_logprobs(_conn, _result), do: nil

  defp logprob_entries(conn, pairs) do
    bytes = token_bytes(conn, Enum.flat_map(pairs, fn {id, lp} -> [id | Enum.map(lp.top, &elem(&1, 0))] end))

    for {id, lp} <- pairs do
      top = for {alt, alt_lp} <- lp.top, do: Map.put(token(bytes, alt), :logprob, alt_lp)
      token(bytes, id) |> Map.merge(%{logprob: lp.logprob, top_logprobs: top})
    end
  end

  defp text_logprobs(_conn, _tokens, nil), do: nil

  defp text_logprobs(conn, tokens, entries) do
    bytes = token_bytes(conn, tokens ++ Enum.flat_map(entries, fn lp -> Enum.map(lp.top, &elem(&1, 0)) end))
    texts = Enum.map(tokens, &token(bytes, &1).token)
    offsets = texts |> Enum.scan(0, &(byte_size(&1) + &2)) |> then(&[0 | Enum.drop(&1, -1)])

    %{
      tokens: texts,
      token_logprobs: Enum.map(entries, & &1.logprob),
      top_logprobs:
        for(lp <- entries, do: Map.new(lp.top, fn {alt, alt_lp} -> {token(bytes, alt).token, alt_lp} end)),
      text_offset: offsets
    }
  end

  defp token_bytes(%{model: %{tokenizer: nil}}, ids), do: Map.new(ids, &{&1, ""})

  defp token_bytes(%{model: %{tokenizer: tok}}, ids) do
    ids = Enum.uniq(ids)
    Map.new(Enum.zip(ids, Tokenizer.token_bytes(tok, ids)))
  end

  defp token(bytes, id) do
    raw = Map.fetch!(bytes, id)
    %{token: if(String.valid?(raw), do: raw, else: lossy(raw)), bytes: :binary.bin_to_list(raw)}
  end

  # A piece of a character shows as U+FFFD, as OpenAI shows it.
  defp lossy(raw),
    do: raw |> String.chunk(:valid) |> Enum.map_join(&if(String.valid?(&1), do: &1, else: "\uFFFD"))
end
