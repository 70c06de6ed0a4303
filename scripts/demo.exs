# `make demo`: load a checkpoint and generate, with both loops, printing ids and timings.
# Uses QWEN3_MODEL=DIR when given (any Hugging Face Qwen3 directory), else the tiny
# random-weight checkpoint with the real Qwen3 vocabulary that set-up builds offline.
alias Qwen3.{Generate, Model}

dir = System.get_env("QWEN3_MODEL") || Path.join(System.fetch_env!("QWEN3_FIXTURES"), "tiny-chat")

on_progress = fn p ->
  IO.write("\rloading #{p.tensors_done}/#{p.tensors_total} tensors, #{div(p.bytes_done, 1_000_000)} MB")
end

model = Model.load!(dir, on_progress: on_progress)
IO.puts("\n#{inspect(model)}")

# "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n" in Qwen3 token ids.
prompt = [151_644, 872, 198, 9707, 151_645, 198, 151_644, 77_091, 198]

for loop <- [:elixir, :native] do
  {tokens, meta} = Generate.generate!(prompt, model, max_new_tokens: 32, loop: loop)
  t = meta.timing

  IO.puts("""
  #{loop} loop: #{length(tokens)} tokens (#{meta.finish_reason}), prefill #{Float.round(t.prefill_ms, 1)} ms, \
  #{Float.round(t.per_token_ms, 2)} ms/token
    #{inspect(tokens, limit: :infinity)}\
  """)
end

if System.get_env("QWEN3_MODEL") == nil,
  do: IO.puts("(random weights: the ids are real Qwen3 vocabulary, the text they spell is noise)")
