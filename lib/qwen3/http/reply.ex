defmodule Qwen3.HTTP.Reply do
  @moduledoc false
  # Whole JSON replies, and errors in OpenAI's shape:
  # `{"error": {"message", "type", "param", "code"}}` with the status that fits.

  alias Qwen3.Error
  alias Qwen3.HTTP.Wire

  @doc "Sends `map` as JSON; returns the status."
  def json(conn, status, map, headers \\ []) do
    body = Qwen3.JSON.encode!(map)

    Wire.send_response(
      conn.socket,
      status,
      [{"content-type", "application/json"} | headers],
      body,
      conn.keep_alive
    )

    status
  end

  @doc "Sends an error; returns the status."
  def error(conn, status, message, param, headers \\ []),
    do: json(conn, status, %{error: body(status, message, param)}, headers)

  @doc "Sends a `Qwen3.Error` with the status its kind calls for."
  def error(conn, %Error{} = e), do: error(conn, status(e), e.message, nil)

  def body(status, message, param),
    do: %{message: message, type: type(status), param: param, code: code(status)}

  @doc "The status for a generation's error."
  def status(%Error{kind: kind}) do
    case kind do
      :overloaded ->
        429

      kind
      when kind in [
             :cache_overflow,
             :empty_prompt,
             :invalid_argument,
             :invalid_grammar,
             :not_found,
             :tokenizer
           ] ->
        400

      :timeout ->
        504

      kind when kind in [:loading, :node_down, :serving_down, :worker_gone] ->
        503

      _ ->
        500
    end
  end

  defp type(401), do: "authentication_error"
  defp type(429), do: "rate_limit_error"
  defp type(status) when status >= 500, do: "server_error"
  defp type(_), do: "invalid_request_error"

  defp code(401), do: "invalid_api_key"
  defp code(404), do: "not_found"
  defp code(413), do: "request_too_large"
  defp code(429), do: "rate_limit_exceeded"
  defp code(_), do: nil

  @doc "Seconds since the request arrived."
  def elapsed(conn), do: (System.monotonic_time(:microsecond) - conn.started) / 1.0e6
end
