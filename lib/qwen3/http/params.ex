defmodule Qwen3.HTTP.Params do
  @moduledoc false
  # OpenAI request bodies turned into `Qwen3.Serving` options and prompts. A field that is
  # unknown, of the wrong type or out of range is `{:error, param, message}` (a 400 naming
  # it). Fields that change nothing here (`user`, `metadata`…) are accepted and ignored.

  @sampling ~w(temperature top_p top_k min_p presence_penalty frequency_penalty
               repetition_penalty seed stop max_tokens stream stream_options n model user)
  @chat @sampling ++
          ~w(messages max_completion_tokens logprobs top_logprobs tools tool_choice
             parallel_tool_calls chat_template_kwargs response_format metadata store
             thinking_budget)
  @completion @sampling ++ ~w(prompt logprobs echo suffix best_of)

  @doc "Chat completion: `{:ok, messages, opts, meta}` (`meta`: stream, usage, logprobs?)."
  def chat(body) do
    with :ok <- known(body, @chat),
         {:ok, messages} <- messages(body["messages"]),
         {:ok, opts} <- sampling(body),
         {:ok, opts} <- chat_options(body, opts),
         {:ok, logprobs} <- chat_logprobs(body),
         {:ok, stream} <- stream(body) do
      {:ok, messages, opts ++ logprobs, stream}
    end
  end

  @doc "Text completion: `{:ok, prompt, opts, meta}` (prompt: text or token ids)."
  def completion(body) do
    with :ok <- known(body, @completion),
         {:ok, prompt} <- prompt(body["prompt"]),
         {:ok, opts} <- sampling(body),
         :ok <- unsupported(body, "echo", true, "echo is not supported"),
         :ok <- unsupported(body, "suffix", nil, "suffix is not supported"),
         :ok <- check(body, "best_of", &(&1 in [nil, 1]), "best_of must be 1"),
         {:ok, logprobs} <- completion_logprobs(body),
         {:ok, stream} <- stream(body) do
      # OpenAI's default length for completions.
      {:ok, prompt, Keyword.put_new(opts ++ logprobs, :max_new_tokens, 16), stream}
    end
  end

  defp known(body, keys) when is_map(body) do
    case Enum.find(Map.keys(body), &(&1 not in keys)) do
      nil -> :ok
      key -> {:error, key, "unknown parameter #{inspect(key)}"}
    end
  end

  defp known(_body, _keys), do: {:error, nil, "the request body must be a JSON object"}

  # Unset sampling fields keep the checkpoint's generation_config.json; temperature 0 is
  # greedy, as OpenAI documents it.
  defp sampling(body) do
    with :ok <- check(body, "model", &is_binary/1, "model must be a string"),
         :ok <- check(body, "n", &(&1 == 1), "n must be 1 (one choice per request)"),
         {:ok, opts} <- number(body, "temperature", :temperature, 0, 2),
         {:ok, opts} <- number(body, "top_p", :top_p, 0, 1, opts),
         {:ok, opts} <- number(body, "min_p", :min_p, 0, 1, opts),
         {:ok, opts} <- number(body, "presence_penalty", :presence_penalty, -2, 2, opts),
         {:ok, opts} <- number(body, "frequency_penalty", :frequency_penalty, -2, 2, opts),
         {:ok, opts} <- number(body, "repetition_penalty", :repetition_penalty, 0, 10, opts),
         {:ok, opts} <- top_k(body, opts),
         {:ok, opts} <- integer(body, "seed", :seed, 0, 0xFFFFFFFFFFFFFFFF, opts),
         {:ok, opts} <- max_tokens(body, opts),
         {:ok, opts} <- stop(body, opts) do
      sampler = if opts[:temperature] == 0, do: :greedy, else: :sample
      {:ok, [sampler: sampler] ++ Keyword.delete(opts, :temperature) ++ temperature(opts)}
    end
  end

  defp temperature(opts) do
    case opts[:temperature] do
      nil -> []
      t when t == 0 -> []
      t -> [temperature: t]
    end
  end

  defp top_k(body, opts) do
    case body["top_k"] do
      nil -> {:ok, opts}
      k when k in [0, -1] -> {:ok, opts ++ [top_k: nil]}
      k when is_integer(k) and k > 0 -> {:ok, opts ++ [top_k: k]}
      _ -> {:error, "top_k", "top_k must be a positive integer (or -1 for off)"}
    end
  end

  defp max_tokens(body, opts) do
    case body["max_completion_tokens"] || body["max_tokens"] do
      nil ->
        {:ok, opts}

      n when is_integer(n) and n >= 1 and n <= 1_000_000 ->
        {:ok, opts ++ [max_new_tokens: n]}

      _ ->
        {:error, if(body["max_completion_tokens"], do: "max_completion_tokens", else: "max_tokens"),
         "must be a positive integer"}
    end
  end

  defp stop(body, opts) do
    case body["stop"] do
      nil ->
        {:ok, opts}

      s when is_binary(s) and s != "" ->
        {:ok, opts ++ [stop: [s]]}

      [_ | _] = l when length(l) <= 16 ->
        if Enum.all?(l, &(is_binary(&1) and &1 != "")), do: {:ok, opts ++ [stop: l]}, else: bad_stop()

      _ ->
        bad_stop()
    end
  end

  defp bad_stop, do: {:error, "stop", "stop must be a non-empty string or a list of up to 16 of them"}

  defp stream(body) do
    with :ok <- check(body, "stream", &is_boolean/1, "stream must be true or false"),
         :ok <- check(body, "stream_options", &is_map/1, "stream_options must be an object") do
      usage = get_in(body, ["stream_options", "include_usage"]) == true
      {:ok, %{stream: body["stream"] == true, include_usage: usage}}
    end
  end

  defp chat_logprobs(body) do
    with :ok <- check(body, "logprobs", &is_boolean/1, "logprobs must be true or false"),
         {:ok, top} <- integer(body, "top_logprobs", :top_logprobs, 0, 20) do
      cond do
        body["logprobs"] == true -> {:ok, [logprobs: true] ++ top}
        top != [] -> {:error, "top_logprobs", "top_logprobs needs logprobs: true"}
        true -> {:ok, []}
      end
    end
  end

  # Completions take `logprobs` as the number of alternatives (0 to 5).
  defp completion_logprobs(body) do
    case body["logprobs"] do
      nil -> {:ok, []}
      n when is_integer(n) and n >= 0 and n <= 5 -> {:ok, [logprobs: true, top_logprobs: n]}
      _ -> {:error, "logprobs", "logprobs must be an integer from 0 to 5"}
    end
  end

  defp chat_options(body, opts) do
    kwargs = body["chat_template_kwargs"] || %{}

    with :ok <- check(body, "tools", &is_list/1, "tools must be a list"),
         :ok <- check(body, "chat_template_kwargs", &is_map/1, "chat_template_kwargs must be an object"),
         :ok <- known_kwargs(kwargs),
         {:ok, format} <- response_format(body["response_format"]),
         {:ok, budget} <- integer(body, "thinking_budget", :thinking_budget, 0, 1_000_000),
         {:ok, tools} <- tool_choice(body["tool_choice"], body["tools"]) do
      thinking =
        if is_boolean(kwargs["enable_thinking"]), do: [enable_thinking: kwargs["enable_thinking"]], else: []

      {:ok, opts ++ thinking ++ budget ++ format ++ if(tools, do: [tools: tools], else: [])}
    end
  end

  defp known_kwargs(kwargs) do
    case Map.keys(kwargs) -- ["enable_thinking"] do
      [] ->
        :ok

      [key | _] ->
        {:error, "chat_template_kwargs",
         "chat_template_kwargs.#{key} is not supported (only enable_thinking)"}
    end
  end

  # Structured output through `Qwen3.Constraint`: any JSON object, or a schema.
  defp response_format(nil), do: {:ok, []}
  defp response_format(%{"type" => "text"}), do: {:ok, []}
  defp response_format(%{"type" => "json_object"}), do: {:ok, [json_schema: %{"type" => "object"}]}

  defp response_format(%{"type" => "json_schema", "json_schema" => %{"schema" => schema}})
       when is_map(schema) or is_boolean(schema),
       do: {:ok, [json_schema: schema]}

  defp response_format(_),
    do:
      {:error, "response_format",
       "response_format must be {\"type\": \"text\"}, {\"type\": \"json_object\"} or " <>
         "{\"type\": \"json_schema\", \"json_schema\": {\"name\": ..., \"schema\": {...}}}"}

  defp tool_choice(choice, tools) when choice in [nil, "auto"], do: {:ok, tools}
  defp tool_choice("none", _tools), do: {:ok, nil}

  defp tool_choice(_, _tools),
    do:
      {:error, "tool_choice",
       "tool_choice must be \"auto\" or \"none\" (forcing a call needs constrained decoding)"}

  defp messages([_ | _] = messages) do
    messages
    |> Enum.with_index()
    |> Enum.reduce_while({:ok, []}, fn {m, i}, {:ok, acc} ->
      case message(m) do
        {:ok, m} -> {:cont, {:ok, [m | acc]}}
        {:error, why} -> {:halt, {:error, "messages[#{i}]", why}}
      end
    end)
    |> then(fn
      {:ok, acc} -> {:ok, Enum.reverse(acc)}
      error -> error
    end)
  end

  defp messages(_), do: {:error, "messages", "messages must be a non-empty list"}

  @roles %{
    "system" => "system",
    "developer" => "system",
    "user" => "user",
    "assistant" => "assistant",
    "tool" => "tool"
  }

  defp message(%{"role" => role} = m) when is_map_key(@roles, role) do
    with {:ok, content} <- content(m["content"], role) do
      base = %{"role" => @roles[role], "content" => content}
      extra = Map.take(m, ["tool_calls", "tool_call_id", "reasoning_content", "name"])
      {:ok, Map.merge(base, extra)}
    end
  end

  defp message(_), do: {:error, "each message needs a role: system, developer, user, assistant or tool"}

  defp content(text, _role) when is_binary(text), do: {:ok, text}
  defp content(nil, "assistant"), do: {:ok, ""}

  defp content(parts, _role) when is_list(parts) do
    if Enum.all?(parts, &match?(%{"type" => "text", "text" => t} when is_binary(t), &1)),
      do: {:ok, Enum.map_join(parts, "", & &1["text"])},
      else: {:error, "only text content parts are supported"}
  end

  defp content(_, _role), do: {:error, "content must be a string or a list of text parts"}

  defp prompt(text) when is_binary(text) and text != "", do: {:ok, text}
  defp prompt([text]) when is_binary(text) and text != "", do: {:ok, text}

  defp prompt([id | _] = ids) when is_integer(id) do
    if Enum.all?(ids, &(is_integer(&1) and &1 >= 0)), do: {:ok, ids}, else: bad_prompt()
  end

  defp prompt([[id | _] = ids]) when is_integer(id), do: prompt(ids)
  defp prompt(_), do: bad_prompt()

  defp bad_prompt,
    do:
      {:error, "prompt", "prompt must be a non-empty string or a list of token ids (one prompt per request)"}

  defp check(body, key, valid?, message) do
    case Map.fetch(body, key) do
      {:ok, nil} -> :ok
      {:ok, value} -> if valid?.(value), do: :ok, else: {:error, key, message}
      :error -> :ok
    end
  end

  defp unsupported(body, key, bad, message), do: check(body, key, &(&1 != bad), message)

  defp number(body, key, opt, lo, hi, opts \\ []) do
    case body[key] do
      nil -> {:ok, opts}
      x when is_number(x) and x >= lo and x <= hi -> {:ok, opts ++ [{opt, x}]}
      _ -> {:error, key, "#{key} must be a number from #{lo} to #{hi}"}
    end
  end

  defp integer(body, key, opt, lo, hi, opts \\ []) do
    case body[key] do
      nil -> {:ok, opts}
      x when is_integer(x) and x >= lo and x <= hi -> {:ok, opts ++ [{opt, x}]}
      _ -> {:error, key, "#{key} must be an integer from #{lo} to #{hi}"}
    end
  end
end
