defmodule Qwen3.LogprobsTest do
  # `:logprobs` against the logits themselves (`:dump_logits`, log-softmax computed here in
  # floats), and the same through a serving's batched steps. Tolerance 1e-4 on log-probabilities.
  use ExUnit.Case, async: true

  alias Qwen3.{Fixtures, Generate, Model, Serving}

  @prompt [3, 14, 15, 92, 65]

  setup_all do
    {:ok, model: Model.load!(Fixtures.path("dense-f32-tied"))}
  end

  defp log_softmax(bin) do
    row = for <<v::float-32-native <- bin>>, do: v
    max = Enum.max(row)
    log_z = max + :math.log(Enum.sum(Enum.map(row, &:math.exp(&1 - max))))
    Enum.map(row, &(&1 - log_z))
  end

  test "each token's log-probability and its top alternatives are the log-softmax of its logits", %{model: m} do
    opts = [max_new_tokens: 6, logprobs: true, top_logprobs: 3, dump_logits: true, sampler: :sample, seed: 2]
    {:ok, {tokens, meta}} = Generate.generate(@prompt, m, opts)
    assert length(meta.logprobs) == length(tokens)

    for {{id, entry}, bin} <- Enum.zip(Enum.zip(tokens, meta.logprobs), meta.logits) do
      want = log_softmax(bin)
      assert_in_delta entry.logprob, Enum.at(want, id), 1.0e-4
      best = want |> Enum.with_index() |> Enum.sort_by(fn {lp, i} -> {-lp, i} end) |> Enum.take(3)
      assert Enum.map(entry.top, &elem(&1, 0)) == Enum.map(best, &elem(&1, 1))
      for {{_, got}, {want_lp, _}} <- Enum.zip(entry.top, best), do: assert_in_delta(got, want_lp, 1.0e-4)
    end

    # Greedy takes the top token; without the option there is no :logprobs.
    {:ok, {_, greedy}} = Generate.generate(@prompt, m, max_new_tokens: 4, logprobs: true, top_logprobs: 1)
    for e <- greedy.logprobs, do: assert(e.logprob == elem(hd(e.top), 1))
    refute Map.has_key?(elem(Generate.generate!(@prompt, m, max_new_tokens: 2), 1), :logprobs)
  end

  test "a serving's batched rows report what a generation alone does", %{model: m} do
    name = :"logprobs_serving_#{System.unique_integer([:positive])}"
    start_supervised!({Serving, model: m, name: name, batch_size: 4})
    requests = for i <- 0..3, do: {[1 + i, 2, 3], [max_new_tokens: 5, logprobs: true, top_logprobs: i]}

    served =
      requests
      |> Enum.map(fn {p, o} -> Task.async(fn -> Serving.generate(name, p, o) end) end)
      |> Task.await_many(30_000)

    for {{:ok, got}, {p, o}} <- Enum.zip(served, requests) do
      alone = Qwen3.generate!(m, p, o)
      assert got.tokens == alone.tokens

      for {a, b} <- Enum.zip(got.logprobs, alone.logprobs) do
        assert_in_delta a.logprob, b.logprob, 1.0e-4
        assert Enum.map(a.top, &elem(&1, 0)) == Enum.map(b.top, &elem(&1, 0))
      end
    end
  end
end
