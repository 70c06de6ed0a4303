defmodule Qwen3.GenerateTest do
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO
  alias Qwen3.{Array, Fixtures, Generate, KVCache, Model}

  setup_all do
    {:ok, model: Model.load!(Fixtures.path("dense-f32-tied"))}
  end

  test "cached decoding equals recomputing the whole sequence each step", %{model: model} do
    prompt = hd(Fixtures.prompts("dense-f32-tied"))
    {:ok, {cached, _}} = Generate.generate(prompt, model, max_new_tokens: 12)

    recomputed =
      Enum.reduce(1..12, [], fn _, acc ->
        seq = prompt ++ Enum.reverse(acc)
        cache = Model.init_kv_cache!(model, max_len: 64)
        {:ok, logits} = Model.forward(model, Array.from_list!([seq]), cache)
        [argmax(logits) | acc]
      end)
      |> Enum.reverse()

    assert cached == recomputed
  end

  test "continuing from the returned cache equals one-shot generation", %{model: model} do
    prompt = [5, 6, 7, 8]
    {:ok, {one_shot, _}} = Generate.generate(prompt, model, max_new_tokens: 10)

    {:ok, {first, %{kv_cache: cache}}} = Generate.generate(prompt, model, max_new_tokens: 4)
    assert first == Enum.take(one_shot, 4)
    {:ok, offset} = KVCache.offset(cache)
    assert offset == length(prompt) + 3

    {:ok, {rest, _}} = Generate.generate(prompt ++ first, model, max_new_tokens: 6, kv_cache: cache)
    assert first ++ rest == one_shot
  end

  test "a batch of two prompts with left padding equals each prompt alone", %{model: model} do
    short = [11, 12, 13]
    long = [21, 22, 23, 24, 25, 26]
    pad = length(long) - length(short)

    alone =
      for p <- [short, long] do
        cache = Model.init_kv_cache!(model, max_len: 16)
        {:ok, l} = Model.forward(model, Array.from_list!([p]), cache)
        Array.to_list!(l) |> List.flatten()
      end

    cache = Model.init_kv_cache!(model, batch_size: 2, max_len: 16)
    :ok = KVCache.set_left_padding(cache, [pad, 0])
    {:ok, l} = Model.forward(model, Array.from_list!([List.duplicate(0, pad) ++ short, long]), cache)
    [[batched_short], [batched_long]] = Array.to_list!(l)

    for {got, want} <- [{batched_short, Enum.at(alone, 0)}, {batched_long, Enum.at(alone, 1)}] do
      assert Enum.zip_with(got, want, &abs(&1 - &2)) |> Enum.max() < 1.0e-4
    end
  end

  test "invalid options raise ArgumentError", %{model: model} do
    for bad <- [[max_new_tokens: 0], [sampler: :beam], [loop: :gpu], [stop: ["x"]], [bogus: 1]] do
      assert_raise ArgumentError, fn -> Generate.generate([1, 2], model, bad) end
    end

    assert {:error, %Qwen3.Error{kind: :empty_prompt}} = Generate.generate([], model)
  end

  test "stop ids end generation with :stop", %{model: model} do
    {:ok, {tokens, _}} = Generate.generate([3, 14, 15, 92, 65], model, max_new_tokens: 8)
    stop_at = Enum.at(tokens, 2)
    {:ok, {stopped, meta}} = Generate.generate([3, 14, 15, 92, 65], model, max_new_tokens: 8, stop: [stop_at])
    assert stopped == Enum.take(tokens, Enum.find_index(tokens, &(&1 == stop_at)) + 1)
    assert meta.finish_reason == :stop
  end

  @tag :tmp_dir
  test "mix qwen3.generate prints the JSON contract and dumps logits", %{tmp_dir: tmp} do
    variant = "q4-g32-untied"
    [prompt | _] = Fixtures.prompts(variant)
    want = Fixtures.greedy(variant, "float32") |> Enum.take(6)
    dump = Path.join(tmp, "logits.f32")

    out =
      capture_io(fn ->
        Mix.Tasks.Qwen3.Generate.run(
          ~w(--model #{Fixtures.path(variant)} --prompt-ids #{Enum.join(prompt, ",")} --max-new-tokens 6
             --sampler greedy --format json --dump-logits #{dump})
        )
      end)

    assert out =~ ~s("tokens":[#{Enum.join(want, ",")}])
    assert out =~ ~s("finish_reason":"length")
    assert out =~ ~s("text":null)
    assert out =~ ~s("prefill_ms":)
    logits = for <<v::float-32-little <- File.read!(dump)>>, do: v
    assert length(logits) == 6 * 1000
    first = Enum.take(logits, 1000)
    golden = hd(Fixtures.logits(variant, "float32"))
    assert Enum.zip_with(first, golden, &abs(&1 - &2)) |> Enum.max() <= 1.0e-4
  end

  defp argmax(logits) do
    row = logits |> Array.to_list!() |> List.flatten()
    row |> Enum.with_index() |> Enum.max_by(&elem(&1, 0)) |> elem(1)
  end
end
