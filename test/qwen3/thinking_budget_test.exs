defmodule Qwen3.ThinkingBudgetTest do
  # `thinking_budget: n` closes an open <think> block after exactly n tokens, with every
  # sampler and in a serving, and leaves everything before that (and closed blocks) alone.
  use ExUnit.Case, async: true

  alias Qwen3.{Fixtures, Tokenizer}

  setup_all do
    model = Qwen3.load!(Fixtures.chat_model_path())
    ids = &Tokenizer.encode!(model.tokenizer, &1)
    close = Tokenizer.token_to_id(model.tokenizer, "</think>")
    {:ok, model: model, ids: ids, close: close}
  end

  defp run(model, prompt, opts), do: Qwen3.generate!(model, prompt, [max_new_tokens: 12] ++ opts).tokens

  test "the block closes after exactly n tokens, with every sampler", %{model: model, ids: ids, close: close} do
    prompt = ids.("<|im_start|>user\nWhy?<|im_end|>\n<|im_start|>assistant\n<think>")

    for sampler <- [:greedy, :sample, :sample_host], budget <- [0, 1, 5] do
      opts = [sampler: sampler, seed: 3, temperature: 1.0]
      free = run(model, prompt, opts)
      capped = run(model, prompt, [thinking_budget: budget] ++ opts)
      what = "#{sampler}, budget #{budget}"
      assert Enum.find_index(capped, &(&1 == close)) == budget, "#{what}: #{inspect(capped)}"
      # Nothing changes before the budget is spent, and the model would not have closed it.
      assert Enum.take(capped, budget) == Enum.take(free, budget), what
      refute Enum.at(free, budget) == close, what
    end
  end

  test "a prompt inside <think> counts its own tokens; a closed block is left alone", %{
    model: model,
    ids: ids,
    close: close
  } do
    inside = ids.("<|im_start|>assistant\n<think>\nLet me see")
    # Tokens after the last <think>: its distance from the end.
    after_think = Enum.find_index(Enum.reverse(inside), &(&1 == hd(ids.("<think>"))))
    assert after_think >= 2
    capped = run(model, inside, thinking_budget: after_think + 2)
    assert Enum.find_index(capped, &(&1 == close)) == 2

    closed = ids.("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert run(model, closed, thinking_budget: 0) == run(model, closed, [])
  end

  test "in a serving each request keeps its own budget", %{model: model, ids: ids, close: close} do
    {:ok, _} = Qwen3.Serving.start_link(model: model, name: :thinking_serving, batch_size: 4)
    prompt = ids.("<|im_start|>assistant\n<think>")

    results =
      for budget <- [0, 2, 4, 6] do
        Task.async(fn ->
          Qwen3.Serving.generate(:thinking_serving, prompt, thinking_budget: budget, max_new_tokens: 10)
        end)
      end
      |> Task.await_many(30_000)

    for {{:ok, r}, budget} <- Enum.zip(results, [0, 2, 4, 6]),
        do: assert(Enum.find_index(r.tokens, &(&1 == close)) == budget)
  end

  test "without a tokenizer it is a tagged error" do
    model = Qwen3.load!(Fixtures.path("dense-f32-tied"))
    assert {:error, %Qwen3.Error{kind: :not_found}} = Qwen3.generate(model, [1, 2], thinking_budget: 3)

    assert_raise ArgumentError, ~r/thinking_budget/, fn ->
      Qwen3.generate(model, [1, 2], thinking_budget: -1)
    end
  end
end
