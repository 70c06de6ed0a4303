defmodule Qwen3.PrefixCacheTest do
  # A serving's shared prefix cache: tokens equal those without it for prompts sharing 0%,
  # 50% and 100% of an earlier one (greedy and sampled), in any order; a small budget evicts
  # and keeps its bytes within it, and still gives the same tokens.
  use ExUnit.Case, async: false

  alias Qwen3.{Fixtures, KVCache, Model, PrefixCache, Serving}

  setup_all do
    {:ok, model: Model.load!(Fixtures.path("dense-f32-tied"))}
  end

  # 64-token prompts: `base` and ones sharing its first 32 tokens, or all 64, or none.
  defp prompts do
    base = for i <- 0..63, do: rem(i * 37 + 5, 1000)
    half = Enum.take(base, 32) ++ for(i <- 0..31, do: rem(i * 11 + 600, 1000))
    other = for i <- 0..63, do: rem(i * 53 + 400, 1000)
    %{base: base, half: half, full: base ++ [9, 8, 7], other: other}
  end

  defp start(model, bytes, batch_size) do
    name = :"prefix_#{System.unique_integer([:positive])}"
    start_supervised!({Serving, model: model, name: name, batch_size: batch_size, prefix_cache_bytes: bytes})
    name
  end

  defp expected(model, prompt, opts), do: Qwen3.generate!(model, prompt, opts).tokens

  test "shared prefixes give the tokens a fresh prefill gives, in any order", %{model: model} do
    p = prompts()
    opts_of = [[max_new_tokens: 8], [max_new_tokens: 8, sampler: :sample, seed: 5, temperature: 0.9]]

    for order <- [[:base, :other, :half, :full, :other, :base], [:full, :half, :other, :base, :half]],
        opts <- opts_of do
      # One slot: the slot itself holds only the last request, so reuse comes from the cache.
      name = start(model, 64 * 1_048_576, 1)

      for key <- order do
        {:ok, r} = Serving.generate(name, p[key], opts)
        assert r.tokens == expected(model, p[key], opts), "#{key} in #{inspect(order)}, #{inspect(opts)}"
      end

      # Every prompt but the first of its kind takes a prefix: 32 tokens for a half, 63 or
      # 64 for a repeat or an extension.
      pc = Serving.stats(name).prefix_cache
      assert pc.hits >= 3 and pc.hit_tokens >= 150, inspect(pc)
      assert pc.bytes <= pc.budget
      stop_supervised!(Serving.stats(name).name)
    end
  end

  test "a small budget evicts least recently used entries and stays within it", %{model: model} do
    p = prompts()
    per_token = 2 * 2 * 2 * 64 * 4
    # Room for about one 72-token entry.
    budget = 100 * per_token
    name = start(model, budget, 2)

    for key <- [:base, :other, :half, :base, :other, :full] do
      {:ok, r} = Serving.generate(name, p[key], max_new_tokens: 8)
      assert r.tokens == expected(model, p[key], max_new_tokens: 8)
      pc = Serving.stats(name).prefix_cache
      assert pc.bytes <= budget and pc.entries <= 1, inspect(pc)
    end

    assert Serving.stats(name).prefix_cache.evicted >= 3
  end

  test "lookup finds the longest shared prefix by blocks; superseded entries go", %{model: model} do
    p = prompts()
    fill = fn ids -> Qwen3.generate!(model, ids, max_new_tokens: 1).kv_cache end
    pc = PrefixCache.new(10_000_000)
    pc = PrefixCache.insert(pc, model, fill.(p.base))
    assert {nil, 0, pc} = PrefixCache.lookup(pc, p.other)
    {%KVCache{}, 32, pc} = PrefixCache.lookup(pc, p.half)
    {%KVCache{}, 64, pc} = PrefixCache.lookup(pc, p.full)
    # Fewer than one block in common is no hit.
    assert {nil, 0, pc} = PrefixCache.lookup(pc, Enum.take(p.base, 10) ++ p.other)

    # An entry that extends another replaces it.
    longer = PrefixCache.insert(pc, model, fill.(p.full))
    assert PrefixCache.stats(longer).entries == 1
    assert %{hits: 2, misses: 2, hit_tokens: 96} = PrefixCache.stats(longer)
  end
end
