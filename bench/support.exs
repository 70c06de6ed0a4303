defmodule Bench do
  @moduledoc false
  # What the bench scripts share: the benchmark checkpoints, the machine line, and
  # replacing a marked section of bench/README.md.

  @doc "Builds (once, into the cache) the random benchmark checkpoints; returns the dirs of `names`."
  def checkpoints(names) do
    python = System.fetch_env!("QWEN3_ORACLE_PYTHON")
    root = Path.join(System.fetch_env!("QWEN3_CACHE"), "bench-checkpoints")
    {_, 0} = System.cmd(python, ["bench/checkpoints.py", root | names], into: IO.stream(:stdio, :line))
    Enum.map(names, &Path.join(root, &1))
  end

  @doc "CPU model, core count and load average now."
  def machine do
    cpu =
      case File.read("/proc/cpuinfo") do
        {:ok, text} -> Regex.run(~r/model name\s*:\s*(.+)/, text, capture: :all_but_first) |> List.first()
        _ -> :erlang.system_info(:system_architecture) |> to_string()
      end

    load =
      case File.read("/proc/loadavg") do
        {:ok, l} -> l |> String.split() |> Enum.take(3) |> Enum.join(" ")
        _ -> "?"
      end

    "#{cpu}, #{:erlang.system_info(:logical_processors)} cores; load average before the run: #{load}"
  end

  @doc "Replaces what lies between `<!-- tag -->` and `<!-- /tag -->` in bench/README.md."
  def write_readme(tag, report) do
    path = "bench/README.md"
    [before, rest] = path |> File.read!() |> String.split("<!-- #{tag} -->", parts: 2)
    [_old, tail] = String.split(rest, "<!-- /#{tag} -->", parts: 2)
    File.write!(path, before <> "<!-- #{tag} -->\n" <> report <> "<!-- /#{tag} -->" <> tail)
    IO.puts(:stderr, "wrote the table into #{path}")
  end

  @doc "A folder that shows checkpoint `dir` with the real Qwen3 tokenizer beside its files."
  def with_tokenizer(dir) do
    linked = Path.join(System.tmp_dir!(), "qwen3-bench-#{Path.basename(dir)}-tokenized")
    File.rm_rf!(linked)
    File.mkdir_p!(linked)
    tokenizer = System.fetch_env!("QWEN3_TOKENIZER_DIR")
    for f <- File.ls!(dir), do: File.ln_s!(Path.join(dir, f), Path.join(linked, f))

    for f <- ~w(tokenizer.json tokenizer_config.json),
        do: File.ln_s!(Path.join(tokenizer, f), Path.join(linked, f))

    linked
  end

  @doc """
  Checkpoints with the real tokenizer (for the text APIs): the tiny-chat test fixture, and
  the 0.6B-shaped benchmark checkpoint seen through a folder that adds the tokenizer.
  """
  def tokenized_checkpoints do
    [
      Path.join(System.fetch_env!("QWEN3_FIXTURES"), "tiny-chat")
      | Enum.map(checkpoints(["0.6b-bf16"]), &with_tokenizer/1)
    ]
  end

  @doc "A checkpoint's name in the tables."
  def name(dir),
    do:
      dir
      |> Path.basename()
      |> String.replace_prefix("qwen3-bench-", "")
      |> String.replace_suffix("-tokenized", "")

  @doc "Prints the dated Markdown table of `rows` under `head` (and the `notes`), and writes it into bench/README.md's `tag` section when asked."
  def report(tag, header, head, rows, notes, write?) do
    md =
      ([head, Enum.map(head, fn _ -> "---" end)] ++ rows)
      |> Enum.map_join("\n", &("| " <> Enum.join(&1, " | ") <> " |"))

    report = "#{Date.utc_today()} · #{header}\n\n#{md}\n" <> Enum.map_join(notes, &("\n" <> &1 <> "\n"))
    IO.puts("\n" <> report)
    if write?, do: write_readme(tag, report)
  end

  @doc "A difference with its sign, two decimals."
  def signed(x) do
    text = :erlang.float_to_binary(abs(x) / 1, decimals: 2)
    if x >= 0, do: "+" <> text, else: "−" <> text
  end

  def median(xs), do: xs |> Enum.sort() |> Enum.at(div(length(xs), 2))

  @doc "Milliseconds between the consecutive tokens of one generation, as the caller reads them."
  def decode_gaps(model, ids, opts) do
    {:ok, gen} = Qwen3.Generate.start(ids, model, opts)

    Stream.unfold(gen, fn gen ->
      case Qwen3.Generate.next(gen) do
        {:token, _, _, gen} -> {System.monotonic_time(), gen}
        {:done, done} -> with :ok <- Qwen3.KVCache.release(done.cache), do: nil
      end
    end)
    |> Enum.chunk_every(2, 1, :discard)
    |> Enum.map(fn [a, b] -> System.convert_time_unit(b - a, :native, :microsecond) / 1000 end)
  end
end
