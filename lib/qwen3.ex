defmodule Qwen3 do
  @moduledoc """
  Qwen3 language models on Apple's MLX, from Elixir.

      {:ok, model} = Qwen3.load("Qwen/Qwen3-0.6B")
      {:ok, %{text: text}} = Qwen3.generate(model, "The capital of France is", max_new_tokens: 8)
      {:ok, reply} = Qwen3.chat(model, [%{role: "user", content: "Hi!"}], enable_thinking: false)
      Qwen3.stream(model, "Once upon a time", max_new_tokens: 50) |> Enum.each(&IO.write/1)

  A prompt is text, a list of token ids (or an Nx tensor), or a list of chat messages
  (maps with `:role` and `:content`, or `{role, content}` tuples) rendered with the
  checkpoint's chat template.

  ## Options

  Generation (as `Qwen3.Generate`; all checked by `Qwen3.Options`):

  #{Qwen3.Options.docs(:generation)}

  With chat messages also:

  #{Qwen3.Options.docs(:chat)}

  The native side keeps MLX arrays as BEAM resources and runs every MLX call on one worker
  thread per device (`:cpu`, `:gpu`), so no scheduler ever waits on MLX.
  """
  alias Qwen3.{ChatTemplate, Error, Generate, Model, Request}

  @doc "Whether MLX can run on `device` here (`:gpu` means Metal or CUDA)."
  @spec device_available?(Qwen3.Array.device()) :: boolean
  def device_available?(device), do: Qwen3.Native.device_available(device)

  @doc """
  Loads a checkpoint directory or a Hugging Face repo id (see `Qwen3.Model.load/2` for the
  options and `Qwen3.Hub` for how repo ids are found), with its tokenizer and chat template.
  """
  @spec load(String.t(), keyword) :: {:ok, Model.t()} | {:error, Error.t()}
  def load(path_or_repo, opts \\ []), do: Model.load(path_or_repo, opts)

  def load!(path_or_repo, opts \\ []), do: Error.unwrap!(load(path_or_repo, opts))

  @doc """
  Generates a continuation of `prompt`. Returns `{:ok, result}` with `:text` (nil without a
  tokenizer), `:tokens` (the new ids), `:finish_reason`, `:timing` and `:kv_cache` (pass it
  back as `:kv_cache` with the longer conversation to continue without recomputing it).
  """
  @spec generate(Model.t(), term, keyword) :: {:ok, map} | {:error, Error.t()}
  def generate(%Model{} = model, prompt, opts \\ []) do
    with {:ok, request} <- Request.new(model, prompt, opts),
         {:ok, gen} <- Generate.start(request, model),
         do: Generate.run(gen)
  end

  def generate!(model, prompt, opts \\ []), do: Error.unwrap!(generate(model, prompt, opts))

  @doc """
  Text embeddings (unit vectors, last-token pooled, as Qwen3-Embedding computes them); see
  `Qwen3.Embedding` for the options (`:instruction`, `:dimensions`, `:batch_size`, …).
  """
  @spec embed(Model.t(), String.t() | [String.t()], keyword) ::
          {:ok, [float] | [[float]]} | {:error, Error.t()}
  def embed(%Model{} = model, texts, opts \\ []), do: Qwen3.Embedding.embed(model, texts, opts)

  def embed!(model, texts, opts \\ []), do: Error.unwrap!(embed(model, texts, opts))

  @doc """
  One chat turn. Returns `{:ok, reply}` with `:content` (the answer), `:thinking` (the
  `<think>` part, or nil), `:text` (both, as generated), `:messages` (the conversation with
  this reply appended) and everything `generate/3` returns.
  """
  @spec chat(Model.t(), [ChatTemplate.message()], keyword) :: {:ok, map} | {:error, Error.t()}
  def chat(%Model{} = model, [_ | _] = messages, opts \\ []) do
    with {:ok, result} <- generate(model, messages, opts), do: {:ok, chat_reply(messages, result)}
  end

  @doc """
  A generation's result as a chat turn, as `chat/3` returns it: the answer (`:content`),
  the think part (`:thinking`, or nil), the `:tool_calls` it makes (`Qwen3.ToolCalls`:
  OpenAI-shaped, taken out of the content) and `:messages`, the conversation with the reply
  appended (its think part as `reasoning_content`, its calls as `tool_calls`). For callers that stream a reply and
  then continue the conversation, as `mix qwen3.chat` does.
  """
  @spec chat_reply([ChatTemplate.message()], map) :: map
  def chat_reply(messages, result) do
    {thinking, content} = split_thinking(result.text || "")
    {content, tool_calls} = Qwen3.ToolCalls.parse(content)
    reply = %{role: "assistant", content: content}
    reply = if thinking, do: Map.put(reply, :reasoning_content, thinking), else: reply
    reply = if tool_calls != [], do: Map.put(reply, :tool_calls, tool_calls), else: reply

    Map.merge(result, %{
      content: content,
      thinking: thinking,
      tool_calls: tool_calls,
      messages: messages ++ [reply]
    })
  end

  def chat!(model, messages, opts \\ []), do: Error.unwrap!(chat(model, messages, opts))

  @doc """
  `<think>…</think>` and the answer, apart: `{thinking | nil, content}`. An unfinished
  think block (generation cut short) is all thinking.
  """
  @spec split_thinking(String.t()) :: {String.t() | nil, String.t()}
  def split_thinking(text) do
    case String.split(text, "</think>", parts: 2) do
      [thought, answer] ->
        {thought |> strip_open_tag() |> String.trim(), String.trim_leading(answer)}

      [_] ->
        if String.starts_with?(String.trim_leading(text), "<think>"),
          do: {text |> strip_open_tag() |> String.trim(), ""},
          else: {nil, text}
    end
  end

  defp strip_open_tag(text), do: text |> String.trim_leading() |> String.replace_prefix("<think>", "")

  @doc """
  A lazy stream of text chunks; halting it stops the generation. With `tokens: true` it
  yields `{text_chunk, token_id}` for every token instead (chunks may be "" while a
  character or a possible stop string is incomplete). Raises `Qwen3.Error` on failure.
  """
  @spec stream(Model.t(), term, keyword) :: Enumerable.t()
  def stream(%Model{} = model, prompt, opts \\ []) do
    {tokens?, opts} = Keyword.pop(opts, :tokens, false)
    request = Error.unwrap!(Request.new(model, prompt, opts))
    stream = Generate.stream(request, model)

    if tokens?,
      do: Stream.map(stream, fn {id, text} -> {text, id} end),
      else: stream |> Stream.map(&elem(&1, 1)) |> Stream.reject(&(&1 == ""))
  end

  @doc """
  Streams to a process as messages, for GenServers and LiveView. Returns `{:ok, ref}`;
  `pid` then receives `{ref, {:token, text_chunk, token_id}}` per token and finally
  `{ref, {:done, result}}` (as `generate/3`) or `{ref, {:error, %Qwen3.Error{}}}`, for the
  prompt's errors too; bad options raise `ArgumentError` here. The generation stops when
  `pid` exits or on `cancel/1`.
  """
  @spec stream_to(pid, Model.t(), term, keyword) :: {:ok, reference} | {:error, Error.t()}
  def stream_to(pid, %Model{} = model, prompt, opts \\ []) when is_pid(pid) do
    ref = make_ref()
    starter = self()

    # Options raise here; the prompt's errors reach `pid` like the generation's.
    request = Request.new(model, prompt, opts)

    with {:ok, task} <-
           Task.Supervisor.start_child(Qwen3.TaskSupervisor, fn ->
             Qwen3.Streamer.run(starter, pid, ref, request, model)
           end) do
      # Return only once `cancel/1` can find the task, so a cancel right away is never lost.
      monitor = Process.monitor(task)

      receive do
        {^ref, :registered} -> Process.demonitor(monitor, [:flush])
        {:DOWN, ^monitor, :process, _, _} -> :ok
      end

      {:ok, ref}
    end
  end

  @doc "Stops a `stream_to/4` generation and drops its pending messages from this mailbox."
  @spec cancel(reference) :: :ok | {:error, :not_found}
  def cancel(ref) when is_reference(ref) do
    result =
      case Registry.lookup(Qwen3.Registry, ref) do
        [{pid, _}] -> Task.Supervisor.terminate_child(Qwen3.TaskSupervisor, pid)
        [] -> {:error, :not_found}
      end

    Qwen3.Streamer.flush(ref)
    result
  end
end
