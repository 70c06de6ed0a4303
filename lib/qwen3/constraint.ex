defmodule Qwen3.Constraint do
  @moduledoc """
  Constrained decoding: output that cannot leave a JSON Schema, a regex, a choice of
  strings, or a Lark grammar, compiled by llguidance (the engine behind llama.cpp's, vLLM's
  and SGLang's structured outputs) against the model's vocabulary. At each step the tokens
  that would break it are dropped before any other filter, for every sampler; once the
  grammar is complete, only the end-of-sequence tokens are left, and generation stops with
  `:stop`. JSON comes compact (`", "` and `": "`, no other white space) unless the schema's
  `"x-guidance"` says otherwise.

  Options (of every generation call; at most one of the first four):

  #{Qwen3.Options.docs(Enum.filter(Qwen3.Options.schema(:generation), fn {k, _} -> k in [:json_schema, :regex, :choice, :grammar, :constraint_start] end))}

  One that cannot be compiled is `{:error, %Qwen3.Error{kind: :invalid_grammar}}` at the
  call, saying why; nothing is queued.
  """
  alias Qwen3.{Error, JSON, Model, Native, Tokenizer}

  @enforce_keys [:ref, :start]
  defstruct [:ref, :start]

  @typedoc "A compiled constraint; `start` is the token id it waits for (`</think>`), or nil."
  @type t :: %__MODULE__{ref: reference, start: non_neg_integer | nil}

  @kinds [:json_schema, :regex, :choice, :grammar]

  @doc "The options that name a constraint."
  def keys, do: @kinds

  @doc """
  The constraint `opts` ask for (checked generation options), or nil. `thinking?` says
  whether the prompt leaves the model in Qwen3's think block, which `:constraint_start`
  `:auto` then waits out.
  """
  @spec compile(Model.t(), keyword, boolean) :: {:ok, t | nil} | {:error, Error.t()}
  def compile(%Model{} = model, opts, thinking?) do
    case for key <- @kinds, opts[key] != nil, do: {key, opts[key]} do
      [] -> {:ok, nil}
      [{kind, source}] -> build(model, kind, source, start(model, opts[:constraint_start], thinking?))
      several -> raise ArgumentError, "use one of #{inspect(@kinds)}, not #{inspect(Keyword.keys(several))}"
    end
  end

  defp build(%Model{tokenizer: nil, path: path}, _kind, _source, _start),
    do:
      {:error,
       %Error{kind: :not_found, message: "#{path} has no tokenizer.json: constraints need its vocabulary"}}

  defp build(model, kind, source, start) do
    {native_kind, text, choices} =
      case kind do
        :json_schema -> {"json_schema", if(is_binary(source), do: source, else: JSON.encode!(source)), []}
        :regex -> {"regex", source, []}
        :grammar -> {"lark", source, []}
        :choice -> {"choice", "", source}
      end

    tokenizer_json = Path.join(model.path, "tokenizer.json")

    with {:ok, ref} <-
           model.ref |> Native.constraint_new(tokenizer_json, native_kind, text, choices) |> Native.direct(),
         do: {:ok, %__MODULE__{ref: ref, start: start}}
  end

  defp start(_model, :first_token, _thinking?), do: nil
  defp start(_model, :auto, false), do: nil
  defp start(%Model{tokenizer: tok}, _after_think, _thinking?), do: Tokenizer.token_to_id(tok, "</think>")
end
