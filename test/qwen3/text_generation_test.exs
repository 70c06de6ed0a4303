defmodule Qwen3.TextGenerationTest do
  # The one-line API on a tiny model with the real Qwen3 tokenizer and chat template.
  use ExUnit.Case, async: true

  alias Qwen3.{Fixtures, Generate, KVCache, Tokenizer}

  setup_all do
    {:ok, model: Qwen3.load!(Fixtures.chat_model_path())}
  end

  test "a text prompt generates what its token ids generate", %{model: model} do
    {:ok, ids} = Tokenizer.encode(model.tokenizer, "Hello, world")
    {:ok, by_text} = Qwen3.generate(model, "Hello, world", max_new_tokens: 12)
    {:ok, {tokens, meta}} = Generate.generate(ids, model, max_new_tokens: 12)
    assert by_text.tokens == tokens
    assert by_text.text == meta.text
    assert by_text.text == Tokenizer.decode!(model.tokenizer, tokens, skip_special_tokens: true)
    assert %{prefill_ms: _, per_token_ms: _, total_ms: _} = by_text.timing
    assert Qwen3.generate!(model, "Hi", max_new_tokens: 2, profile_timing: false).timing == nil
  end

  test "a stop string spanning a token boundary ends the text just before it", %{model: model} do
    {:ok, full} = Qwen3.generate(model, "Once upon a time", max_new_tokens: 24)
    pieces = Enum.map(full.tokens, &Tokenizer.decode!(model.tokenizer, [&1]))

    # The end of token 5 and the start of token 6 (two characters of each where possible).
    {before, [a, b | _]} = Enum.split(pieces, 5)
    tail = String.slice(a, -2..-1)
    stop = tail <> String.slice(b, 0..1)
    assert String.length(stop) >= 2

    {:ok, stopped} = Qwen3.generate(model, "Once upon a time", max_new_tokens: 24, stop: [stop])
    assert stopped.finish_reason == :stop
    cut = :binary.match(full.text, stop) |> elem(0)
    assert stopped.text == binary_part(full.text, 0, cut)

    assert stopped.tokens == Enum.take(full.tokens, length(before) + 2) or
             List.starts_with?(full.tokens, stopped.tokens)

    # Streamed chunks never show any part of the stop string.
    streamed = Qwen3.stream(model, "Once upon a time", max_new_tokens: 24, stop: [stop]) |> Enum.join()
    assert streamed == stopped.text
  end

  test "the stream joins to the generated text, and halting it stops generation", %{model: model} do
    {:ok, full} = Qwen3.generate(model, "The sea", max_new_tokens: 20, sampler: :sample, seed: 3)

    chunks = Qwen3.stream(model, "The sea", max_new_tokens: 20, sampler: :sample, seed: 3) |> Enum.to_list()

    assert Enum.join(chunks) == full.text
    assert length(chunks) > 1

    {:ok, ids} = Tokenizer.encode(model.tokenizer, "The sea")
    cache = Qwen3.Model.init_kv_cache!(model, max_len: 256)
    taken = Qwen3.stream(model, ids, max_new_tokens: 200, kv_cache: cache, tokens: true) |> Enum.take(3)
    assert length(taken) == 3
    # Three tokens read, each fed once when the next step was built: nothing runs on.
    Process.sleep(50)
    assert KVCache.offset(cache) == {:ok, length(ids) + 3}
  end

  test "stream_to sends tokens then the result; a dead receiver stops it", %{model: model} do
    {:ok, ref} = Qwen3.stream_to(self(), model, "Hi", max_new_tokens: 6, seed: 1, sampler: :sample_host)
    {tokens, texts, result} = collect(ref, [], [])
    assert result.tokens == tokens and length(tokens) == 6
    assert Enum.join(texts) == result.text
    assert result.text == Qwen3.generate!(model, "Hi", max_new_tokens: 6, seed: 1, sampler: :sample_host).text

    parent = self()

    receiver =
      spawn(fn ->
        {:ok, ref} = Qwen3.stream_to(self(), model, "Hi", max_new_tokens: 100_000, max_len: 100_010)
        # Registered when stream_to returns, and alive while this receiver is.
        [{task, _}] = Registry.lookup(Qwen3.Registry, ref)
        send(parent, {:task, task})
        receive do: ({^ref, {:token, _, _}} -> exit(:bye))
      end)

    task = receive do: ({:task, task} -> task)
    monitor = Process.monitor(task)
    assert_receive {:DOWN, ^monitor, :process, ^task, _}, 5_000
    refute Process.alive?(receiver)
  end

  test "cancel stops a stream_to generation and drops its messages", %{model: model} do
    {:ok, ref} = Qwen3.stream_to(self(), model, "Hi", max_new_tokens: 100_000, max_len: 100_010)
    assert_receive {^ref, {:token, _, _}}, 5_000
    [{task, _}] = Registry.lookup(Qwen3.Registry, ref)
    assert Qwen3.cancel(ref) == :ok
    refute Process.alive?(task)
    refute_received {^ref, _}
    assert Qwen3.cancel(ref) == {:error, :not_found}
  end

  test "errors reach stream_to receivers and stream callers as tagged errors", %{model: model} do
    {:ok, ref} = Qwen3.stream_to(self(), model, [1, 999_999], max_new_tokens: 2)
    assert_receive {^ref, {:error, %Qwen3.Error{kind: :invalid_argument}}}, 5_000
    assert_raise Qwen3.Error, fn -> Qwen3.stream(model, [1, 999_999]) |> Enum.to_list() end
    assert {:error, %Qwen3.Error{kind: :cache_overflow}} = Qwen3.generate(model, "a b c d e f", max_len: 3)
  end

  test "generation ends with :length when the cache is full", %{model: model} do
    {:ok, ids} = Tokenizer.encode(model.tokenizer, "Hello")
    {:ok, r} = Qwen3.generate(model, ids, max_new_tokens: 50, max_len: length(ids) + 4)
    assert r.finish_reason == :length
    assert length(r.tokens) == 5
  end

  test "continuing a conversation from its cache equals generating it from scratch", %{model: model} do
    turn1 = [%{role: "user", content: "Hello!"}]
    {:ok, r1} = Qwen3.chat(model, turn1, max_new_tokens: 8, enable_thinking: false)
    turn2 = r1.messages ++ [%{role: "user", content: "And then?"}]

    {:ok, fresh} = Qwen3.chat(model, turn2, max_new_tokens: 8, enable_thinking: false)

    {:ok, continued} =
      Qwen3.chat(model, turn2, max_new_tokens: 8, enable_thinking: false, kv_cache: r1.kv_cache)

    assert continued.tokens == fresh.tokens
    assert continued.text == fresh.text

    # The cache kept what turn two's prompt shares with turn one. (Qwen3's template drops the
    # empty think block from earlier replies, so that is the first turn's prompt header.)
    {:ok, prompt2} = Qwen3.Prompt.to_ids(model, turn2, enable_thinking: false)
    shared = common_prefix(r1.kv_cache.tokens, prompt2)
    assert shared >= 8
    assert common_prefix(continued.kv_cache.tokens, prompt2) == length(prompt2)
    assert Enum.take(continued.kv_cache.tokens, shared) == Enum.take(r1.kv_cache.tokens, shared)
  end

  test "a cache whose history differs is cut back to the common prefix", %{model: model} do
    {:ok, a} = Qwen3.generate(model, "The cat sat on the mat", max_new_tokens: 6)
    {:ok, fresh} = Qwen3.generate(model, "The cat ran", max_new_tokens: 6)
    {:ok, reused} = Qwen3.generate(model, "The cat ran", max_new_tokens: 6, kv_cache: a.kv_cache)
    assert reused.tokens == fresh.tokens
  end

  test "chat separates the think part, stops at <|im_end|>, and returns the conversation", %{model: model} do
    assert Qwen3.split_thinking("<think>\nplan\n</think>\n\nAnswer.") == {"plan", "Answer."}
    assert Qwen3.split_thinking("<think>\nunfinished") == {"unfinished", ""}
    assert Qwen3.split_thinking("Just text") == {nil, "Just text"}

    im_end = Tokenizer.token_to_id(model.tokenizer, "<|im_end|>")
    # The random model never says <|im_end|> on its own: make its third token one.
    {:ok, r} = Qwen3.chat(model, [{:user, "Hi"}], max_new_tokens: 12)
    third = Enum.at(r.tokens, 2)
    {:ok, stopped} = Qwen3.chat(model, [{:user, "Hi"}], max_new_tokens: 12, stop: [third])
    assert stopped.finish_reason == :stop
    assert im_end in model.info.eos_token_ids
    assert [{:user, "Hi"}, %{role: "assistant", content: content}] = stopped.messages
    assert content == stopped.content
  end

  defp common_prefix(a, b), do: Enum.zip(a, b) |> Enum.take_while(fn {x, y} -> x == y end) |> length()

  defp collect(ref, tokens, texts) do
    receive do
      {^ref, {:token, text, id}} -> collect(ref, [id | tokens], [text | texts])
      {^ref, {:done, result}} -> {Enum.reverse(tokens), Enum.reverse(texts), result}
    after
      5_000 -> flunk("no reply")
    end
  end
end
