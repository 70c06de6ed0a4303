defmodule Mix.Tasks.Qwen3.Chat do
  @shortdoc "An interactive, multi-turn chat with a Qwen3 checkpoint in the terminal"
  @moduledoc """
  A chat REPL. Each reply streams as it is generated; the conversation's KV cache is kept,
  so a turn only computes the new tokens.

      mix qwen3.chat --model Qwen/Qwen3-0.6B --sampler sample --temperature 0.6

  Commands: `/think` toggles thinking (on by default), `/reset` starts over, `/quit` (or
  end of input) leaves. Reads standard input, so it can be scripted:

      printf 'Hello!\\n/think\\nAnd now?\\n' | mix qwen3.chat --model DIR --echo

  Options (defaults: 512 new tokens per reply, greedy):

  #{Qwen3.CLI.usage()}
      --max-len N          the conversation's KV capacity in tokens (4096)
      --system TEXT        a system message
      --echo               repeat each input line (for scripted, non-terminal input)
  """
  use Mix.Task
  alias Qwen3.CLI

  @impl true
  def run(argv) do
    opts = CLI.parse!(argv, max_len: :integer, system: :string, echo: :boolean)
    model = CLI.load_model!(opts)
    unless model.chat_template, do: Mix.raise("#{model.path} has no chat template")
    gen_opts = CLI.generation_opts(opts, max_new_tokens: 512)
    max_len = opts[:max_len] || 4096
    system = if opts[:system], do: [%{role: "system", content: opts[:system]}], else: []

    IO.puts("Chatting with #{Path.basename(model.path)}. /think toggles thinking, /reset, /quit.")

    loop(%{
      model: model,
      gen_opts: gen_opts,
      max_len: max_len,
      system: system,
      messages: system,
      think: true,
      cache: nil,
      echo: opts[:echo] || false
    })
  end

  defp loop(state) do
    case IO.gets("> ") do
      :eof ->
        IO.puts("")

      {:error, _} ->
        :ok

      line ->
        line = String.trim(line)
        if state.echo, do: IO.puts(line)
        command(line, state)
    end
  end

  defp command("", state), do: loop(state)
  defp command("/quit", _state), do: :ok

  defp command("/think", state) do
    IO.puts("(thinking #{if state.think, do: "off", else: "on"})")
    loop(%{state | think: not state.think})
  end

  defp command("/reset", state) do
    IO.puts("(new conversation)")
    loop(%{state | messages: state.system, cache: nil})
  end

  defp command("/" <> other, state) do
    IO.puts("(unknown command /#{other}: use /think, /reset or /quit)")
    loop(state)
  end

  defp command(text, state) do
    messages = state.messages ++ [%{role: "user", content: text}]
    cache = state.cache || Qwen3.Model.init_kv_cache!(state.model, max_len: state.max_len)
    opts = Keyword.merge(state.gen_opts, enable_thinking: state.think, kv_cache: cache)
    {:ok, ref} = Qwen3.stream_to(self(), state.model, messages, opts)

    case CLI.print_stream(ref) do
      {:ok, result} ->
        IO.puts("")
        IO.puts(:stderr, "[#{CLI.format_timing(result)}]")
        loop(%{state | messages: Qwen3.chat_reply(messages, result).messages, cache: result.kv_cache})

      {:error, e} ->
        IO.puts("\n(error: #{Exception.message(e)})")
        loop(state)
    end
  end
end
