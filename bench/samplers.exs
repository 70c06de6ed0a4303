# Time to draw one token from one row of logits of Qwen3's vocabulary (151,936), per sampler,
# with Qwen3's generation_config.json filters (temperature 0.6, top-p 0.95; top-k off here). The logits are random normal × 3,
# so the nucleus holds thousands of tokens. The fused CPU kernels can be switched off with
# QWEN3_FUSED_CPU=0, which shows what MLX's own graph (a full argsort) costs.
#   mix run bench/samplers.exs
alias Qwen3.{Array, Sampler}

vocab = 151_936
:rand.seed(:exsss, 7)
floats = for _ <- 1..vocab, into: <<>>, do: <<:rand.normal() * 3::float-32-native>>
logits = Array.from_binary!(floats, [1, vocab], :f32)
model = %Qwen3.Model{device: :cpu, ref: nil, path: nil, info: nil}

fused = if System.get_env("QWEN3_FUSED_CPU") == "0", do: "off", else: "on"
IO.puts("One token from #{vocab} logits; fused CPU kernels #{fused}")

for sampler <- [:greedy, :sample, :sample_host] do
  spec = Sampler.spec!(nil, sampler: sampler, temperature: 0.6, top_p: 0.95)
  {:ok, s} = Sampler.new(model, spec, [seed: 1], [])
  draw = fn -> {:ok, [_]} = Array.to_list(elem(Sampler.sample(s, logits), 1)) end
  for _ <- 1..5, do: draw.()
  times = for _ <- 1..40, do: elem(:timer.tc(draw), 0) / 1000
  median = times |> Enum.sort() |> Enum.at(20)
  IO.puts("  #{String.pad_trailing(inspect(sampler), 12)} median #{Float.round(median, 2)} ms")
end
