defmodule Qwen3.Request do
  @moduledoc """
  A prompt made ready to generate from: its token ids, the checked generation options and
  the resolved sampler spec (and `Qwen3.Constraint`, when one is asked for). `new/3` does
  every check once; `Qwen3.Generate.start/3` and
  `Qwen3.Serving` take the result as it is.

  Options are checked at the call: a bad one raises `ArgumentError` naming it. The
  prompt's own errors come back as values: `:empty_prompt`, an id outside the vocabulary
  (`:invalid_argument`), a missing tokenizer or chat template (`:not_found`), or a constraint
  that does not compile (`:invalid_grammar`).
  """
  alias Qwen3.{Error, Model, Options, Prompt, Sampler}

  @enforce_keys [:ids, :opts, :spec]
  defstruct [:ids, :opts, :spec, :constraint]

  @type t :: %__MODULE__{
          ids: [non_neg_integer],
          opts: keyword,
          spec: Sampler.Spec.t(),
          constraint: Qwen3.Constraint.t() | nil
        }

  @doc """
  Checks `opts` (the generation options of `Qwen3.Options`, and with chat messages the chat
  options too) and turns `prompt` (see `Qwen3.Prompt`) into checked token ids. A chat
  prompt also stops at the end of the assistant's turn.
  """
  @spec new(Model.t(), term, keyword) :: {:ok, t} | {:error, Error.t()}
  def new(%Model{} = model, prompt, opts) do
    {chat_opts, gen_opts} = Keyword.split(opts, Keyword.keys(Options.schema(:chat)))
    chat_opts = Options.validate!(chat_opts, :chat)
    gen_opts = Options.validate!(gen_opts, :generation)

    if model.tokenizer == nil and Enum.any?(gen_opts[:stop], &is_binary/1),
      do: raise(ArgumentError, "stop strings need a tokenizer, and this model was loaded without one")

    gen_opts =
      if Prompt.chat?(prompt),
        do: Keyword.update!(gen_opts, :stop, &(&1 ++ Prompt.chat_stop_ids(model))),
        else: gen_opts

    spec = Sampler.spec!(model, Keyword.take(gen_opts, Options.sampler_keys()))
    thinking? = Prompt.chat?(prompt) and chat_opts[:enable_thinking]

    with {:ok, ids} <- Prompt.to_ids(model, prompt, chat_opts),
         :ok <- Prompt.check_ids(ids, model),
         {:ok, constraint} <- Qwen3.Constraint.compile(model, gen_opts, thinking?),
         do: {:ok, %__MODULE__{ids: ids, opts: gen_opts, spec: spec, constraint: constraint}}
  end

  @doc "The request with options a driver sets for itself (its own cache, its own loop)."
  @spec put_opts(t, keyword) :: t
  def put_opts(%__MODULE__{} = request, opts), do: %{request | opts: Keyword.merge(request.opts, opts)}
end
