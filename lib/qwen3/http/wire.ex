defmodule Qwen3.HTTP.Wire do
  @moduledoc false
  # HTTP/1.1 on a socket: requests read with the VM's own HTTP packet decoding
  # (`:erlang.decode_packet/3`) under deadlines and size limits, responses written whole or
  # chunked (server-sent events).

  defmodule Request do
    @moduledoc false
    defstruct [:method, :path, :query, :version, headers: %{}, body: ""]
  end

  @max_headers 100
  @max_line 16_384

  @doc """
  The next request, or `{:error, :closed}` when the client left between requests, or
  `{:error, {status, message}}` for one that cannot be served (the connection then closes).
  `buffer` holds what was read past the previous request; the result carries what was read
  past this one. `limits`: `:read_timeout` (ms for the head, and again for the body),
  `:max_body` (bytes). The socket stays in raw mode; the VM decodes the head
  (`:erlang.decode_packet/3`).
  """
  def read(socket, buffer, limits) do
    deadline = System.monotonic_time(:millisecond) + limits[:read_timeout]
    :ok = :inet.setopts(socket, packet: :raw, active: false)

    with {:ok, request, buffer} <- request_line(socket, buffer, deadline),
         {:ok, headers, buffer} <- headers(socket, buffer, deadline, %{}),
         request = %{request | headers: headers},
         {:ok, body, buffer} <- body(socket, buffer, request, limits) do
      {:ok, %{request | body: body}, buffer}
    end
  end

  defp request_line(socket, buffer, deadline) do
    case packet(socket, buffer, :http_bin, deadline) do
      {:ok, {:http_request, method, {:abs_path, target}, version}, rest} ->
        {path, query} =
          case String.split(target, "?", parts: 2) do
            [path, query] -> {path, query}
            [path] -> {path, ""}
          end

        {:ok, %Request{method: to_string(method), path: path, query: query, version: version}, rest}

      {:ok, {:http_request, _method, _other, _version}, _rest} ->
        {:error, {400, "the request target must be an absolute path"}}

      {:ok, _other, _rest} ->
        {:error, {400, "malformed request line"}}

      {:error, :timeout} when buffer == "" ->
        {:error, {408, "no request arrived in time"}}

      {:error, :timeout} ->
        {:error, {408, "the request did not arrive in time"}}

      {:error, _} = error ->
        error
    end
  end

  defp headers(_socket, _buffer, _deadline, acc) when map_size(acc) > @max_headers,
    do: {:error, {431, "more than #{@max_headers} header fields"}}

  defp headers(socket, buffer, deadline, acc) do
    case packet(socket, buffer, :httph_bin, deadline) do
      {:ok, {:http_header, _, name, _, value}, rest} ->
        headers(socket, rest, deadline, Map.put(acc, name |> to_string() |> String.downcase(), value))

      {:ok, :http_eoh, rest} ->
        {:ok, acc, rest}

      {:ok, _other, _rest} ->
        {:error, {400, "malformed header field"}}

      {:error, :timeout} ->
        {:error, {408, "the request head did not arrive in time"}}

      {:error, _} = error ->
        error
    end
  end

  # One line of the head, read until it is whole; a line longer than 16 KiB is refused.
  defp packet(socket, buffer, type, deadline) do
    case :erlang.decode_packet(type, buffer, []) do
      {:ok, {:http_error, _}, _rest} ->
        {:error, {400, "malformed request head"}}

      {:ok, packet, rest} ->
        {:ok, packet, rest}

      {:more, _} when byte_size(buffer) > @max_line ->
        {:error, {431, "a line of the request head is over #{@max_line} bytes"}}

      {:more, _} ->
        with {:ok, data} <- recv(socket, 0, deadline), do: packet(socket, buffer <> data, type, deadline)

      {:error, _} ->
        {:error, {400, "malformed request head"}}
    end
  end

  defp body(socket, buffer, %Request{headers: headers} = request, limits) do
    cond do
      Map.has_key?(headers, "transfer-encoding") ->
        {:error, {411, "send the body with a Content-Length, not Transfer-Encoding"}}

      not Map.has_key?(headers, "content-length") ->
        if request.method in ["POST", "PUT", "PATCH"],
          do: {:error, {411, "a Content-Length header is required"}},
          else: {:ok, "", buffer}

      true ->
        case content_length(headers["content-length"], limits[:max_body]) do
          {:ok, length} ->
            deadline = System.monotonic_time(:millisecond) + limits[:read_timeout]
            read_body(socket, buffer, length, deadline)

          {:error, too_large, n} ->
            drain(socket, n - byte_size(buffer), limits[:max_body], limits[:read_timeout])
            {:error, too_large}

          error ->
            error
        end
    end
  end

  defp content_length(text, max) do
    case Integer.parse(text) do
      {n, ""} when n >= 0 and n <= max -> {:ok, n}
      {n, ""} when n > max -> {:error, {413, "the body is over the #{max}-byte limit"}, n}
      _ -> {:error, {400, "Content-Length is not a byte count"}}
    end
  end

  defp read_body(_socket, buffer, length, _deadline) when byte_size(buffer) >= length,
    do: {:ok, binary_part(buffer, 0, length), binary_part(buffer, length, byte_size(buffer) - length)}

  defp read_body(socket, buffer, length, deadline) do
    case recv(socket, length - byte_size(buffer), deadline) do
      {:ok, data} -> read_body(socket, buffer <> data, length, deadline)
      {:error, :timeout} -> {:error, {408, "the request body did not arrive in time"}}
      {:error, _} = error -> error
    end
  end

  # A body over the limit is read and dropped when it is not much larger, so that the
  # client, still sending, reads the 413 instead of a reset connection.
  defp drain(socket, n, max, timeout) when n <= 4 * max do
    deadline = System.monotonic_time(:millisecond) + timeout

    if n > 0 and match?({:ok, _}, recv(socket, min(n, 65_536), deadline)),
      do: drain_more(socket, n - 65_536, deadline)
  end

  defp drain(_socket, _n, _max, _timeout), do: :ok

  defp drain_more(socket, n, deadline) do
    if n > 0 and match?({:ok, _}, recv(socket, 0, deadline)), do: drain_more(socket, n - 65_536, deadline)
  end

  defp recv(socket, length, deadline) do
    case deadline - System.monotonic_time(:millisecond) do
      left when left > 0 ->
        case :gen_tcp.recv(socket, length, left) do
          {:error, :timeout} -> {:error, :timeout}
          {:error, _} -> {:error, :closed}
          ok -> ok
        end

      _ ->
        {:error, :timeout}
    end
  end

  @reasons %{
    200 => "OK",
    400 => "Bad Request",
    401 => "Unauthorized",
    404 => "Not Found",
    405 => "Method Not Allowed",
    408 => "Request Timeout",
    411 => "Length Required",
    413 => "Content Too Large",
    429 => "Too Many Requests",
    431 => "Request Header Fields Too Large",
    500 => "Internal Server Error",
    503 => "Service Unavailable",
    504 => "Gateway Timeout"
  }

  @doc """
  Ends a connection after an error reply without losing it: the client may still be
  sending, and closing with unread data would reset the connection and discard the reply
  in the client's buffer. So writing stops first, and what arrives is read and dropped
  for a moment (at most 2 s).
  """
  def linger_close(socket) do
    :gen_tcp.shutdown(socket, :write)
    :inet.setopts(socket, active: false)
    deadline = System.monotonic_time(:millisecond) + 2_000
    drop_until_closed(socket, deadline)
    :gen_tcp.close(socket)
  end

  defp drop_until_closed(socket, deadline) do
    wait = deadline - System.monotonic_time(:millisecond)
    if wait > 0 and match?({:ok, _}, :gen_tcp.recv(socket, 0, wait)), do: drop_until_closed(socket, deadline)
  end

  @doc "Writes a whole response; `keep_alive?` says whether the connection stays open."
  def send_response(socket, status, headers, body, keep_alive?) do
    head = [
      {"content-length", Integer.to_string(IO.iodata_length(body))},
      {"connection", if(keep_alive?, do: "keep-alive", else: "close")} | headers
    ]

    :gen_tcp.send(socket, [status_line(status), Enum.map(head, &header/1), "\r\n", body])
  end

  @doc "Starts a chunked response (its connection closes when it ends)."
  def start_chunked(socket, status, headers) do
    head = [{"transfer-encoding", "chunked"}, {"connection", "close"} | headers]
    :gen_tcp.send(socket, [status_line(status), Enum.map(head, &header/1), "\r\n"])
  end

  @doc "One chunk of a chunked response."
  def send_chunk(socket, data) do
    case IO.iodata_length(data) do
      0 -> :ok
      n -> :gen_tcp.send(socket, [Integer.to_string(n, 16), "\r\n", data, "\r\n"])
    end
  end

  def end_chunked(socket), do: :gen_tcp.send(socket, "0\r\n\r\n")

  defp status_line(status),
    do: ["HTTP/1.1 ", Integer.to_string(status), " ", Map.get(@reasons, status, ""), "\r\n"]

  defp header({name, value}), do: [name, ": ", value, "\r\n"]
end
