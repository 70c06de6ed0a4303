defmodule Qwen3.PrimitivesTest do
  # The fused blocks alone, as a custom loop calls them: `Model.attention/4` (writing its
  # layer of the KV cache, at offset 0 and then 3) and `Model.mlp/3`, against mlx-lm's own
  # layer-0 modules on the same float32 checkpoint and inputs. Tolerance 1e-4 absolute
  # (float32 sums in another order; measured ≤ 1.2e-5, the whole-model logits ≤ 2.5e-5).
  use ExUnit.Case, async: true

  alias Qwen3.{Array, Fixtures, KVCache, Model}

  @tolerance 1.0e-4

  setup_all do
    {:ok, model: Model.load!(Fixtures.path("dense-f32-tied")), golden: Fixtures.primitives("dense-f32-tied")}
  end

  defp array({shape, floats}), do: floats |> Array.encode(:f32) |> Array.from_binary!(shape, :f32)

  defp assert_matches(got, {shape, want}, what) do
    assert Array.shape(got) == shape, what
    {:ok, bin} = Array.to_binary(got)
    diff = for(<<v::float-32-native <- bin>>, do: v) |> Enum.zip_with(want, &abs(&1 - &2)) |> Enum.max()
    assert diff <= @tolerance, "#{what}: max |Δ| #{diff}"
  end

  test "attention over two chunks with its cache, and the MLP, equal mlx-lm's", %{model: m, golden: g} do
    cache = Model.init_kv_cache!(m, batch_size: 2, max_len: 16)

    {:ok, first} = Model.attention(m, 0, array(g["x1"]), cache)
    assert_matches(first, g["attention1"], "attention at offset 0")
    assert KVCache.offset(cache) == {:ok, 3}

    {:ok, second} = Model.attention(m, 0, array(g["x2"]), cache)
    assert_matches(second, g["attention2"], "attention at offset 3")
    assert KVCache.offset(cache) == {:ok, 5}

    {:ok, mlp} = Model.mlp(m, 0, array(g["x1"]))
    assert_matches(mlp, g["mlp"], "mlp")
  end

  test "bad input to the blocks is a tagged error", %{model: m, golden: g} do
    cache = Model.init_kv_cache!(m, batch_size: 2, max_len: 4)
    assert {:error, %Qwen3.Error{kind: :invalid_argument}} = Model.attention(m, 9, array(g["x1"]), cache)
    assert {:error, %Qwen3.Error{kind: :invalid_argument}} = Model.mlp(m, 2, array(g["x1"]))
    {:ok, _} = Model.attention(m, 0, array(g["x1"]), cache)
    assert {:error, %Qwen3.Error{kind: :cache_overflow}} = Model.attention(m, 0, array(g["x2"]), cache)
  end
end
