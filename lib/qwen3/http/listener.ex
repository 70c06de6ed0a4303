defmodule Qwen3.HTTP.Listener do
  @moduledoc false
  # Owns the listening socket and the acceptors; each accepted connection runs in its own
  # task under the server's task supervisor (`Qwen3.HTTP.Connection`).
  use GenServer

  @acceptors 4

  def start_link(config), do: GenServer.start_link(__MODULE__, config)

  def port(listener), do: GenServer.call(listener, :port)

  @impl true
  def init(config) do
    {:ok, ip} = :inet.parse_address(String.to_charlist(config.host))

    # nodelay: each streamed chunk leaves at once (Nagle would hold small writes ~40 ms).
    opts = [:binary, ip: ip, packet: :raw, active: false, reuseaddr: true, backlog: 1024, nodelay: true]

    case :gen_tcp.listen(config.port, opts) do
      {:ok, socket} ->
        for _ <- 1..@acceptors, do: spawn_link(fn -> accept(socket, config) end)
        {:ok, %{socket: socket}}

      {:error, reason} ->
        {:stop, {:listen, config.host, config.port, reason}}
    end
  end

  @impl true
  def handle_call(:port, _from, state), do: {:reply, :inet.port(state.socket), state}

  defp accept(socket, config) do
    case :gen_tcp.accept(socket) do
      {:ok, client} ->
        start_connection(client, config)
        accept(socket, config)

      {:error, :closed} ->
        :ok

      {:error, _transient} ->
        accept(socket, config)
    end
  end

  # The task owns the socket once it is handed over; past the connection limit, the client
  # is told to come back later.
  defp start_connection(client, config) do
    case Task.Supervisor.start_child(config.connections, fn -> Qwen3.HTTP.Connection.serve(client, config) end) do
      {:ok, pid} ->
        :ok = :gen_tcp.controlling_process(client, pid)
        send(pid, :socket_ready)

      {:error, _max_children} ->
        Qwen3.HTTP.Wire.send_response(client, 503, [], "", false)
        :gen_tcp.close(client)
    end
  end
end
