defmodule Qwen3.SamplingTest do
  use ExUnit.Case, async: true

  alias Qwen3.{Fixtures, Generate, Model, Sampler}

  @prompt [3, 14, 15, 92, 65]

  setup_all do
    {:ok, model: Model.load!(Fixtures.path("dense-f32-tied"))}
  end

  defp tokens(model, opts) do
    {:ok, {tokens, _}} = Generate.generate(@prompt, model, Keyword.put_new(opts, :max_new_tokens, 16))
    tokens
  end

  test "every invalid sampling option is an ArgumentError naming it", %{model: model} do
    bad = [
      sampler: :beam,
      temperature: -1,
      temperature: "hot",
      top_p: 0,
      top_p: 1.5,
      top_k: 0,
      top_k: 2.5,
      min_p: 1.0,
      min_p: -0.1,
      repetition_penalty: 0,
      repetition_context_size: -1,
      seed: -1,
      seed: 1.5,
      rng_key: 42,
      max_new_tokens: 0,
      max_len: -3,
      loop: :gpu,
      stop: [-1],
      stop: [""],
      stop: :x,
      kv_cache: :nope,
      bogus: 1
    ]

    for {key, value} <- bad do
      error = assert_raise ArgumentError, fn -> Generate.generate(@prompt, model, [{key, value}]) end
      assert error.message =~ to_string(key), "#{key}: #{error.message}"
    end
  end

  test "stop strings need a tokenizer", %{model: model} do
    assert_raise ArgumentError, ~r/tokenizer/, fn -> Generate.generate(@prompt, model, stop: ["x"]) end
  end

  for sampler <- [:top_p_gpu, :top_p_cpu] do
    test "#{sampler}: same seed, same tokens; other seeds and no seed differ", %{model: model} do
      opts = [sampler: unquote(sampler), temperature: 1.5, top_p: 0.95]
      a = tokens(model, [seed: 7] ++ opts)
      assert a == tokens(model, [seed: 7] ++ opts)
      assert a != tokens(model, [seed: 8] ++ opts)
      assert tokens(model, opts) != tokens(model, opts)
      # Sampled, not greedy: the stream differs from argmax decoding.
      assert a != tokens(model, [])
    end

    test "#{sampler}: top_k 1 and a tiny top_p are greedy", %{model: model} do
      greedy = tokens(model, [])
      assert tokens(model, sampler: unquote(sampler), top_k: 1, seed: 1) == greedy
      assert tokens(model, sampler: unquote(sampler), top_p: 1.0e-6, seed: 2) == greedy
      assert tokens(model, sampler: unquote(sampler), min_p: 0.999, seed: 3) == greedy
    end
  end

  test ":rng_key from Sampler.key/1 equals the same :seed", %{model: model} do
    {:ok, key} = Sampler.key(0x1234_5678_9ABC)
    opts = [sampler: :top_p_gpu, temperature: 1.5]
    assert tokens(model, [rng_key: key] ++ opts) == tokens(model, [seed: 0x1234_5678_9ABC] ++ opts)
  end

  test "repetition penalty: 1.0 changes nothing, a strong one changes greedy output", %{model: model} do
    greedy = tokens(model, max_new_tokens: 24)
    assert tokens(model, max_new_tokens: 24, repetition_penalty: 1.0) == greedy
    penalised = tokens(model, max_new_tokens: 24, repetition_penalty: 5.0, repetition_context_size: 64)
    assert penalised != greedy
    # Every repeat in the penalised output would have to beat the unpenalised alternatives.
    assert length(Enum.uniq(penalised)) >= length(Enum.uniq(greedy))
  end

  test "temperature 0 with a top_p sampler is greedy", %{model: model} do
    assert tokens(model, sampler: :top_p_gpu, temperature: 0, seed: 5) == tokens(model, [])
    assert tokens(model, sampler: :top_p_cpu, temperature: 0, seed: 5) == tokens(model, [])
  end
end
