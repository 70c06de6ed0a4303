defmodule Qwen3.Prompt do
  @moduledoc false
  # What the one-line API accepts as a prompt, turned into token ids: text (tokenized as
  # is), token ids (a list or an Nx tensor), or chat messages (rendered by the template).

  alias Qwen3.{ChatTemplate, Error, Generate, Model, Tokenizer}

  @chat_keys [:enable_thinking, :tools, :add_generation_prompt]

  @doc "Chat-template options, with their defaults."
  def chat_defaults, do: [enable_thinking: true, tools: nil, add_generation_prompt: true]

  def chat_keys, do: @chat_keys

  @spec to_ids(Model.t(), term, keyword) :: {:ok, [non_neg_integer]} | {:error, Error.t()}
  def to_ids(%Model{} = model, text, _opts) when is_binary(text) do
    with {:ok, tok} <- tokenizer(model), do: Tokenizer.encode(tok, text)
  end

  def to_ids(%Model{} = model, [first | _] = messages, opts) when is_map(first) or is_tuple(first) do
    with {:ok, tok} <- tokenizer(model),
         {:ok, template} <- template(model),
         {:ok, text} <- ChatTemplate.render(template, messages, Keyword.take(opts, @chat_keys)),
         do: Tokenizer.encode(tok, text)
  end

  def to_ids(_model, ids, _opts), do: {:ok, Generate.normalize_ids(ids)}

  defp tokenizer(%Model{tokenizer: nil, path: path}),
    do: {:error, %Error{kind: :not_found, message: "#{path} has no tokenizer.json: pass token ids instead"}}

  defp tokenizer(%Model{tokenizer: tok}), do: {:ok, tok}

  defp template(%Model{chat_template: nil, path: path}),
    do: {:error, %Error{kind: :not_found, message: "#{path} has no chat template"}}

  defp template(%Model{chat_template: t}), do: {:ok, t}

  @doc "Stop ids for chat: the end-of-turn and end-of-text tokens."
  def chat_stop_ids(%Model{tokenizer: nil}), do: []

  def chat_stop_ids(%Model{tokenizer: tok}),
    do: ["<|im_end|>", "<|endoftext|>"] |> Enum.map(&Tokenizer.token_to_id(tok, &1)) |> Enum.reject(&is_nil/1)
end
