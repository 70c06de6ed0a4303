# NIF round trip through the device worker: the fixed cost every lazy primitive pays.
#   mix run bench/nif_round_trip.exs
alias Qwen3.{Array, Native}

measure = fn label, n, fun ->
  for _ <- 1..div(n, 10), do: fun.()
  samples = for _ <- 1..n, do: elem(:timer.tc(fun), 0)
  sorted = Enum.sort(samples)
  median = Enum.at(sorted, div(n, 2))
  p95 = Enum.at(sorted, round(n * 0.95) - 1)
  IO.puts(String.pad_trailing(label, 44) <> "median #{median} µs   p95 #{p95} µs   (n=#{n})")
end

a = Array.from_list!([1.0, 2.0, 3.0])
b = Array.from_list!([4.0, 5.0, 6.0])

IO.puts("Qwen3 NIF round trips on #{:erlang.system_info(:logical_processors)} cores\n")

measure.("ping (post job, worker replies :ok)", 20_000, fn ->
  {:ok, :ok} = Native.device_ping(:cpu) |> Native.await()
end)

measure.("lazy add (graph node, no compute)", 20_000, fn -> {:ok, _} = Array.add(a, b) end)

measure.("add + to_binary (build, eval, copy out)", 5_000, fn ->
  {:ok, _} = Array.to_binary(elem(Array.add(a, b), 1))
end)

measure.("shape (cached on the resource, no worker)", 20_000, fn -> [3] = Array.shape(a) end)
