defmodule Qwen3.KVQuantTest do
  # `kv_bits: 8 | 4`: the KV cache stores keys and values quantized (groups of 64) and the
  # greedy tokens equal mlx-lm's with its QuantizedKVCache on the same checkpoint, through
  # both loops; the cache takes (bits + 1) / 32 of float32's bytes. `kv_bits: 16`: float16.
  use ExUnit.Case, async: true

  alias Qwen3.{Fixtures, Model}

  setup_all do
    {:ok, model: Model.load!(Fixtures.path("dense-f32-tied"))}
  end

  defp golden(bits) do
    Path.join([Fixtures.path("dense-f32-tied"), "golden", "kv#{bits}-greedy.txt"])
    |> File.read!()
    |> String.split()
    |> Enum.map(&String.to_integer/1)
  end

  test "greedy tokens equal mlx-lm's QuantizedKVCache, both loops", %{model: model} do
    [prompt | _] = Fixtures.prompts("dense-f32-tied")

    for bits <- [8, 4], loop <- [:elixir, :native] do
      want = golden(bits)
      {:ok, r} = Qwen3.generate(model, prompt, kv_bits: bits, max_new_tokens: length(want), loop: loop)
      assert r.tokens == want, "#{bits}-bit KV, #{loop} loop"
    end

    # (bits + 1) / 32 of float32's bytes: a float32 scale and bias per 64 values.
    {:ok, plain} = model |> Model.init_kv_cache!(max_len: 64) |> Qwen3.KVCache.nbytes()
    {:ok, q8} = model |> Model.init_kv_cache!(max_len: 64, kv_bits: 8) |> Qwen3.KVCache.nbytes()
    assert q8 * 32 == plain * 9

    # The quantized cache is not a no-op: 8-bit KV already changes this random model's tokens.
    refute golden(8) == Fixtures.greedy("dense-f32-tied", "float32")
  end

  test "kv_bits: 16 stores float16: half the bytes, the float32 cache's greedy tokens" do
    # q4-g64-tied decodes through the CPU's layer node, which reads the float16 cache where
    # it lies; the tokens are mlx-lm's (float32 cache) on this checkpoint.
    model = Model.load!(Fixtures.path("q4-g64-tied"))
    [prompt | _] = Fixtures.prompts("q4-g64-tied")
    want = Fixtures.greedy("q4-g64-tied", "float32")

    for loop <- [:elixir, :native] do
      {:ok, r} = Qwen3.generate(model, prompt, kv_bits: 16, max_new_tokens: length(want), loop: loop)
      assert r.tokens == want, "float16 KV, #{loop} loop"
    end

    {:ok, plain} = model |> Model.init_kv_cache!(max_len: 64) |> Qwen3.KVCache.nbytes()
    {:ok, half} = model |> Model.init_kv_cache!(max_len: 64, kv_bits: 16) |> Qwen3.KVCache.nbytes()
    assert half * 2 == plain
  end

  test "bad settings are refused", %{model: model} do
    assert_raise ArgumentError, ~r/kv_bits/, fn -> Qwen3.generate(model, [1, 2], kv_bits: 3) end

    assert {:error, %Qwen3.Error{kind: :invalid_argument}} =
             Qwen3.generate(model, [1, 2], kv_bits: 8, kv_group_size: 128)
  end
end
