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

  for sampler <- [:sample, :sample_host] do
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
    opts = [sampler: :sample, temperature: 1.5]
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
    assert tokens(model, sampler: :sample, temperature: 0, seed: 5) == tokens(model, [])
    assert tokens(model, sampler: :sample_host, temperature: 0, seed: 5) == tokens(model, [])
  end

  test "deprecated sampler names are aliases that warn once", %{model: model} do
    opts = [temperature: 1.5, seed: 4]

    warned =
      ExUnit.CaptureIO.capture_io(:stderr, fn ->
        assert tokens(model, [sampler: :top_p_gpu] ++ opts) == tokens(model, [sampler: :sample] ++ opts)
        assert tokens(model, [sampler: :top_p_cpu] ++ opts) == tokens(model, [sampler: :sample_host] ++ opts)
      end)

    # Once per name and VM: another test may have warned first.
    assert warned == "" or warned =~ "deprecated"
  end

  describe "unset sampling options come from generation_config.json" do
    @describetag :tmp_dir

    # The fixtures carry Qwen3's published generation config: 0.6 / 0.95 / 20.
    defp settings(model, opts), do: Sampler.spec!(model, opts).settings

    test "precedence: the call, then generation_config.json, then the defaults", %{model: model, tmp_dir: tmp} do
      from_config = settings(model, sampler: :sample)
      assert_in_delta from_config.temperature, 0.6, 1.0e-6
      assert_in_delta from_config.top_p, 0.95, 1.0e-6
      assert from_config.top_k == 20
      assert from_config.sampler == :sample

      from_call = settings(model, sampler: :sample_host, temperature: 1.2, top_k: nil)
      assert {from_call.sampler, from_call.top_k} == {:sample_host, 0}
      assert_in_delta from_call.temperature, 1.2, 1.0e-6
      assert_in_delta from_call.top_p, 0.95, 1.0e-6

      # The same checkpoint without generation_config.json: temperature 1, filters off.
      bare = Path.join(tmp, "bare")
      File.cp_r!(Fixtures.path("dense-f32-tied"), bare)
      File.rm!(Path.join(bare, "generation_config.json"))
      defaults = settings(Model.load!(bare), sampler: :sample)
      assert {defaults.temperature, defaults.top_p, defaults.top_k, defaults.min_p} == {1.0, 1.0, 0, 0.0}

      # Greedy unless the call says otherwise, whatever the config holds.
      assert settings(model, []).sampler == :greedy
    end

    test "the sampler draws with the resolved settings", %{model: model} do
      unset = tokens(model, sampler: :sample, seed: 9)
      assert unset == tokens(model, sampler: :sample, seed: 9, temperature: 0.6, top_p: 0.95, top_k: 20)
      assert unset != tokens(model, sampler: :sample, seed: 9, temperature: 1.0, top_p: 1.0, top_k: nil)
    end
  end
end
