defmodule Qwen3.BadInputTest do
  # The generated corpus of broken checkpoints (Qwen3.BadCheckpoints) and bad runtime input:
  # each gets a tagged error, and the same VM then loads and generates normally.
  use ExUnit.Case, async: true

  alias Qwen3.{BadCheckpoints, Fixtures, Generate, Model}

  @moduletag :tmp_dir

  test "every broken checkpoint in the corpus is refused with its error kind", %{tmp_dir: tmp} do
    corpus = BadCheckpoints.build(tmp)
    assert length(corpus) >= 50

    outcomes =
      for {name, dir, expected} <- corpus do
        case Model.load(dir) do
          {:error, %Qwen3.Error{kind: ^expected, message: msg}} when is_binary(msg) and msg != "" -> :ok
          other -> {name, expected, other}
        end
      end

    assert Enum.reject(outcomes, &(&1 == :ok)) == []
    assert_generates("dense-f32-tied")
  end

  test "bad runtime input: empty prompts, unknown ids, prompts past the cache" do
    model = Model.load!(Fixtures.chat_model_path())
    vocab = model.info.vocab_size

    assert {:error, %Qwen3.Error{kind: :empty_prompt}} = Generate.generate([], model)
    assert {:error, %Qwen3.Error{kind: :empty_prompt}} = Qwen3.generate(model, "")
    assert {:error, %Qwen3.Error{kind: :invalid_argument}} = Generate.generate([1, vocab], model)
    assert {:error, %Qwen3.Error{kind: :invalid_argument}} = Generate.generate([2 ** 40], model)

    assert {:error, %Qwen3.Error{kind: :cache_overflow}} =
             Generate.generate(Enum.to_list(1..20), model, max_len: 10)

    assert_raise ArgumentError, fn -> Generate.generate([-1], model) end
    assert_raise ArgumentError, fn -> Generate.generate([1.5], model) end
    assert_raise ArgumentError, fn -> Generate.generate("not ids", model) end
    assert_generates(model)
  end

  # Every numeric option, given negative, NaN-like or wrongly typed values.
  @bad_options [
    max_new_tokens: [0, -1, 1.5, :nan],
    max_len: [0, -5, :infinity],
    temperature: [-0.1, :nan, "hot"],
    top_p: [0, -0.5, 1.5, :nan],
    top_k: [-1, 0, 2.5],
    min_p: [-0.1, 1.5, :nan],
    repetition_penalty: [0, -1.0, :nan],
    repetition_context_size: [-1, 0.5],
    seed: [-1, 2 ** 64, 1.0],
    timeout: [-1, 1.5, :never],
    sampler: [:beam, "greedy"],
    stop: [[-1], [""], "stop"],
    loop: [:python]
  ]

  test "negative, NaN-like and mistyped options raise ArgumentError naming the option" do
    model = Model.load!(Fixtures.chat_model_path())

    for {key, values} <- @bad_options, value <- values do
      error = assert_raise ArgumentError, fn -> Generate.generate([1, 2], model, [{key, value}]) end
      assert error.message =~ inspect(key), "#{inspect(key)}=#{inspect(value)}: #{error.message}"
    end

    assert_generates(model)
  end

  defp assert_generates(variant) when is_binary(variant),
    do: assert_generates(Model.load!(Fixtures.path(variant)))

  defp assert_generates(model) do
    assert {:ok, {[_, _, _], %{finish_reason: :length}}} =
             Generate.generate([1, 2, 3], model, max_new_tokens: 3)
  end
end
