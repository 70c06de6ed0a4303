defmodule Qwen3.ChatTemplate do
  @moduledoc """
  The checkpoint's own chat template (Jinja, from `chat_template.jinja` or the
  `chat_template` field of `tokenizer_config.json`), rendered by minijinja the way Hugging
  Face renders it.

      {:ok, t} = Qwen3.ChatTemplate.load("path/to/checkpoint")
      {:ok, prompt} = Qwen3.ChatTemplate.render(t, [%{role: "user", content: "Hi"}], enable_thinking: false)

  Messages are maps (atom or string keys: `role`, `content`, optionally `tool_calls`,
  `reasoning_content`) or `{role, content}` tuples.
  """
  alias Qwen3.{Error, JSON, Native}

  @enforce_keys [:ref, :source]
  defstruct [:ref, :source]

  @type t :: %__MODULE__{ref: reference, source: String.t()}
  @type message :: map | {atom | String.t(), String.t()}

  @doc "Compiles a template from its source."
  @spec new(String.t()) :: {:ok, t} | {:error, Error.t()}
  def new(source) when is_binary(source) do
    with {:ok, ref} <- source |> Native.chat_template_new() |> Native.direct(),
         do: {:ok, %__MODULE__{ref: ref, source: source}}
  end

  @doc "The template of a checkpoint directory."
  @spec load(Path.t()) :: {:ok, t} | {:error, Error.t()}
  def load(dir) do
    jinja = Path.join(dir, "chat_template.jinja")
    config = Path.join(dir, "tokenizer_config.json")

    cond do
      File.regular?(jinja) -> jinja |> File.read!() |> new()
      File.regular?(config) -> config |> File.read!() |> from_config(config)
      true -> {:error, %Error{kind: :not_found, message: "no chat template in #{dir}"}}
    end
  end

  def load!(dir), do: dir |> load() |> Error.unwrap!()

  defp from_config(text, path) do
    case JSON.decode(text) do
      {:ok, %{"chat_template" => source}} when is_binary(source) ->
        new(source)

      # Several named templates: the default one.
      {:ok, %{"chat_template" => [_ | _] = named}} ->
        case Enum.find(named, &(&1["name"] == "default")) do
          %{"template" => source} -> new(source)
          nil -> {:error, %Error{kind: :invalid_config, message: "#{path}: no default chat template"}}
        end

      {:ok, _} ->
        {:error, %Error{kind: :not_found, message: "#{path} has no chat_template"}}

      {:error, e} ->
        {:error, %Error{e | message: "#{path}: #{e.message}"}}
    end
  end

  @render_options Qwen3.Options.schema(:chat) ++
                    [variables: [default: %{}, check: :map, doc: "more template variables"]]

  @doc """
  Renders `messages` into the prompt text.

  Options:

  #{Qwen3.Options.docs(@render_options)}
  """
  @spec render(t, [message], keyword) :: {:ok, String.t()} | {:error, Error.t()}
  def render(%__MODULE__{ref: ref}, messages, opts \\ []) when is_list(messages) do
    opts = Qwen3.Options.validate!(opts, @render_options)

    context =
      Map.merge(opts[:variables], %{
        "messages" => Enum.map(messages, &message/1),
        "add_generation_prompt" => opts[:add_generation_prompt],
        "enable_thinking" => opts[:enable_thinking],
        "tools" => opts[:tools]
      })

    ref |> Native.chat_template_render(JSON.plain(context)) |> Native.direct()
  end

  defp message({role, content}) when is_binary(content),
    do: %{"role" => to_string(role), "content" => content}

  defp message(%{} = m), do: m

  defp message(other),
    do: raise(ArgumentError, "a message is a map or a {role, content} tuple, got #{inspect(other)}")

  defimpl Inspect do
    def inspect(t, _opts), do: "#Qwen3.ChatTemplate<#{byte_size(t.source)} bytes>"
  end
end
