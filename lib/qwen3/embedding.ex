defmodule Qwen3.Embedding do
  @moduledoc """
  Text embeddings as Qwen3-Embedding computes them: each text tokenized with
  `<|endoftext|>` appended, every token through the model, and the final hidden state at
  that last token, L2-normalised (last-token pooling). Texts of different lengths share a
  batch left-padded, each row masked and positioned as if it ran alone.

      {:ok, model} = Qwen3.load("Qwen/Qwen3-Embedding-0.6B")
      {:ok, [query]} = Qwen3.embed(model, ["What is the capital of France?"],
                                   instruction: "Given a web search query, retrieve relevant passages that answer the query")
      {:ok, docs} = Qwen3.embed(model, ["Paris is the capital of France.", "Berlin is in Germany."])
      # Vectors are unit length: the dot product is the cosine similarity.

  Qwen3-Embedding checkpoints are bare backbones (tensors without the `model.` prefix, no
  LM head); they load with `Qwen3.load/2` like any Qwen3 and embed but do not generate.
  Any Qwen3 checkpoint embeds the same way.

  ## Options

  #{Qwen3.Options.docs(:embedding)}
  """
  alias Qwen3.{Array, Error, Model, Options, Tokenizer}

  @doc """
  Embeds `texts` (a list of strings; a single string gives a single vector). Returns
  `{:ok, vectors}`, each a list of floats of unit length, in the order of `texts`.
  """
  @spec embed(Model.t(), String.t() | [String.t()], keyword) ::
          {:ok, [float] | [[float]]} | {:error, Error.t()}
  def embed(model, text, opts \\ [])

  def embed(%Model{} = model, text, opts) when is_binary(text) do
    with {:ok, [vector]} <- embed(model, [text], opts), do: {:ok, vector}
  end

  def embed(%Model{} = model, texts, opts) when is_list(texts) do
    opts = Options.validate!(opts, :embedding)

    with {:ok, rows} <- token_rows(model, texts, opts) do
      # Rows of like length share a batch (less padding); results return in the callers' order.
      rows
      |> Enum.with_index()
      |> Enum.sort_by(fn {ids, _} -> length(ids) end)
      |> Enum.chunk_every(opts[:batch_size])
      |> Enum.reduce_while({:ok, []}, fn batch, {:ok, done} ->
        case embed_batch(model, Enum.map(batch, &elem(&1, 0))) do
          {:ok, vectors} -> {:cont, {:ok, Enum.zip(Enum.map(batch, &elem(&1, 1)), vectors) ++ done}}
          error -> {:halt, error}
        end
      end)
      |> case do
        {:ok, indexed} ->
          vectors = indexed |> Enum.sort_by(&elem(&1, 0)) |> Enum.map(&elem(&1, 1))
          {:ok, Enum.map(vectors, &truncate(&1, opts[:dimensions]))}

        error ->
          error
      end
    end
  end

  def embed!(model, texts, opts \\ []), do: Error.unwrap!(embed(model, texts, opts))

  @doc """
  Token rows already ending in the EOS token → unit vectors, one batch, left-padded here.
  For callers that tokenize themselves (and for `Qwen3.Embedding.Serving`).
  """
  @spec embed_batch(Model.t(), [[non_neg_integer]]) :: {:ok, [[float]]} | {:error, Error.t()}
  def embed_batch(%Model{} = model, [_ | _] = rows) do
    width = rows |> Enum.map(&length/1) |> Enum.max()
    padding = Enum.map(rows, &(width - length(&1)))
    # Padding slots are masked out; their id only has to be a valid one.
    padded = Enum.zip_with(rows, padding, fn ids, pad -> List.duplicate(hd(ids), pad) ++ ids end)

    with {:ok, ids} <- Array.from_list(padded, device: model.device, dtype: :u32),
         {:ok, pooled} <- Model.pooled_embeddings(model, ids, padding),
         do: Array.to_list(pooled)
  end

  @doc "The token ids `embed/3` runs for `text`: the instruction format, truncation and EOS applied."
  @spec tokens(Model.t(), String.t(), keyword) :: {:ok, [non_neg_integer]} | {:error, Error.t()}
  def tokens(%Model{} = model, text, opts \\ []) when is_binary(text) do
    opts = Options.validate!(opts, :embedding)

    with {:ok, [ids]} <- token_rows(model, [text], opts), do: {:ok, ids}
  end

  @doc false
  # Texts → token rows as `embed/3` runs them (options already validated).
  def token_rows(model, texts, opts) do
    with :ok <- check_texts(texts),
         {:ok, tokenizer} <- tokenizer(model),
         do: encode_all(tokenizer, texts, opts)
  end

  defp check_texts([]), do: {:error, %Error{kind: :invalid_argument, message: "no texts to embed"}}

  defp check_texts(texts) do
    if Enum.all?(texts, &is_binary/1),
      do: :ok,
      else: {:error, %Error{kind: :invalid_argument, message: "texts must be strings"}}
  end

  defp tokenizer(%Model{tokenizer: %Tokenizer{} = t}), do: {:ok, t}

  defp tokenizer(%Model{path: path}),
    do: {:error, %Error{kind: :not_found, message: "#{path} has no tokenizer.json: embeddings need one"}}

  defp encode_all(tokenizer, texts, opts) do
    case Tokenizer.token_to_id(tokenizer, opts[:eos_token]) do
      nil ->
        {:error,
         %Error{kind: :invalid_argument, message: "the tokenizer has no token #{inspect(opts[:eos_token])}"}}

      eos ->
        Enum.reduce_while(texts, {:ok, []}, fn text, {:ok, acc} ->
          case Tokenizer.encode(tokenizer, format(text, opts[:instruction])) do
            {:ok, ids} -> {:cont, {:ok, [Enum.take(ids, opts[:max_length] - 1) ++ [eos] | acc]}}
            error -> {:halt, error}
          end
        end)
        |> then(fn result -> with {:ok, rows} <- result, do: {:ok, Enum.reverse(rows)} end)
    end
  end

  # Qwen3-Embedding's instruction format for queries (documents go without one).
  defp format(text, nil), do: text
  defp format(text, instruction), do: "Instruct: #{instruction}\nQuery:#{text}"

  @doc false
  # Matryoshka (MRL): the first `dims` values, normalised again.
  def truncate(vector, nil), do: vector

  def truncate(vector, dims) do
    head = Enum.take(vector, dims)
    norm = head |> Enum.reduce(0.0, &(&1 * &1 + &2)) |> :math.sqrt() |> max(1.0e-12)
    Enum.map(head, &(&1 / norm))
  end
end
