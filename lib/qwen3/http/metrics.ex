defmodule Qwen3.HTTP.Metrics do
  @moduledoc false
  # What /metrics reports, in Prometheus' text format: the serving's counters (read from
  # its board) and the HTTP server's own: requests by route and status, and histograms of
  # request latency and time to first token. Kept in a public ETS table per server.

  @buckets [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]

  def new, do: :ets.new(__MODULE__, [:public, :set, write_concurrency: true])

  @doc "Counts a finished request."
  def request(table, route, status) do
    :ets.update_counter(table, {:requests, route, status}, 1, {{:requests, route, status}, 0})
  end

  @doc "Adds one observation (seconds) to histogram `name`."
  def observe(table, name, seconds) do
    bucket = Enum.find_index(@buckets, &(seconds <= &1)) || length(@buckets)
    :ets.update_counter(table, {name, :bucket, bucket}, 1, {{name, :bucket, bucket}, 0})
    :ets.update_counter(table, {name, :count}, 1, {{name, :count}, 0})
    :ets.update_counter(table, {name, :sum_us}, round(seconds * 1.0e6), {{name, :sum_us}, 0})
  end

  @histograms [
    request_duration_seconds: "Time from a request's arrival to its last byte sent.",
    time_to_first_token_seconds: "Time from a request's arrival to its first generated token."
  ]

  @doc "The exposition text."
  def render(table, stats) do
    [
      serving(stats),
      requests(table),
      Enum.map(@histograms, fn {name, help} -> histogram(table, name, help) end)
    ]
  end

  @gauges [
    queue_length: "Requests waiting for a slot.",
    active: "Requests holding a slot (prefilling or decoding).",
    occupancy: "Active requests per slot.",
    tokens_per_second: "Tokens decoded per second over the last 5 s."
  ]
  @counters [
    tokens_generated: "Tokens generated.",
    decode_steps: "Batched decode steps.",
    submitted: "Requests submitted.",
    completed: "Requests completed.",
    failed: "Requests that failed.",
    rejected: "Requests refused because the serving was full.",
    cancelled: "Requests cancelled (the caller left or halted its stream).",
    timed_out: "Requests past their timeout."
  ]

  defp serving(nil), do: metric("qwen3_up", "gauge", "Whether the serving is ready.", [{"", 0}])

  defp serving(stats) do
    [
      metric("qwen3_up", "gauge", "Whether the serving is ready.", [{"", 1}]),
      for({key, help} <- @gauges, do: metric("qwen3_#{key}", "gauge", help, [{"", stats[key]}])),
      for({key, help} <- @counters, do: metric("qwen3_#{key}_total", "counter", help, [{"", stats[key]}])),
      prefix_cache(stats[:prefix_cache])
    ]
  end

  @prefix_counters [
    hits: "Requests that took a prefix from the prefix cache.",
    misses: "Requests that found none.",
    hit_tokens: "Prompt tokens taken from the prefix cache instead of prefilled.",
    evicted: "Entries evicted to keep the prefix cache within its budget."
  ]

  defp prefix_cache(nil), do: []

  defp prefix_cache(pc) do
    [
      metric("qwen3_prefix_cache_bytes", "gauge", "Bytes of KV held by the prefix cache.", [{"", pc.bytes}]),
      for(
        {key, help} <- @prefix_counters,
        do: metric("qwen3_prefix_cache_#{key}_total", "counter", help, [{"", pc[key]}])
      )
    ]
  end

  defp requests(table) do
    samples =
      for [route, status, n] <- :ets.match(table, {{:requests, :"$1", :"$2"}, :"$3"}) |> Enum.sort(),
          do: {~s({route="#{route}",status="#{status}"}), n}

    metric("qwen3_http_requests_total", "counter", "HTTP requests by route and status.", samples)
  end

  defp histogram(table, name, help) do
    counts = for i <- 0..length(@buckets), do: lookup(table, {name, :bucket, i})
    cumulative = Enum.scan(counts, &+/2)
    bounds = Enum.map(@buckets, &to_string/1) ++ ["+Inf"]
    full = "qwen3_#{name}"

    [
      "# HELP #{full} #{help}\n# TYPE #{full} histogram\n",
      for({bound, n} <- Enum.zip(bounds, cumulative), do: ~s(#{full}_bucket{le="#{bound}"} #{n}\n)),
      "#{full}_sum #{lookup(table, {name, :sum_us}) / 1.0e6}\n",
      "#{full}_count #{lookup(table, {name, :count})}\n"
    ]
  end

  defp lookup(table, key) do
    case :ets.lookup(table, key) do
      [{_, n}] -> n
      [] -> 0
    end
  end

  defp metric(name, type, help, samples) do
    [
      "# HELP #{name} #{help}\n# TYPE #{name} #{type}\n",
      for({labels, v} <- samples, do: "#{name}#{labels} #{v}\n")
    ]
  end
end
