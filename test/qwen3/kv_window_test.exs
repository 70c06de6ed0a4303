defmodule Qwen3.KVWindowTest do
  # `max_kv_size`: a KV window that keeps its first tokens and drops the oldest after them,
  # so generation goes on past the window (as mlx-lm's RotatingKVCache).
  use ExUnit.Case, async: true

  alias Qwen3.{Fixtures, KVCache}

  setup_all do
    {:ok, model: Qwen3.load!(Fixtures.path("dense-f32-tied"))}
  end

  test "generation goes on past the window; before it fills, tokens equal a full cache", %{model: model} do
    prompt = Enum.to_list(100..109)
    {:ok, windowed} = Qwen3.generate(model, prompt, max_kv_size: 32, max_new_tokens: 80)
    assert length(windowed.tokens) == 80 and windowed.finish_reason == :length
    # The window held 32 slots; it was fed all the prompt and all but the last token.
    assert {:ok, 89} = KVCache.offset(windowed.kv_cache)

    full = Qwen3.generate!(model, prompt, max_new_tokens: 80, max_len: 128)
    # Until the window is full (32 - 10 new tokens fit, the 23rd is sampled from them) both agree.
    assert Enum.take(windowed.tokens, 23) == Enum.take(full.tokens, 23)

    # A window's conversation continues from where it stopped.
    more = prompt ++ windowed.tokens ++ [5, 6]
    {:ok, next} = Qwen3.generate(model, more, kv_cache: windowed.kv_cache, max_new_tokens: 10)
    assert length(next.tokens) == 10
  end

  test "a prompt longer than the window, or a cut-back window, is a tagged error", %{model: model} do
    assert {:error, %Qwen3.Error{kind: :cache_overflow}} =
             Qwen3.generate(model, Enum.to_list(1..40), max_kv_size: 32, max_new_tokens: 2)

    {:ok, r} = Qwen3.generate(model, Enum.to_list(1..10), max_kv_size: 16, max_new_tokens: 20)
    # It dropped tokens: it cannot go back to a shorter prefix.
    assert {:error, %Qwen3.Error{kind: :invalid_argument}} =
             Qwen3.generate(model, [1, 2, 3], kv_cache: r.kv_cache, max_new_tokens: 2)

    assert {:error, %Qwen3.Error{kind: :invalid_argument}} = KVCache.save(r.kv_cache, "/tmp/never-written")
  end
end
