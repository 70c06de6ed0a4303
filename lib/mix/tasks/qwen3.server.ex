defmodule Mix.Tasks.Qwen3.Server do
  @shortdoc "Serves a Qwen3 checkpoint over an OpenAI-compatible HTTP API"
  @moduledoc """
  Starts a `Qwen3.Serving` of the checkpoint and a `Qwen3.HTTP` server in front of it, and
  runs until stopped.

      mix qwen3.server --model Qwen/Qwen3-0.6B --port 8080
      mix qwen3.server --model DIR --host 0.0.0.0 --batch-size 8 --api-key KEY

  Options:
    * `--model DIR|ORG/NAME` (or `QWEN3_MODEL`), `--device cpu|gpu`, `--dtype f32|bf16|f16`
    * `--port N` (8080; 0 picks a free one), `--host ADDRESS` (127.0.0.1)
    * `--batch-size N` (8), `--max-len N` (tokens per request slot, 4096), `--max-queue N`
      (requests waiting beyond the running ones, 64; past it: 429)
    * `--prefix-cache-mb N` (0): MiB of KV cache kept from finished requests, so that a
      request resending a conversation's prefix (an agent's next turn) prefills only what
      is new (`Qwen3.PrefixCache`; hits and evictions under `/metrics`)
    * `--isolate`: the model runs on a peer node of its own (this VM starts distributed, as
      `qwen3_server`, if it is not): a crash of that OS process (an MLX abort) fails its
      running requests, and a new node loads the model again while the HTTP server goes on
    * `--api-key KEY` (or `QWEN3_API_KEY`): required as `Authorization: Bearer KEY`
    * `--model-id NAME`: the model's name in the API (default: the checkpoint's folder)
    * `--port-file PATH`: writes the port once the server listens (for scripts and tests)
  """
  use Mix.Task
  alias Qwen3.CLI

  @switches [
    port: :integer,
    host: :string,
    batch_size: :integer,
    max_len: :integer,
    max_queue: :integer,
    prefix_cache_mb: :integer,
    isolate: :boolean,
    api_key: :string,
    model_id: :string,
    port_file: :string
  ]

  @impl true
  def run(argv) do
    opts = CLI.parse!(argv, @switches)
    if opts[:isolate] && !Node.alive?(), do: start_distribution!()
    model = CLI.load_model!(opts)
    serving = Qwen3.Server.LLM

    children = [
      {Qwen3.Serving,
       model: model,
       name: serving,
       batch_size: opts[:batch_size] || 8,
       max_len: opts[:max_len] || 4096,
       max_queue: opts[:max_queue] || 64,
       prefix_cache_bytes: (opts[:prefix_cache_mb] || 0) * 1_048_576,
       isolate: opts[:isolate] || false},
      {Qwen3.HTTP,
       serving: serving,
       port: opts[:port] || 8080,
       host: opts[:host] || "127.0.0.1",
       api_key: opts[:api_key] || System.get_env("QWEN3_API_KEY"),
       model_id: opts[:model_id],
       name: Qwen3.Server.HTTP}
    ]

    {:ok, _} = Supervisor.start_link(children, strategy: :rest_for_one)
    port = Qwen3.HTTP.port(Qwen3.Server.HTTP)
    if opts[:port_file], do: File.write!(opts[:port_file], Integer.to_string(port))

    Mix.shell().info(
      "Serving #{Path.basename(model.path)} on http://#{opts[:host] || "127.0.0.1"}:#{port}/v1"
    )

    Process.sleep(:infinity)
  end

  # epmd must answer before distribution starts; `epmd -daemon` returns before it listens.
  defp start_distribution! do
    {_, 0} =
      System.cmd(System.find_executable("epmd") || Mix.raise("--isolate needs epmd (it ships with Erlang)"), [
        "-daemon"
      ])

    Enum.find(1..250, fn _ -> match?({:ok, _}, :erl_epmd.names()) or (Process.sleep(20) && false) end) ||
      Mix.raise("epmd did not answer within 5 s")

    case Node.start(:"qwen3_server_#{System.unique_integer([:positive])}", :shortnames) do
      {:ok, _} -> :ok
      {:error, reason} -> Mix.raise("--isolate: could not start distribution: #{inspect(reason)}")
    end
  end
end
