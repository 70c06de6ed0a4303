defmodule Mix.Tasks.Qwen3.Generate do
  @shortdoc "Generates tokens from a Qwen3 checkpoint directory"
  @moduledoc """
  Generates from a checkpoint, for people and for checking the model against other
  implementations (the JSON form is a stable interface).

      mix qwen3.generate --model DIR --prompt-ids 1,2,3 --max-new-tokens N \\
        --sampler greedy --format json [--dump-logits FILE]

  Options:
    * `--model DIR` — a Hugging Face model directory (required)
    * `--prompt-ids IDS` — comma-separated token ids (required until text prompts land)
    * `--max-new-tokens N` (default 32), `--sampler greedy`
    * `--device cpu|gpu`, `--dtype f32|bf16|f16`, `--loop elixir|native`
    * `--format text|json` — `json` prints one object:
      `{"tokens": [...], "text": null, "finish_reason": "stop"|"length", "timing": {...}}`
    * `--dump-logits FILE` — the last-position logits of every step, little-endian float32,
      steps × vocab
  """
  use Mix.Task

  @switches [
    model: :string,
    prompt_ids: :string,
    max_new_tokens: :integer,
    sampler: :string,
    device: :string,
    dtype: :string,
    loop: :string,
    format: :string,
    dump_logits: :string
  ]

  @impl true
  def run(argv) do
    {opts, rest, invalid} = OptionParser.parse(argv, strict: @switches)
    if rest != [] or invalid != [], do: Mix.raise("unexpected arguments: #{inspect(rest ++ invalid)}")
    model_dir = opts[:model] || Mix.raise("--model DIR is required")
    ids = parse_ids(opts[:prompt_ids] || Mix.raise("--prompt-ids is required"))

    Mix.Task.run("app.start")

    load_opts = [device: atom(opts[:device] || "cpu"), dtype: opts[:dtype] && atom(opts[:dtype])]
    model = ok_or_raise(Qwen3.Model.load(model_dir, load_opts))

    gen_opts = [
      max_new_tokens: opts[:max_new_tokens] || 32,
      sampler: atom(opts[:sampler] || "greedy"),
      loop: atom(opts[:loop] || "elixir"),
      dump_logits: opts[:dump_logits] != nil
    ]

    {tokens, meta} = ok_or_raise(Qwen3.Generate.generate(ids, model, gen_opts))
    if path = opts[:dump_logits], do: File.write!(path, meta.logits)

    case opts[:format] || "text" do
      "json" ->
        IO.puts(
          Qwen3.JSON.encode(%{
            tokens: tokens,
            text: nil,
            finish_reason: meta.finish_reason,
            timing: meta.timing
          })
        )

      "text" ->
        IO.puts(Enum.join(tokens, " "))
        t = meta.timing

        IO.puts(
          :stderr,
          "#{meta.finish_reason}: prefill #{round(t.prefill_ms)} ms, #{Float.round(t.per_token_ms, 2)} ms/token"
        )

      other ->
        Mix.raise("--format must be text or json, got #{other}")
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

  defp atom(s) when is_binary(s), do: String.to_atom(s)

  defp ok_or_raise({:ok, value}), do: value
  defp ok_or_raise({:error, e}), do: Mix.raise(Exception.message(e))
end
