defmodule Qwen3.ServingTest do
  # Continuous batching on one node: results equal one-at-a-time generation, the queue is
  # bounded, callers that leave free their slot, timeouts and bad input come back tagged.
  use ExUnit.Case, async: false

  import Qwen3.TestHelpers
  alias Qwen3.{Error, Fixtures, Model, Serving}

  setup_all do
    {:ok,
     model: Model.load!(Fixtures.path("dense-f32-tied")),
     moe: Model.load!(Fixtures.path("moe-q4-g64")),
     chat: Model.load!(Fixtures.chat_model_path())}
  end

  defp start_serving(model, opts) do
    name = :"serving_#{System.unique_integer([:positive])}"
    start_supervised!({Serving, [model: model, name: name] ++ opts})
    name
  end

  # Unequal prompts, samplers, seeds and lengths, so rows join and leave at different steps.
  defp request(i) do
    sampler = Enum.at([:greedy, :sample, :sample_host], rem(i, 3))
    prompt = for j <- 0..(1 + rem(i * 5, 11)), do: rem(i * 37 + j * 13, 1000)
    {prompt, [sampler: sampler, seed: i, temperature: 0.9, max_new_tokens: 3 + rem(i * 7, 13)]}
  end

  defp concurrently(fun, n),
    do: 0..(n - 1) |> Enum.map(&Task.async(fn -> fun.(&1) end)) |> Task.await_many(60_000)

  test "batched results equal one-at-a-time results, greedy and sampled", %{model: model} do
    batched_equals_one_at_a_time(model)
  end

  test "a Qwen3-MoE model (4-bit experts) batches likewise", %{moe: moe} do
    assert moe.info.num_experts == 8
    batched_equals_one_at_a_time(moe)
  end

  defp batched_equals_one_at_a_time(model) do
    name = start_serving(model, batch_size: 4)
    n = 14

    expected =
      for i <- 0..(n - 1) do
        {prompt, opts} = request(i)
        result = Qwen3.generate!(model, prompt, opts)
        {result.tokens, result.finish_reason}
      end

    got =
      concurrently(
        fn i ->
          {prompt, opts} = request(i)
          {:ok, result} = Serving.generate(name, prompt, opts)
          {result.tokens, result.finish_reason}
        end,
        n
      )

    assert got == expected
    # Sampled rows differ between seeds, and rows really shared steps.
    assert expected |> Enum.uniq() |> length() > n / 2
    stats = Serving.stats(name)
    assert %{completed: ^n, submitted: ^n, active: 0, queue_length: 0} = stats
    assert stats.decode_rows > stats.decode_steps
    assert stats.tokens_generated == expected |> Enum.map(&length(elem(&1, 0))) |> Enum.sum()
  end

  test "chunked prefill and a reused prompt prefix give the same tokens", %{model: model} do
    name = start_serving(model, batch_size: 2, prefill_chunk: 3)
    shared = Enum.to_list(100..110)
    prompts = [shared ++ [1, 2, 3], shared ++ [4], shared ++ [1, 2, 3], Enum.to_list(500..520)]

    for prompt <- prompts do
      {:ok, result} = Serving.generate(name, prompt, max_new_tokens: 8)
      assert result.tokens == Qwen3.generate!(model, prompt, max_new_tokens: 8).tokens
    end

    # Two long prompts prefilled chunk by chunk while the other row decodes.
    got = concurrently(&Serving.generate(name, Enum.at(prompts, &1 * 3), max_new_tokens: 12), 2)

    assert for({:ok, r} <- got, do: r.tokens) ==
             for(i <- [0, 3], do: Qwen3.generate!(model, Enum.at(prompts, i), max_new_tokens: 12).tokens)
  end

  test "text, stop strings and chat messages on the real vocabulary", %{chat: model} do
    name = start_serving(model, batch_size: 3)
    messages = [%{role: "user", content: "Hi"}]

    cases = [
      {"The capital of France is", [max_new_tokens: 10]},
      {"Once upon a time", [max_new_tokens: 12, stop: ["e"], sampler: :sample, seed: 3]},
      {messages, [max_new_tokens: 9, enable_thinking: false]},
      {"1, 2, 3,", [max_new_tokens: 6, sampler: :sample_host, seed: 5]}
    ]

    got =
      concurrently(
        fn i ->
          {prompt, opts} = Enum.at(cases, i)
          Serving.generate(name, prompt, opts)
        end,
        length(cases)
      )

    for {{prompt, opts}, {:ok, result}} <- Enum.zip(cases, got) do
      want = Qwen3.generate!(model, prompt, opts)

      assert Map.take(result, [:text, :tokens, :finish_reason]) ==
               Map.take(want, [:text, :tokens, :finish_reason])

      assert result.timing.queue_ms >= 0
      refute Map.has_key?(result, :kv_cache)
    end

    streamed = Serving.stream(name, "Once upon a time", max_new_tokens: 12) |> Enum.join()
    assert streamed == Qwen3.generate!(model, "Once upon a time", max_new_tokens: 12).text
  end

  test "a full serving answers :overloaded; callers that leave free their slot", %{model: model} do
    name = start_serving(model, batch_size: 1, max_queue: 1)
    long = fn -> Serving.generate(name, [1, 2, 3], max_new_tokens: 1000) end
    callers = for _ <- 1..2, do: spawn(long)
    assert eventually(fn -> match?(%{active: 1, queue_length: 1}, Serving.stats(name)) end)

    assert {:error, %Error{kind: :overloaded}} = Serving.generate(name, [4, 5], max_new_tokens: 2)
    assert Serving.stats(name).rejected == 1

    Enum.each(callers, &Process.exit(&1, :kill))
    assert eventually(fn -> match?(%{active: 0, queue_length: 0, cancelled: 2}, Serving.stats(name)) end)

    # The one slot is free again and its cache reused.
    assert {:ok, %{tokens: tokens}} = Serving.generate(name, [4, 5], max_new_tokens: 4)
    assert tokens == Qwen3.generate!(model, [4, 5], max_new_tokens: 4).tokens
  end

  test "halting a stream removes the request from the batch", %{model: model} do
    name = start_serving(model, batch_size: 2)
    chunks = Serving.stream(name, [7, 8, 9], max_new_tokens: 1000, tokens: true) |> Enum.take(3)
    expected = Qwen3.generate!(model, [7, 8, 9], max_new_tokens: 3).tokens
    assert Enum.map(chunks, &elem(&1, 1)) == expected
    assert eventually(fn -> match?(%{active: 0, cancelled: 1}, Serving.stats(name)) end)
    refute_received {_, {:token, _, _}}
  end

  test "requests time out while running and while queued", %{model: model} do
    name = start_serving(model, batch_size: 1)
    runner = Task.async(fn -> Serving.generate(name, [1, 2], max_new_tokens: 1000, timeout: 100) end)
    assert eventually(fn -> Serving.stats(name).active == 1 end)
    assert {:error, %Error{kind: :timeout}} = Serving.generate(name, [3], max_new_tokens: 5, timeout: 20)
    assert {:error, %Error{kind: :timeout}} = Task.await(runner)
    assert Serving.stats(name).timed_out == 2
  end

  test "bad input is tagged or raised, and the serving carries on", %{model: model} do
    name = start_serving(model, max_len: 16)

    assert_raise ArgumentError, ~r/kv_cache/, fn -> Serving.generate(name, [1], kv_cache: nil) end
    assert_raise ArgumentError, ~r/sampler/, fn -> Serving.generate(name, [1], sampler: :nope) end
    assert_raise ArgumentError, ~r/timeout/, fn -> Serving.generate(name, [1], timeout: -1) end
    assert {:error, %Error{kind: :empty_prompt}} = Serving.generate(name, [])
    assert {:error, %Error{kind: :invalid_argument}} = Serving.generate(name, [5000])
    assert {:error, %Error{kind: :cache_overflow}} = Serving.generate(name, Enum.to_list(1..17))
    assert {:error, %Error{kind: :not_found}} = Serving.generate(:no_such_serving, [1])
    assert {:error, %Error{kind: :not_found}} = Serving.generate(name, "text needs a tokenizer")

    # A generation that fills the slot ends with :length instead of overflowing it.
    assert {:ok, %{finish_reason: :length, tokens: tokens}} =
             Serving.generate(name, Enum.to_list(1..10), max_new_tokens: 50)

    assert length(tokens) == 7
    assert [pid] = Serving.members(name)

    assert Map.delete(Serving.stats(pid), :tokens_per_second) ==
             Map.delete(Serving.stats(name), :tokens_per_second)
  end
end
