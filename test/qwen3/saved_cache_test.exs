defmodule Qwen3.SavedCacheTest do
  # KV caches saved to disk and loaded back continue exactly as the live cache does, and
  # are refused (tagged) by any other model.
  use ExUnit.Case, async: true

  alias Qwen3.{Fixtures, KVCache, Model}

  @moduletag :tmp_dir

  setup_all do
    {:ok, model: Model.load!(Fixtures.path("dense-f32-tied"))}
  end

  test "a saved and loaded cache continues as the live one", %{model: model, tmp_dir: dir} do
    prompt = Enum.to_list(10..40)
    {:ok, first} = Qwen3.generate(model, prompt, max_new_tokens: 6)
    path = Path.join(dir, "turn1.safetensors")
    assert :ok = KVCache.save(first.kv_cache, path)

    {:ok, loaded} = KVCache.load(model, path)
    assert loaded.tokens == first.kv_cache.tokens
    assert KVCache.offset(loaded) == KVCache.offset(first.kv_cache)

    # The next turn: the whole conversation plus new tokens, from each cache and from none.
    turn2 = prompt ++ first.tokens ++ [7, 8, 9]
    live = Qwen3.generate!(model, turn2, max_new_tokens: 12, kv_cache: first.kv_cache)
    from_disk = Qwen3.generate!(model, turn2, max_new_tokens: 12, kv_cache: loaded)
    fresh = Qwen3.generate!(model, turn2, max_new_tokens: 12)
    assert from_disk.tokens == live.tokens
    assert from_disk.tokens == fresh.tokens
  end

  test "another model, dtype or file is a tagged error", %{model: model, tmp_dir: dir} do
    {:ok, result} = Qwen3.generate(model, [1, 2, 3, 4], max_new_tokens: 2)
    path = Path.join(dir, "c.safetensors")
    :ok = KVCache.save(result.kv_cache, path)

    # Same shapes, other weights; same weights, other dtype.
    other = Model.load!(Fixtures.path("q4-g64-tied"))
    assert {:error, %Qwen3.Error{kind: :incompatible_cache}} = KVCache.load(other, path)
    bf16 = Model.load!(Fixtures.path("dense-f32-tied"), dtype: :bf16)
    assert {:error, %Qwen3.Error{kind: :incompatible_cache}} = KVCache.load(bf16, path)

    assert {:error, %Qwen3.Error{kind: :cache_overflow}} = KVCache.load(model, path, max_len: 2)
    weights = Path.join(Fixtures.path("dense-f32-tied"), "model.safetensors")
    assert {:error, %Qwen3.Error{kind: :invalid_argument}} = KVCache.load(model, weights)
    assert {:error, %Qwen3.Error{}} = KVCache.load(model, Path.join(dir, "missing.safetensors"))

    assert {:error, %Qwen3.Error{kind: :invalid_argument}} =
             KVCache.save(%{result.kv_cache | tokens: nil}, path)
  end
end
