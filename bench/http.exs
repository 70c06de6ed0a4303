# What the HTTP layer costs: streams through Qwen3.HTTP (POST /v1/completions, stream: true,
# token-id prompts, greedy) against the same requests streamed from Qwen3.Serving directly,
# on one serving, in one run, alternating, at 1 and 8 concurrent streams. Time to first
# token (request sent → first token's chunk) and per-token time (first → last token).
# The checkpoints need a tokenizer (the API streams text): the tiny-chat test fixture, and
# the 0.6B-shaped benchmark checkpoint seen through a folder that adds the real tokenizer.
#   mix run bench/http.exs [--write-readme]
Code.require_file("support.exs", __DIR__)
alias Qwen3.{Model, Serving}

{opts, _} = OptionParser.parse!(System.argv(), strict: [write_readme: :boolean])

dirs = Bench.tokenized_checkpoints()

now = fn -> System.monotonic_time(:microsecond) end

# {ttft_ms, per_token_ms} of one stream read from the serving itself.
direct = fn name, ids, n ->
  t0 = now.()

  {first, last, tokens} =
    Serving.stream(name, ids, events: true, max_new_tokens: n)
    |> Enum.reduce({nil, nil, 0}, fn
      {:token, _, _, _}, {f, _, k} -> {f || now.(), now.(), k + 1}
      {:done, _}, acc -> acc
    end)

  {(first - t0) / 1000, (last - first) / 1000 / max(tokens - 1, 1)}
end

# The same through HTTP: each `data:` chunk's arrival is timed as it is read.
over_http = fn port, ids, n ->
  body =
    Qwen3.JSON.encode!(%{
      prompt: ids,
      max_tokens: n,
      temperature: 0,
      stream: true,
      stream_options: %{include_usage: true}
    })

  request = "POST /v1/completions HTTP/1.1\r\nhost: b\r\ncontent-length: #{byte_size(body)}\r\n\r\n#{body}"
  {:ok, s} = :gen_tcp.connect(~c"127.0.0.1", port, [:binary, active: false])
  t0 = now.()
  :ok = :gen_tcp.send(s, request)

  # Kept cheap (the client shares the VM and its cores with the server): stamps are taken
  # first, data and stamps gathered in reverse.
  read = fn read, parts, times ->
    case :gen_tcp.recv(s, 0, 120_000) do
      {:ok, data} ->
        stamp = now.()
        chunks = length(:binary.matches(data, ~s("text":")))
        read.(read, [data | parts], List.duplicate(stamp, chunks) ++ times)

      {:error, :closed} ->
        {parts |> Enum.reverse() |> IO.iodata_to_binary(), Enum.reverse(times)}
    end
  end

  {body, times} = read.(read, [], [])
  :gen_tcp.close(s)
  [_, usage] = Regex.run(~r/"completion_tokens":(\d+)/, body)
  tokens = String.to_integer(usage)
  # The last chunk with text is the one that finishes; the first is the first token.
  {first, last} = {List.first(times), Enum.at(times, -2) || List.last(times)}
  {(first - t0) / 1000, (last - first) / 1000 / max(tokens - 1, 1)}
end

header = Bench.machine()
IO.puts(header <> "\n")
f = &:erlang.float_to_binary(&1 / 1, decimals: 2)

rows =
  for dir <- dirs do
    model = Model.load!(dir)
    big? = model.info.hidden_size >= 1024
    {n, runs} = if big?, do: {32, 4}, else: {64, 5}
    name = :"bench_http_#{Path.basename(dir)}"
    {:ok, _} = Serving.start_link(model: model, name: name, batch_size: 8, max_len: 64 + n)
    {:ok, http} = Qwen3.HTTP.start_link(serving: name, port: 0)
    port = Qwen3.HTTP.port(http)
    vocab = model.info.vocab_size

    for c <- [1, 8] do
      # Fresh prompts each time: a slot keeps its last prompt's cache.
      prompts = fn -> for _ <- 1..c, do: for(_ <- 1..32, do: :rand.uniform(vocab) - 1) end

      run = fn how ->
        prompts.() |> Enum.map(&Task.async(fn -> how.(&1) end)) |> Task.await_many(:infinity)
      end

      run.(&direct.(name, &1, 4))

      samples =
        for _ <- 1..runs do
          {run.(&direct.(name, &1, n)), run.(&over_http.(port, &1, n))}
        end

      med = fn pick -> samples |> Enum.flat_map(pick) |> Bench.median() end
      d_ttft = med.(fn {d, _} -> Enum.map(d, &elem(&1, 0)) end)
      h_ttft = med.(fn {_, h} -> Enum.map(h, &elem(&1, 0)) end)
      d_tok = med.(fn {d, _} -> Enum.map(d, &elem(&1, 1)) end)
      h_tok = med.(fn {_, h} -> Enum.map(h, &elem(&1, 1)) end)

      row = [
        Bench.name(dir),
        "#{c}",
        "#{f.(d_ttft)} / #{f.(h_ttft)}",
        "**#{Bench.signed(h_ttft - d_ttft)}**",
        "#{f.(d_tok)} / #{f.(h_tok)}",
        "**#{Bench.signed((h_tok / d_tok - 1) * 100)}%**"
      ]

      IO.puts(Enum.join(row, "  "))
      row
    end
  end
  |> Enum.concat()

head = [
  "checkpoint",
  "streams",
  "first token ms, direct / HTTP",
  "HTTP adds ms",
  "per token ms, direct / HTTP",
  "HTTP per-token cost"
]

Bench.report("http", header, head, rows, [], opts[:write_readme])
