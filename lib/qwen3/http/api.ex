defmodule Qwen3.HTTP.API do
  @moduledoc false
  # Routes: GET /health, GET /metrics (both open), and behind the API key (when one is
  # set) GET /v1/models, GET /v1/models/{id}, POST /v1/chat/completions, POST
  # /v1/completions. Returns `:keep_alive` when the connection may serve another request
  # (handlers return the status sent, or `{:closed, status}` after a stream or a client
  # that left).

  alias Qwen3.Serving
  alias Qwen3.HTTP.{Generation, Metrics, Reply}

  @routes %{
    "/health" => "GET",
    "/metrics" => "GET",
    "/v1/models" => "GET",
    "/v1/chat/completions" => "POST",
    "/v1/completions" => "POST"
  }

  def handle(conn, request) do
    route = route(request.path)

    {status, keep_alive} =
      case dispatch(conn, request, route) do
        {:closed, status} -> {status, false}
        status -> {status, true}
      end

    Metrics.request(conn.metrics, route, status || "client_gone")
    Metrics.observe(conn.metrics, :request_duration_seconds, Reply.elapsed(conn))
    if keep_alive, do: :keep_alive, else: :close
  end

  defp route("/v1/models/" <> _), do: "/v1/models/{id}"
  defp route(path) when is_map_key(@routes, path), do: path
  defp route(_), do: "other"

  defp dispatch(conn, request, route) do
    allowed = if route == "/v1/models/{id}", do: "GET", else: @routes[route]

    cond do
      route == "other" ->
        Reply.error(conn, 404, "no route #{request.method} #{request.path}", nil)

      request.method != allowed ->
        Reply.error(conn, 405, "#{request.path} takes #{allowed}", nil, [{"allow", allowed}])

      route == "/health" ->
        health(conn)

      route == "/metrics" ->
        metrics(conn)

      not authorized?(conn, request) ->
        Reply.error(conn, 401, "a valid API key is required (Authorization: Bearer KEY)", nil)

      true ->
        api(conn, request, route)
    end
  end

  defp health(conn) do
    case Serving.stats(conn.serving) do
      nil -> Reply.json(conn, 503, %{status: "loading"})
      _ -> Reply.json(conn, 200, %{status: "ok"})
    end
  end

  defp metrics(conn) do
    body = IO.iodata_to_binary(Metrics.render(conn.metrics, Serving.stats(conn.serving)))

    Qwen3.HTTP.Wire.send_response(
      conn.socket,
      200,
      [{"content-type", "text/plain; version=0.0.4"}],
      body,
      conn.keep_alive
    )

    200
  end

  # The key is compared as a hash, in constant time.
  defp authorized?(%{api_key_hash: nil}, _request), do: true

  defp authorized?(conn, request) do
    case request.headers["authorization"] do
      "Bearer " <> key -> :crypto.hash_equals(:crypto.hash(:sha256, key), conn.api_key_hash)
      _ -> false
    end
  end

  defp api(conn, request, route) do
    with {:ok, conn} <- ready(conn),
         {:ok, body} <- body(conn, request, route) do
      case route do
        "/v1/models" -> Reply.json(conn, 200, %{object: "list", data: [model_card(conn)]})
        "/v1/models/{id}" -> model(conn, String.replace_prefix(request.path, "/v1/models/", ""))
        "/v1/chat/completions" -> with_model(conn, body, &Generation.chat/2)
        "/v1/completions" -> with_model(conn, body, &Generation.completion/2)
      end
    else
      {:status, status} -> status
    end
  end

  # The serving's model (for its tokenizer and name), or 503 while it loads.
  defp ready(conn) do
    with {:ok, model} <- Serving.model(conn.serving),
         %{max_len: max_len} <- Serving.stats(conn.serving) do
      {:ok,
       Map.merge(conn, %{model: model, model_id: conn.model_id || Path.basename(model.path), max_len: max_len})}
    else
      _ -> {:status, Reply.error(conn, 503, "the model is loading", nil)}
    end
  end

  defp body(_conn, %{method: "GET"}, _route), do: {:ok, nil}

  defp body(conn, request, _route) do
    case Qwen3.JSON.decode(request.body) do
      {:ok, %{} = map} -> {:ok, map}
      {:ok, _} -> {:status, Reply.error(conn, 400, "the body must be a JSON object", nil)}
      {:error, e} -> {:status, Reply.error(conn, 400, "the body is not valid JSON: #{e.message}", nil)}
    end
  end

  defp with_model(conn, %{"model" => model}, _handler) when is_binary(model) and model != conn.model_id,
    do:
      Reply.error(
        conn,
        404,
        "the model #{inspect(model)} does not exist (this server runs #{inspect(conn.model_id)})",
        "model"
      )

  defp with_model(conn, body, handler), do: handler.(conn, body)

  defp model(conn, id) do
    if id == conn.model_id,
      do: Reply.json(conn, 200, model_card(conn)),
      else: Reply.error(conn, 404, "the model #{inspect(id)} does not exist", "model")
  end

  defp model_card(conn), do: %{id: conn.model_id, object: "model", created: conn.loaded_at, owned_by: "qwen3"}
end
