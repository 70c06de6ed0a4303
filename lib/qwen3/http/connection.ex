defmodule Qwen3.HTTP.Connection do
  @moduledoc false
  # One client connection: requests one after another (keep-alive), each routed by
  # `Qwen3.HTTP.API`; a request that cannot be read gets its status and the connection ends.

  alias Qwen3.HTTP.{API, Reply, Wire}

  def serve(socket, config) do
    receive do
      :socket_ready -> loop(socket, "", config)
    after
      5_000 -> :gen_tcp.close(socket)
    end
  end

  defp loop(socket, buffer, config) do
    case Wire.read(socket, buffer, config) do
      {:ok, request, rest} ->
        keep_alive = keep_alive?(request)
        conn = conn(socket, config, keep_alive)

        case API.handle(conn, request) do
          :keep_alive when keep_alive -> loop(socket, rest, config)
          _ -> :gen_tcp.close(socket)
        end

      {:error, :closed} ->
        :gen_tcp.close(socket)

      {:error, {status, message}} ->
        Reply.error(conn(socket, config, false), status, message, nil)
        Wire.linger_close(socket)
    end
  end

  defp conn(socket, config, keep_alive) do
    Map.merge(config, %{
      socket: socket,
      keep_alive: keep_alive,
      started: System.monotonic_time(:microsecond),
      id: Base.encode32(:crypto.strong_rand_bytes(15), case: :lower, padding: false),
      created: System.os_time(:second)
    })
  end

  defp keep_alive?(%{version: version, headers: headers}) do
    connection = headers |> Map.get("connection", "") |> String.downcase()
    if version == {1, 0}, do: connection == "keep-alive", else: connection != "close"
  end
end
