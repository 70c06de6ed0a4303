defmodule Qwen3.Int8ActivationsTest do
  # `activations: :int8` through the NIF and the Elixir layer loop: used exactly where the
  # CPU has AVX-512 VNNI, off by default, and the greedy tokens those of mlx-lm running the
  # same method on the same packed weights (scripts/make_int8_fixtures.py; on this fixture
  # the Rust test measured all 32 equal). The kernels' bounds are in native/mlx/tests.
  use ExUnit.Case, async: true

  alias Qwen3.{Fixtures, Model}

  defp vnni? do
    case File.read("/proc/cpuinfo") do
      {:ok, info} -> info =~ ~r/\bavx512_vnni\b/ and info =~ ~r/\bavx512bw\b/
      _ -> false
    end
  end

  defp reference_greedy(variant) do
    Path.join([Fixtures.path(variant), "golden", "int8-greedy.txt"])
    |> File.read!()
    |> String.split()
    |> Enum.map(&String.to_integer/1)
  end

  test "int8 activations are used where the CPU runs them, and only when asked" do
    refute Model.load!(Fixtures.path("q4-g64-tied")).info.int8_activations
    model = Model.load!(Fixtures.path("q4-g64-tied"), activations: :int8)
    assert model.info.int8_activations == vnni?()
    # Dense weights have no int8 path.
    refute Model.load!(Fixtures.path("dense-bf16-untied"), activations: :int8).info.int8_activations
    assert_raise ArgumentError, fn -> Model.load(Fixtures.path("q4-g64-tied"), activations: :int4) end
  end

  test "greedy tokens equal mlx-lm's with the same rounding of the inputs, both loops" do
    model = Model.load!(Fixtures.path("q4-g64-tied"), activations: :int8)
    [prompt | _] = Fixtures.prompts("q4-g64-tied")
    want = if vnni?(), do: reference_greedy("q4-g64-tied"), else: Fixtures.greedy("q4-g64-tied", "float32")

    for loop <- [:elixir, :native] do
      {:ok, result} = Qwen3.generate(model, prompt, max_new_tokens: length(want), loop: loop)
      assert result.tokens == want, "#{loop} loop"
    end
  end
end
