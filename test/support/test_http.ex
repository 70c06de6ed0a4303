defmodule Qwen3.TestHTTP do
  @moduledoc false
  # A small HTTP/1.1 client over :gen_tcp for the server's tests: raw bytes in, and the
  # response (status, headers, body read to its length or to the end of a chunked stream).

  def connect(port), do: :gen_tcp.connect(~c"127.0.0.1", port, [:binary, active: false, packet: :raw], 5_000)

  @doc "Sends `raw` bytes on a fresh connection and reads the response."
  def raw(port, raw, timeout \\ 30_000) do
    {:ok, socket} = connect(port)
    :ok = :gen_tcp.send(socket, raw)
    response = read_response(socket, timeout)
    :gen_tcp.close(socket)
    response
  end

  def request(port, method, path, body \\ nil, headers \\ []) do
    raw(port, encode(method, path, body, headers))
  end

  def encode(method, path, body, headers) do
    body = if is_map(body), do: Qwen3.JSON.encode!(body), else: body || ""

    lines =
      for {k, v} <- [{"host", "localhost"}, {"content-length", byte_size(body)} | headers],
          do: "#{k}: #{v}\r\n"

    "#{method} #{path} HTTP/1.1\r\n#{lines}\r\n#{body}"
  end

  @doc "`{status, headers, body}`; a chunked body is joined, SSE left as text."
  def read_response(socket, timeout) do
    with {:ok, head, rest} <- read_head(socket, "", timeout) do
      [status_line | lines] = String.split(head, "\r\n")
      [_, status | _] = String.split(status_line, " ")

      headers =
        Map.new(lines, fn l ->
          l |> String.split(": ", parts: 2) |> then(fn [k, v] -> {String.downcase(k), v} end)
        end)

      body =
        cond do
          headers["transfer-encoding"] == "chunked" -> read_chunked(socket, rest, timeout, [])
          len = headers["content-length"] -> read_exactly(socket, rest, String.to_integer(len), timeout)
          true -> rest
        end

      {String.to_integer(status), headers, body}
    end
  end

  defp read_head(socket, acc, timeout) do
    case String.split(acc, "\r\n\r\n", parts: 2) do
      [head, rest] ->
        {:ok, head, rest}

      [_] ->
        case :gen_tcp.recv(socket, 0, timeout) do
          {:ok, data} -> read_head(socket, acc <> data, timeout)
          {:error, e} -> {:error, e}
        end
    end
  end

  defp read_exactly(_socket, acc, n, _timeout) when byte_size(acc) >= n, do: binary_part(acc, 0, n)

  defp read_exactly(socket, acc, n, timeout) do
    case :gen_tcp.recv(socket, 0, timeout) do
      {:ok, data} -> read_exactly(socket, acc <> data, n, timeout)
      {:error, _} -> acc
    end
  end

  defp read_chunked(socket, buffer, timeout, acc) do
    case String.split(buffer, "\r\n", parts: 2) do
      [size_hex, rest] ->
        case Integer.parse(size_hex, 16) do
          {0, _} ->
            IO.iodata_to_binary(Enum.reverse(acc))

          {size, _} when byte_size(rest) >= size + 2 ->
            <<chunk::binary-size(size), "\r\n", more::binary>> = rest
            read_chunked(socket, more, timeout, [chunk | acc])

          _ ->
            more_data(socket, buffer, timeout, acc)
        end

      [_] ->
        more_data(socket, buffer, timeout, acc)
    end
  end

  defp more_data(socket, buffer, timeout, acc) do
    case :gen_tcp.recv(socket, 0, timeout) do
      {:ok, data} -> read_chunked(socket, buffer <> data, timeout, acc)
      {:error, _} -> IO.iodata_to_binary(Enum.reverse(acc))
    end
  end

  @doc "The JSON objects of a server-sent-event body (`data: [DONE]` left out)."
  def events(body) do
    for "data: " <> data <- String.split(body, "\n\n", trim: true),
        data != "[DONE]",
        do: Qwen3.JSON.decode!(data)
  end
end
