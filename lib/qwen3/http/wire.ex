defmodule Qwen3.HTTP.Wire do
  @moduledoc false
  # HTTP/1.1 on a socket: requests read with the VM's own HTTP packet decoding
  # (`packet: :http_bin`) under deadlines and size limits, responses written whole or
  # chunked (server-sent events).

  defmodule Request do
    @moduledoc false
    defstruct [:method, :path, :query, :version, headers: %{}, body: ""]
  end

  @max_headers 100

  @doc """
  The next request, or `{:error, :closed}` when the client left between requests, or
  `{:error, {status, message}}` for one that cannot be served (the connection then closes).
  `limits`: `:read_timeout` (ms for the head, and again for the body), `:max_body` (bytes).
  """
  def read(socket, limits) do
    deadline = System.monotonic_time(:millisecond) + limits[:read_timeout]
    :ok = :inet.setopts(socket, packet: :http_bin, active: false)

    with {:ok, request} <- request_line(socket, deadline),
         {:ok, headers} <- headers(socket, deadline, %{}),
         request = %{request | headers: headers},
         {:ok, body} <- body(socket, request, limits) do
      {:ok, %{request | body: body}}
    end
  end

  defp request_line(socket, deadline) do
    case recv(socket, deadline) do
      {:ok, {:http_request, method, {:abs_path, target}, version}} ->
        {path, query} =
          case String.split(target, "?", parts: 2) do
            [path, query] -> {path, query}
            [path] -> {path, ""}
          end

        {:ok, %Request{method: to_string(method), path: path, query: query, version: version}}

      {:ok, {:http_request, _method, _other, _version}} ->
        {:error, {400, "the request target must be an absolute path"}}

      {:ok, {:http_error, _}} ->
        {:error, {400, "malformed request line"}}

      {:error, :timeout} ->
        {:error, {408, "no request arrived in time"}}

      {:error, _} ->
        {:error, :closed}
    end
  end

  defp headers(_socket, _deadline, acc) when map_size(acc) > @max_headers,
    do: {:error, {431, "more than #{@max_headers} header fields"}}

  defp headers(socket, deadline, acc) do
    case recv(socket, deadline) do
      {:ok, {:http_header, _, name, _, value}} ->
        headers(socket, deadline, Map.put(acc, name |> to_string() |> String.downcase(), value))

      {:ok, :http_eoh} ->
        {:ok, acc}

      {:ok, {:http_error, _}} ->
        {:error, {400, "malformed header field"}}

      {:error, :timeout} ->
        {:error, {408, "the request head did not arrive in time"}}

      {:error, :emsgsize} ->
        {:error, {431, "a header field is too long"}}

      {:error, _} ->
        {:error, :closed}
    end
  end

  defp body(socket, %Request{headers: headers} = request, limits) do
    cond do
      Map.has_key?(headers, "transfer-encoding") ->
        {:error, {411, "send the body with a Content-Length, not Transfer-Encoding"}}

      not Map.has_key?(headers, "content-length") ->
        if request.method in ["POST", "PUT", "PATCH"],
          do: {:error, {411, "a Content-Length header is required"}},
          else: {:ok, ""}

      true ->
        case content_length(headers["content-length"], limits[:max_body]) do
          {:ok, length} ->
            read_body(socket, length, limits[:read_timeout])

          {:error, too_large, n} ->
            drain(socket, n, limits[:max_body], limits[:read_timeout])
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

  # A body over the limit is read and dropped when it is not much larger, so that the
  # client, still sending, reads the 413 instead of a reset connection.
  defp drain(socket, n, max, timeout) when n <= 4 * max do
    :ok = :inet.setopts(socket, packet: :raw)
    deadline = System.monotonic_time(:millisecond) + timeout

    Enum.reduce_while(Stream.iterate(n, &(&1 - 65_536)), :ok, fn left, :ok ->
      wait = deadline - System.monotonic_time(:millisecond)

      cond do
        left <= 0 ->
          {:halt, :ok}

        wait <= 0 ->
          {:halt, :ok}

        true ->
          if match?({:ok, _}, :gen_tcp.recv(socket, min(left, 65_536), wait)),
            do: {:cont, :ok},
            else: {:halt, :ok}
      end
    end)
  end

  defp drain(_socket, _n, _max, _timeout), do: :ok

  defp read_body(_socket, 0, _timeout), do: {:ok, ""}

  defp read_body(socket, length, timeout) do
    :ok = :inet.setopts(socket, packet: :raw)

    case :gen_tcp.recv(socket, length, timeout) do
      {:ok, body} -> {:ok, body}
      {:error, :timeout} -> {:error, {408, "the request body did not arrive in time"}}
      {:error, _} -> {:error, :closed}
    end
  end

  defp recv(socket, deadline) do
    case deadline - System.monotonic_time(:millisecond) do
      left when left > 0 -> :gen_tcp.recv(socket, 0, left)
      _ -> {:error, :timeout}
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
