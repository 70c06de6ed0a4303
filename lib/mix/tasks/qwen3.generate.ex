defmodule Mix.Tasks.Qwen3.Generate do
  @shortdoc "Generates text (streamed) or token ids from a Qwen3 checkpoint"
  @moduledoc """
  Generates from a checkpoint, for people (streamed text) and for checking the model
  against other implementations (the JSON form is a stable interface).

      mix qwen3.generate --model DIR --prompt "The capital of France is"
      mix qwen3.generate --model DIR --chat --prompt "Why is the sky blue?" --no-think
      mix qwen3.generate --model DIR --prompt-ids 1,2,3 --max-new-tokens N \\
        --sampler greedy --format json [--dump-logits FILE]

  Options:
    * `--prompt TEXT` or `--prompt-ids IDS` (comma-separated token ids)
    * `--chat` — `--prompt` is a user message, rendered with the chat template;
      `--no-think` turns Qwen3's thinking off
    * `--format text|json` — `text` (default) streams the text to stdout and timing to
      stderr; `json` prints one object:
      `{"tokens": [...], "text": "..." | null, "finish_reason": "stop"|"length", "timing": {...}}`
      (`text` is null for checkpoints without a tokenizer)
    * `--dump-logits FILE` — the last-position logits of every step, little-endian float32,
      steps × vocab
    * `--prompt-cache FILE` — starts from the KV cache saved in FILE if it exists (only
      what the prompt adds to its tokens is prefilled) and saves the cache (prompt and
      output) there afterwards (`Qwen3.KVCache.save/2`)
    * model and sampling options (defaults: 32 new tokens, greedy):

  #{Qwen3.CLI.usage()}
  """
  use Mix.Task
  alias Qwen3.CLI

  @extra [
    prompt: :string,
    prompt_ids: :string,
    chat: :boolean,
    think: :boolean,
    format: :string,
    dump_logits: :string,
    prompt_cache: :string
  ]

  @impl true
  def run(argv) do
    opts = CLI.parse!(argv, @extra)
    format = opts[:format] || "text"
    unless format in ["text", "json"], do: Mix.raise("--format must be text or json, got #{format}")
    model = CLI.load_model!(opts)
    prompt = prompt!(opts)

    gen_opts =
      CLI.generation_opts(opts, max_new_tokens: 32)
      |> Keyword.put(:dump_logits, opts[:dump_logits] != nil)
      |> then(
        &if opts[:chat], do: Keyword.put(&1, :enable_thinking, Keyword.get(opts, :think, true)), else: &1
      )
      |> with_saved_cache(model, opts[:prompt_cache])

    result =
      if format == "text" and model.tokenizer,
        do: streamed(model, prompt, gen_opts),
        else: whole(model, prompt, gen_opts)

    if path = opts[:dump_logits], do: File.write!(path, result.logits)

    if path = opts[:prompt_cache] do
      with {:error, e} <- Qwen3.KVCache.save(result.kv_cache, path), do: Mix.raise(Exception.message(e))
    end

    case format do
      "json" ->
        out = Map.take(result, [:tokens, :text, :finish_reason, :timing])
        IO.puts(Qwen3.JSON.encode!(out))

      "text" ->
        if model.tokenizer, do: IO.puts(""), else: IO.puts(Enum.join(result.tokens, " "))
        IO.puts(:stderr, CLI.format_timing(result))
    end
  end

  defp with_saved_cache(gen_opts, _model, nil), do: gen_opts

  defp with_saved_cache(gen_opts, model, path) do
    if File.exists?(path) do
      case Qwen3.KVCache.load(model, path) do
        {:ok, cache} -> Keyword.put(gen_opts, :kv_cache, cache)
        {:error, e} -> Mix.raise("--prompt-cache #{path}: #{Exception.message(e)}")
      end
    else
      gen_opts
    end
  end

  defp prompt!(opts) do
    cond do
      opts[:prompt_ids] -> parse_ids(opts[:prompt_ids])
      opts[:prompt] && opts[:chat] -> [%{role: "user", content: opts[:prompt]}]
      opts[:prompt] -> opts[:prompt]
      true -> Mix.raise("--prompt TEXT or --prompt-ids IDS is required")
    end
  end

  defp whole(model, prompt, gen_opts) do
    case Qwen3.generate(model, prompt, gen_opts) do
      {:ok, result} -> result
      {:error, e} -> Mix.raise(Exception.message(e))
    end
  end

  defp streamed(model, prompt, gen_opts) do
    {:ok, ref} = Qwen3.stream_to(self(), model, prompt, gen_opts)

    case CLI.print_stream(ref) do
      {:ok, result} -> result
      {:error, e} -> Mix.raise(Exception.message(e))
    end
  end

  defp parse_ids(text) do
    text
    |> String.split(",", trim: true)
    |> Enum.map(fn s ->
      case Integer.parse(String.trim(s)) do
        {n, ""} -> n
        _ -> Mix.raise("--prompt-ids must be comma-separated integers, got #{inspect(text)}")
      end
    end)
  end
end
