# Time to first token of a conversation's second turn through Qwen3.Serving, with the
# shared prefix cache and without, on the 0.6B-shaped bf16 checkpoint (one slot, so the
# slot itself does not keep the conversation: another caller's request runs in between,
# as on a busy server).
#   mix run bench/prefix_cache.exs [--tokens N] [--write-readme]
Code.require_file("support.exs", __DIR__)

{opts, _} = OptionParser.parse!(System.argv(), strict: [tokens: :integer, write_readme: :boolean])
n = opts[:tokens] || 4000
[dir] = Bench.checkpoints(["0.6b-bf16"])
model = Qwen3.load!(dir)
vocab = model.info.vocab_size
conversation = for i <- 0..(n - 1), do: rem(i * 7919 + 11, vocab)
other = for i <- 0..(n - 1), do: rem(i * 104_729 + 3, vocab)
per_token = Qwen3.KVCache.bytes_per_token(model)

# Milliseconds from submission to the first token, as the caller sees it, and the tokens.
timed = fn name, prompt ->
  t0 = System.monotonic_time()

  {first, tokens} =
    Qwen3.Serving.stream(name, prompt, events: true, max_new_tokens: 16)
    |> Enum.reduce({nil, []}, fn
      {:token, _, id, _}, {nil, ids} -> {System.monotonic_time(), [id | ids]}
      {:token, _, id, _}, {t, ids} -> {t, [id | ids]}
      {:done, _}, acc -> acc
    end)

  {System.convert_time_unit(first - t0, :native, :microsecond) / 1000, Enum.reverse(tokens)}
end

run = fn budget ->
  name = :"bench_prefix_#{budget}"

  {:ok, pid} =
    Qwen3.Serving.start_link(
      model: model,
      name: name,
      batch_size: 1,
      max_len: n + 128,
      prefix_cache_bytes: budget
    )

  {first_ms, reply} = timed.(name, conversation)
  {_, _} = timed.(name, other)
  turn2 = conversation ++ reply ++ Enum.take(other, 40)
  {second_ms, _} = timed.(name, turn2)
  stats = Qwen3.Serving.stats(name).prefix_cache
  GenServer.stop(pid)
  {first_ms, second_ms, length(turn2), stats}
end

# Warm-up: the allocator and the kernels reach their working state before anything is timed.
{:ok, _} = Qwen3.generate(model, Enum.take(other, 512), max_new_tokens: 4)
{first_off, second_off, len, _} = run.(0)
{first_on, second_on, ^len, stats} = run.(2 * (n + 128) * per_token)
ms = &:erlang.float_to_binary(&1 / 1, decimals: 0)

rows = [
  ["without (`prefix_cache_bytes: 0`)", ms.(first_off), ms.(second_off), "–"],
  ["with (room for 2 conversations)", ms.(first_on), ms.(second_on), "#{stats && stats.hit_tokens} of #{len}"]
]

notes = [
  "Turn 1: a #{n}-token prompt, 16 new tokens; then another caller's #{n}-token request; turn 2: turn 1's prompt " <>
    "and reply plus 40 new tokens (#{len} tokens). Time to first token: from submission to the first streamed token. " <>
    "KV cache: #{Float.round(per_token / 1024, 1)} KiB per token (#{model.info.dtype}); second turn with the cache / without: " <>
    "#{Float.round(second_on / second_off, 3)}×."
]

Bench.report(
  "prefix-cache",
  Bench.machine(),
  ["serving", "turn 1 first token ms", "turn 2 first token ms", "prompt tokens from the cache"],
  rows,
  notes,
  opts[:write_readme]
)
