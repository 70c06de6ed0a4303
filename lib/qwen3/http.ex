defmodule Qwen3.HTTP do
  @options [
    serving: [
      default: nil,
      check: :serving,
      doc: "the `Qwen3.Serving` to send requests to (its name, or pid), on this node"
    ],
    port: [default: 8080, check: {:range, 0, 65_535}, doc: "the TCP port; 0 picks a free one (see `port/1`)"],
    host: [
      default: "127.0.0.1",
      check: :ip,
      doc: "the address to listen on; `\"0.0.0.0\"` for every interface"
    ],
    api_key: [
      default: nil,
      check: :string_or_nil,
      doc: "when set, `/v1/*` requests need `Authorization: Bearer KEY` (compared in constant time)"
    ],
    model_id: [
      default: nil,
      check: :string_or_nil,
      doc: "the model's name in the API (default: the checkpoint's folder name)"
    ],
    max_body: [
      default: 4_194_304,
      check: :pos_integer,
      doc: "the largest request body, in bytes (past it: 413)"
    ],
    read_timeout: [
      default: 15_000,
      check: :pos_integer,
      doc: "ms a client has to send a request's head, and again its body (past it: 408)"
    ],
    max_connections: [default: 1024, check: :pos_integer, doc: "open connections at most (past it: 503)"],
    name: [default: nil, check: :atom, doc: "registers the server's supervisor"]
  ]

  @moduledoc """
  An OpenAI-compatible HTTP server in front of a `Qwen3.Serving`, built on OTP alone
  (`:gen_tcp` with the VM's HTTP packet decoding; JSON through the project's serde_json).

      children = [
        {Qwen3.Serving, model: "Qwen/Qwen3-0.6B", name: MyApp.LLM},
        {Qwen3.HTTP, serving: MyApp.LLM, port: 8080}
      ]

  `mix qwen3.server --model DIR` runs both from a terminal.

  ## Endpoints
    * `POST /v1/chat/completions` — OpenAI's chat API: `messages` (system, developer, user,
      assistant with `tool_calls`, tool), `max_tokens` / `max_completion_tokens`,
      `temperature` (0 is greedy), `top_p`, `top_k`, `min_p`, `presence_penalty`,
      `frequency_penalty`, `repetition_penalty`, `seed`, `stop`, `stream` (server-sent events)
      with `stream_options.include_usage`, `logprobs` + `top_logprobs`, `tools` +
      `tool_choice` (`auto`, `none`), `response_format` (`json_object`, `json_schema`:
      constrained decoding, `Qwen3.Constraint`), `chat_template_kwargs.enable_thinking`,
      `thinking_budget` (this server's own field: at most N tokens of `<think>`). The `<think>`
      block comes back as `reasoning_content`, Qwen3's `<tool_call>`s as `tool_calls`
      (`finish_reason: "tool_calls"`). Sampling settings a request leaves unset take the
      checkpoint's `generation_config.json`.
    * `POST /v1/completions` — a text or token-id `prompt`, with the same sampling fields,
      `logprobs` (0 to 5) and `stream`.
    * `GET /v1/models`, `GET /v1/models/{id}`, `GET /health` (503 while the model loads),
      `GET /metrics` (Prometheus text: the serving's counters, queue, tokens per second,
      request latency and time-to-first-token histograms).

  Errors have OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`): 400 for
  malformed JSON, wrong types and unknown fields, 401, 404 (route or model), 405, 408
  (a client too slow to send its request), 411, 413, 429 (the serving is full), 503.
  A client that disconnects mid-stream cancels its request.

  ## Options

  #{Qwen3.Options.docs(@options)}
  """
  use Supervisor

  alias Qwen3.HTTP.{Listener, Metrics}

  @spec start_link(keyword) :: Supervisor.on_start()
  def start_link(opts) do
    opts = Qwen3.Options.validate!(opts, @options)
    Supervisor.start_link(__MODULE__, opts, if(opts[:name], do: [name: opts[:name]], else: []))
  end

  @doc "The port a server listens on (the one picked, with `port: 0`)."
  @spec port(Supervisor.supervisor()) :: :inet.port_number()
  def port(server) do
    {_, listener, _, _} = server |> Supervisor.which_children() |> List.keyfind(Listener, 0)
    {:ok, port} = Listener.port(listener)
    port
  end

  @impl true
  def init(opts) do
    config = %{
      serving: opts[:serving],
      host: opts[:host],
      port: opts[:port],
      api_key_hash: opts[:api_key] && :crypto.hash(:sha256, opts[:api_key]),
      model_id: opts[:model_id],
      max_body: opts[:max_body],
      read_timeout: opts[:read_timeout],
      connections: {:via, Registry, {Qwen3.Registry, {__MODULE__, make_ref()}}},
      metrics: Metrics.new(),
      loaded_at: System.os_time(:second)
    }

    children = [
      {Task.Supervisor, name: config.connections, max_children: opts[:max_connections]},
      %{id: Listener, start: {Listener, :start_link, [config]}}
    ]

    Supervisor.init(children, strategy: :rest_for_one)
  end
end
