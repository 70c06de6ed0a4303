# `make demo`: load a checkpoint, stream a chat reply, and time both decode loops.
# Uses QWEN3_MODEL (a directory, or a repo id in the Hugging Face cache) when given, else
# the tiny random-weight checkpoint with the real Qwen3 tokenizer that set-up builds offline.
dir = System.get_env("QWEN3_MODEL") || Path.join(System.fetch_env!("QWEN3_FIXTURES"), "tiny-chat")

on_progress = fn p ->
  IO.write("\rloading #{p.tensors_done}/#{p.tensors_total} tensors, #{div(p.bytes_done, 1_000_000)} MB")
end

model = Qwen3.load!(dir, on_progress: on_progress)
IO.puts("\n#{inspect(model)}")

messages = [%{role: "user", content: "Hello! Who are you?"}]
IO.puts("\nuser: #{hd(messages).content}\nassistant: ")

model
|> Qwen3.stream(messages, max_new_tokens: 48, enable_thinking: false)
|> Enum.each(&IO.write/1)

IO.puts("\n")

for loop <- [:elixir, :native] do
  {:ok, r} = Qwen3.generate(model, messages, max_new_tokens: 32, loop: loop, enable_thinking: false)
  t = r.timing

  IO.puts(
    "#{loop} loop: #{length(r.tokens)} tokens (#{r.finish_reason}), prefill #{Float.round(t.prefill_ms, 1)} ms, " <>
      "#{Float.round(t.per_token_ms, 2)} ms/token"
  )
end

if System.get_env("QWEN3_MODEL") == nil,
  do: IO.puts("(random weights: real Qwen3 tokenizer and template, so the text is noise)")
