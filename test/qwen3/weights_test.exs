defmodule Qwen3.WeightsTest do
  # How weights are held: as the checkpoint stores them by default (packed 4/8-bit, bf16),
  # resident within 5% of the checkpoint's tensor bytes; widened on request; and a load
  # that cannot fit is refused before anything is allocated.
  use ExUnit.Case, async: true

  alias Qwen3.{Fixtures, Model}

  # The tensor bytes of a checkpoint: each safetensors file less its header.
  defp checkpoint_bytes(variant) do
    for file <- Path.wildcard(Path.join(Fixtures.path(variant), "*.safetensors")), reduce: 0 do
      sum ->
        <<header::little-unsigned-64, _::binary>> = File.read!(file)
        sum + File.stat!(file).size - 8 - header
    end
  end

  for variant <- ["q4-g64-tied", "q8-g128-untied", "q-mixed-tied", "dense-bf16-untied", "dense-f16-untied"] do
    test "#{variant} stays as stored, within 5% of the checkpoint" do
      model = Model.load!(Fixtures.path(unquote(variant)))
      stored = checkpoint_bytes(unquote(variant))
      assert model.info.weights == :stored
      assert model.info.dtype == :f32
      if String.starts_with?(unquote(variant), "q"), do: assert(model.info.quantized == :packed)
      ratio = model.info.weight_bytes / stored
      assert ratio >= 0.95 and ratio <= 1.05, "resident #{model.info.weight_bytes} B for #{stored} B stored"
    end
  end

  test "widened weights are float32 (quantized ones dequantized)" do
    packed = Model.load!(Fixtures.path("q4-g64-tied"))
    widened = Model.load!(Fixtures.path("q4-g64-tied"), weights: :widened)
    assert widened.info.quantized == :dense and widened.info.weights == :widened
    # 4 bits + a bf16 scale and bias per 64 weights = 4.5 bits, against 32.
    assert_in_delta widened.info.weight_bytes / packed.info.weight_bytes, 32 / 4.5, 0.5

    # The deprecated spelling still works.
    assert Model.load!(Fixtures.path("q4-g64-tied"), quantized: :dense).info.weights == :widened
  end
end

defmodule Qwen3.WeightsMemoryTest do
  # Not async: it reads the process-wide MLX allocator.
  use ExUnit.Case, async: false

  alias Qwen3.{Fixtures, Model}
  import Qwen3.MemoryHelpers

  test "a load that cannot fit is refused before allocating, and names the sizes" do
    before = settled_active()

    assert {:error, %Qwen3.Error{kind: :out_of_memory, message: msg}} =
             Model.load(Fixtures.path("dense-f32-tied"), memory_limit: 1000)

    assert msg =~ "GB"
    assert Qwen3.Memory.stats!().active == before
    assert {:ok, _} = Model.load(Fixtures.path("dense-f32-tied"), memory_limit: 1_000_000_000)
    assert_raise ArgumentError, fn -> Model.load(Fixtures.path("dense-f32-tied"), memory_limit: -1) end
    assert_raise ArgumentError, fn -> Model.load(Fixtures.path("dense-f32-tied"), quantized: :wrong) end

    assert {:error, %Qwen3.Error{kind: :invalid_argument}} =
             Model.load(Fixtures.path("dense-f32-tied"), weights: :bogus)
  end
end
