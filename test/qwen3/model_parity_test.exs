defmodule Qwen3.ModelParityTest do
  # Through the NIF, against mlx-lm's golden outputs on the same tiny checkpoints:
  # last-position logits (float32: ≤ 1e-4; half precision: ≤ 1e-2, measured bit-identical)
  # and 32 greedy tokens, with both the Elixir-driven layer loop and the all-native step.
  use ExUnit.Case, async: true

  alias Qwen3.{Array, Fixtures, Generate, Model}

  @dtypes %{"float32" => nil, "bfloat16" => :bf16, "float16" => :f16}

  # The same checks on every device: `mix test --include metal` adds Apple's GPU (or MLX's
  # CUDA build); only the CPU runs by default. In float32 on the CPU, both with the weights
  # as stored (the packed kernels) and widened at load.
  for device <- [:cpu, :gpu],
      variant <- Fixtures.variants(),
      compute <- Fixtures.computes(variant),
      weights <- if(compute == "float32" and device == :cpu, do: [:stored, :widened], else: [:stored]) do
    if device == :gpu, do: @tag(:metal)

    test "#{variant} computed in #{compute} on #{device}, weights #{weights}, matches mlx-lm" do
      {variant, compute, device} = {unquote(variant), unquote(compute), unquote(device)}

      model =
        Model.load!(Fixtures.path(variant), dtype: @dtypes[compute], device: device, weights: unquote(weights))

      if compute == "float32", do: assert(model.info.dtype == :f32)
      assert model.info.weights == unquote(weights)
      tolerance = if compute == "float32", do: 1.0e-4, else: 1.0e-2

      for {prompt, want} <- Enum.zip(Fixtures.prompts(variant), Fixtures.logits(variant, compute)) do
        cache = Model.init_kv_cache!(model, max_len: 64)
        {:ok, logits} = Model.forward(model, Array.from_list!([prompt], device: device), cache)
        got = logits |> Array.astype(:f32) |> elem(1) |> Array.to_list!() |> List.flatten()
        diff = Enum.zip_with(got, want, &abs(&1 - &2)) |> Enum.max()
        assert diff <= tolerance, "#{variant}/#{compute}: max |Δlogit| #{diff}"
      end

      [first | _] = Fixtures.prompts(variant)
      want = Fixtures.greedy(variant, compute)

      for loop <- [:elixir, :native] do
        {:ok, {tokens, meta}} = Generate.generate(first, model, max_new_tokens: length(want), loop: loop)
        assert tokens == want, "#{variant}/#{compute} #{loop} loop: greedy tokens differ from mlx-lm"
        assert meta.finish_reason == :length
      end
    end
  end
end
