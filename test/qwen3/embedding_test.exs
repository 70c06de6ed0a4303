defmodule Qwen3.EmbeddingTest do
  # Qwen3.embed on a Qwen3-Embedding-shaped checkpoint (bare backbone, real tokenizer)
  # against mlx-lm's final hidden state at each text's appended <|endoftext|>, normalised
  # (make_fixtures.py): tokens equal, vectors within 1e-4 alone and in mixed-length batches.
  use ExUnit.Case, async: true

  alias Qwen3.{Embedding, Fixtures}

  @tol 1.0e-4

  setup_all do
    {meta, want} = Fixtures.embeddings()
    {:ok, model: Qwen3.load!(Fixtures.path("tiny-embedding")), meta: meta, want: want}
  end

  defp max_diff(a, b), do: Enum.zip_with(a, b, &abs(&1 - &2)) |> Enum.max()

  test "each text alone and all in one padded batch equal mlx-lm", %{model: model, meta: meta, want: want} do
    texts = meta["texts"]

    for {text, ids} <- Enum.zip(texts, meta["ids"]),
        do: assert(Embedding.tokens(model, text) == {:ok, ids})

    for {text, w} <- Enum.zip(texts, want) do
      {:ok, v} = Qwen3.embed(model, text)
      assert max_diff(v, w) <= @tol, "#{inspect(text)} alone"
    end

    # Mixed lengths in one batch, in two batches, and in batches of one: the same vectors.
    for batch_size <- [16, 2, 1] do
      {:ok, vs} = Qwen3.embed(model, texts, batch_size: batch_size)
      assert length(vs) == length(texts)

      for {v, w, i} <- Enum.zip([vs, want, 0..10]),
          do: assert(max_diff(v, w) <= @tol, "text #{i}, batch size #{batch_size}")
    end
  end

  test "an instruction formats the query as Qwen3-Embedding expects", %{model: model, meta: meta, want: want} do
    i = Enum.find_index(meta["texts"], &String.starts_with?(&1, "Instruct: "))
    {:ok, v} = Qwen3.embed(model, meta["query"], instruction: meta["instruction"])
    assert max_diff(v, Enum.at(want, i)) <= @tol
    {:ok, plain} = Qwen3.embed(model, meta["query"])
    assert max_diff(plain, v) > 1.0e-3, "without the instruction the vector differs"
  end

  test "dimensions keeps the first values, normalised again (MRL)", %{model: model, want: want} do
    {:ok, [v | _]} = Qwen3.embed(model, ["Paris is the capital and largest city of France."], dimensions: 16)
    assert length(v) == 16
    head = Enum.take(hd(want), 16)
    norm = :math.sqrt(Enum.reduce(head, 0.0, &(&1 * &1 + &2)))
    assert max_diff(v, Enum.map(head, &(&1 / norm))) <= @tol
    assert_in_delta Enum.reduce(v, 0.0, &(&1 * &1 + &2)), 1.0, 1.0e-5
  end

  test "bad input is a tagged error", %{model: model} do
    assert {:error, %Qwen3.Error{kind: :invalid_argument}} = Qwen3.embed(model, [])
    assert {:error, %Qwen3.Error{kind: :invalid_argument}} = Qwen3.embed(model, ["a", 1])
    assert {:error, %Qwen3.Error{kind: :invalid_argument}} = Qwen3.embed(model, "a", eos_token: "<|no such|>")
    assert_raise ArgumentError, ~r/dimensions/, fn -> Qwen3.embed(model, "a", dimensions: 0) end
    no_tokenizer = Qwen3.load!(Fixtures.path("dense-f32-tied"))
    assert {:error, %Qwen3.Error{kind: :not_found}} = Qwen3.embed(no_tokenizer, "a")
  end

  test "a serving batches concurrent callers' texts and gives each its own vectors", %{
    model: model,
    want: want
  } do
    {:ok, serving} = Qwen3.Embedding.Serving.start_link(model: model, batch_size: 8)
    {meta, _} = Fixtures.embeddings()
    texts = meta["texts"]
    # 12 callers, each with two of the texts (rotating), all at once.
    requests = for c <- 0..11, do: [Enum.at(texts, rem(c, 5)), Enum.at(texts, rem(c + 2, 5))]

    results =
      requests
      |> Enum.map(fn pair -> Task.async(fn -> Qwen3.Embedding.Serving.embed(serving, pair) end) end)
      |> Task.await_many(60_000)

    for {{:ok, [a, b]}, c} <- Enum.zip(results, 0..11) do
      assert max_diff(a, Enum.at(want, rem(c, 5))) <= @tol, "caller #{c}, first text"
      assert max_diff(b, Enum.at(want, rem(c + 2, 5))) <= @tol, "caller #{c}, second text"
    end

    stats = Qwen3.Embedding.Serving.stats(serving)
    assert %{requests: 12, texts: 24} = stats
    assert stats.batches < 12, "callers' texts share batches: #{inspect(stats)}"

    assert {:ok, v} = Qwen3.Embedding.Serving.embed(serving, hd(texts), dimensions: 8)
    assert length(v) == 8
    assert {:error, %Qwen3.Error{kind: :invalid_argument}} = Qwen3.Embedding.Serving.embed(serving, [])
  end
end
