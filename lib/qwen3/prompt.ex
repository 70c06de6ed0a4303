defmodule Qwen3.Prompt do
  @moduledoc """
  What the API accepts as a prompt, turned into token ids: text (tokenized as is), token
  ids (a list, `[ids]`, or an Nx tensor of shape `{n}` or `{1, n}`, when Nx is loaded;
  there is no Nx dependency), or chat messages (maps with `:role` and `:content`, or
  `{role, content}` tuples, rendered with the checkpoint's chat template).
  """
  alias Qwen3.{ChatTemplate, Error, Model, Tokenizer}

  @doc "Whether `prompt` is a list of chat messages."
  @spec chat?(term) :: boolean
  def chat?(prompt), do: match?([m | _] when is_map(m) or is_tuple(m), prompt)

  @doc """
  The prompt's token ids. `chat_opts` are the checked chat options (`Qwen3.Options`,
  `:chat`), used for messages. Text needs a tokenizer, messages a chat template too.
  Ids in the wrong form raise `ArgumentError`.
  """
  @spec to_ids(Model.t(), term, keyword) :: {:ok, [non_neg_integer]} | {:error, Error.t()}
  def to_ids(%Model{} = model, text, _chat_opts) when is_binary(text) do
    with {:ok, tok} <- tokenizer(model), do: Tokenizer.encode(tok, text)
  end

  def to_ids(%Model{} = model, messages, chat_opts) when is_list(messages) and messages != [] do
    if chat?(messages) do
      with {:ok, tok} <- tokenizer(model),
           {:ok, template} <- template(model),
           {:ok, text} <- ChatTemplate.render(template, messages, chat_opts),
           do: Tokenizer.encode(tok, text)
    else
      {:ok, ids!(messages)}
    end
  end

  def to_ids(_model, ids, _chat_opts), do: {:ok, ids!(ids)}

  @doc "Token ids as a flat list of non-negative integers; anything else raises `ArgumentError`."
  @spec ids!(term) :: [non_neg_integer]
  def ids!(%{__struct__: Nx.Tensor} = tensor) do
    if Code.ensure_loaded?(Nx),
      do: tensor |> then(&apply(Nx, :to_flat_list, [&1])) |> ids!(),
      else: raise(ArgumentError, "got an Nx tensor but Nx is not loaded")
  end

  def ids!([row]) when is_list(row), do: ids!(row)

  def ids!(ids) when is_list(ids) do
    if Enum.all?(ids, &(is_integer(&1) and &1 >= 0)),
      do: ids,
      else: raise(ArgumentError, "input_ids must be non-negative integers, got #{inspect(ids, limit: 8)}")
  end

  def ids!(other),
    do: raise(ArgumentError, "input_ids must be a list of token ids, got #{inspect(other, limit: 8)}")

  @doc "`:ok` when the prompt has ids and every one is in `model`'s vocabulary."
  @spec check_ids([non_neg_integer], Model.t()) :: :ok | {:error, Error.t()}
  def check_ids([], _model), do: {:error, %Error{kind: :empty_prompt, message: "the prompt has no tokens"}}

  def check_ids(ids, %Model{info: %{vocab_size: vocab}}) do
    case Enum.find(ids, &(&1 >= vocab)) do
      nil ->
        :ok

      id ->
        message = "token id #{id} is outside the vocabulary (0..#{vocab - 1})"
        {:error, %Error{kind: :invalid_argument, message: message}}
    end
  end

  @doc "The ids that end a chat turn: end-of-turn and end-of-text (none without a tokenizer)."
  @spec chat_stop_ids(Model.t()) :: [non_neg_integer]
  def chat_stop_ids(%Model{tokenizer: nil}), do: []

  def chat_stop_ids(%Model{tokenizer: tok}),
    do: ["<|im_end|>", "<|endoftext|>"] |> Enum.map(&Tokenizer.token_to_id(tok, &1)) |> Enum.reject(&is_nil/1)

  defp tokenizer(%Model{tokenizer: nil, path: path}),
    do: {:error, %Error{kind: :not_found, message: "#{path} has no tokenizer.json: pass token ids instead"}}

  defp tokenizer(%Model{tokenizer: tok}), do: {:ok, tok}

  defp template(%Model{chat_template: nil, path: path}),
    do: {:error, %Error{kind: :not_found, message: "#{path} has no chat template"}}

  defp template(%Model{chat_template: t}), do: {:ok, t}
end
