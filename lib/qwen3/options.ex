defmodule Qwen3.Options do
  @moduledoc """
  The options of generation and of chat prompts: each one's default, check and
  documentation, in one schema that `Qwen3`, `Qwen3.Generate`, `Qwen3.Serving` and the mix
  tasks share; their docs and the mix tasks' switches are generated from it. Other
  modules check their own options with `validate!/2` and a schema of the same shape.

  The sampling options (`sampler_keys/0`) belong to the sampler spec: `Qwen3.Sampler.spec!/2`
  checks them, and one a call leaves unset takes the checkpoint's `generation_config.json`,
  else its default. Every other option is checked here, at the call.
  """

  # {key, default, check, doc, command-line type or nil}. A `:sampler` check means the
  # sampler spec owns it (`Qwen3.Sampler.spec!/2`, validated in Rust); its "default" is text.
  @generation [
    {:max_new_tokens, 100, :pos_integer, "tokens to generate at most; generation then ends with `:length`",
     :integer},
    {:max_len, 2048, :pos_integer,
     "KV cache capacity in tokens (prompt and output; ignored with `:kv_cache`), also ending with `:length`",
     :integer},
    {:kv_cache, nil, :kv_cache,
     "a `Qwen3.KVCache` (from `Qwen3.Model.init_kv_cache/2` or a previous result): continues " <>
       "it, prefilling only what it does not hold yet", nil},
    {:sampler, :greedy, :sampler,
     "`:greedy` (the most likely token), `:sample` (temperature, top-k, top-p and min-p in the " <>
       "MLX graph on the model's device; the token stays lazy) or `:sample_host` (the same " <>
       "filters in Rust on the host). `:top_p_gpu` and `:top_p_cpu` are deprecated names of " <>
       "the last two", :atom},
    {:temperature, "generation_config.json's, else 1.0", :sampler, "for the sampling samplers", :float},
    {:top_p, "generation_config.json's, else 1.0 (off)", :sampler, "nucleus mass to keep", :float},
    {:top_k, "generation_config.json's, else off", :sampler,
     "keep the k most likely tokens; `nil` turns it off", :integer},
    {:min_p, "generation_config.json's, else off", :sampler,
     "drop tokens below this fraction of the top probability; `nil` turns it off", :float},
    {:repetition_penalty, "generation_config.json's, else off", :sampler,
     "> 1 discourages recent tokens (prompt included), for every sampler; `nil` turns it off", :float},
    {:repetition_context_size, 20, :sampler, "how many recent tokens the penalty looks at", :integer},
    {:seed, nil, :seed, "the sampler's random stream (a 64-bit unsigned integer); `nil` draws a fresh one",
     :integer},
    {:rng_key, nil, :rng_key,
     "an MLX PRNG key from `Qwen3.Sampler.key/2` instead of `:seed` (the same stream)", nil},
    {:stop, [], :stop,
     "token ids and strings that end generation with `:stop`; strings may span tokens (they " <>
       "need a tokenizer) and never show in the text; the checkpoint's EOS ids always stop", :keep},
    {:loop, :elixir, {:one_of, [:elixir, :native]},
     "`:elixir` (layer by layer from Elixir) or `:native` (one native step per token)", :atom},
    {:skip_special_tokens, true, :boolean, "leave special tokens out of the text", nil},
    {:dump_logits, false, :boolean, "adds `:logits`: one float32 binary of last-position logits per token",
     nil},
    {:profile_timing, true, :boolean, "`:timing` is nil when false", nil},
    {:timeout, :infinity, :timeout,
     "milliseconds for the whole generation; past it the next token read returns " <>
       "`{:error, %Qwen3.Error{kind: :timeout}}` and a cache the call made is released", nil}
  ]

  @chat [
    {:enable_thinking, true, :boolean, "Qwen3's `<think>` block (the chat template's switch)", nil},
    {:tools, nil, :tools, "tool definitions (maps) for the chat template", nil},
    {:add_generation_prompt, true, :boolean, "end the prompt with the assistant's turn opening", nil}
  ]

  @sampler_keys for {key, _, :sampler, _, _} <- @generation, do: key

  @typedoc "A schema: `{key, default, check, doc, command-line type}` per option."
  @type schema :: [{atom, term, term, String.t(), atom | nil}]

  @doc "The schema of `:generation` (`Qwen3.Generate`) or `:chat` (message prompts) options."
  @spec schema(:generation | :chat) :: schema
  def schema(:generation), do: @generation
  def schema(:chat), do: @chat

  @doc "The options the sampler spec owns (checked and defaulted by `Qwen3.Sampler.spec!/2`)."
  def sampler_keys, do: @sampler_keys

  @doc """
  Checks `opts` against `schema` (a name or a schema) and fills in the defaults, except for
  the sampler's options, which stay as given (unset ones take the checkpoint's
  `generation_config.json`). Raises `ArgumentError` naming the first bad option.
  """
  @spec validate!(keyword, :generation | :chat | schema) :: keyword
  def validate!(opts, schema) when is_atom(schema), do: validate!(opts, schema(schema))

  def validate!(opts, schema) do
    defaults = for {key, default, check, _, _} <- schema, check != :sampler, do: {key, default}
    keys = for {key, _, _, _, _} <- schema, do: key
    given = Keyword.keys(opts)

    case Enum.find(given, &(&1 not in keys)) do
      nil -> :ok
      key -> raise ArgumentError, "unknown option #{inspect(key)}; known options: #{inspect(keys)}"
    end

    opts = Keyword.merge(defaults, opts)

    for {key, _, check, _, _} <- schema, check != :sampler, Keyword.has_key?(opts, key) do
      check!(key, opts[key], check)
    end

    opts
  end

  @doc "Raises `ArgumentError` naming `key` unless `value` passes `check`."
  def check!(key, value, check) do
    unless valid?(check, value),
      do: raise(ArgumentError, "#{inspect(key)} must be #{expected(check)}, got #{inspect(value)}")
  end

  defp valid?(:pos_integer, v), do: is_integer(v) and v >= 1
  defp valid?(:non_neg_integer, v), do: is_integer(v) and v >= 0
  defp valid?(:boolean, v), do: is_boolean(v)
  defp valid?(:timeout, v), do: v == :infinity or (is_integer(v) and v >= 0)
  defp valid?(:seed, v), do: is_nil(v) or (is_integer(v) and v in 0..0xFFFFFFFFFFFFFFFF)
  defp valid?(:rng_key, v), do: is_nil(v) or is_struct(v, Qwen3.Array)
  defp valid?(:kv_cache, v), do: is_nil(v) or is_struct(v, Qwen3.KVCache)
  defp valid?(:tools, v), do: is_nil(v) or is_list(v)
  defp valid?(:atom_or_nil, v), do: is_atom(v)
  defp valid?(:keyword, v), do: Keyword.keyword?(v)
  defp valid?(:map, v), do: is_map(v)
  defp valid?({:one_of, values}, v), do: v in values
  defp valid?({:struct_or_binary, mod}, v), do: is_struct(v, mod) or is_binary(v)

  defp valid?(:stop, v),
    do: is_list(v) and Enum.all?(v, &((is_integer(&1) and &1 >= 0) or (is_binary(&1) and &1 != "")))

  defp expected(:pos_integer), do: "a positive integer"
  defp expected(:non_neg_integer), do: "a non-negative integer"
  defp expected(:boolean), do: "true or false"
  defp expected(:timeout), do: ":infinity or milliseconds (a non-negative integer)"
  defp expected(:seed), do: "nil or a 64-bit unsigned integer"
  defp expected(:rng_key), do: "nil or a key from Qwen3.Sampler.key/1"
  defp expected(:kv_cache), do: "nil or a Qwen3.KVCache"
  defp expected(:tools), do: "nil or a list of tool definitions"
  defp expected(:atom_or_nil), do: "an atom"
  defp expected(:keyword), do: "a keyword list"
  defp expected(:map), do: "a map"
  defp expected({:one_of, values}), do: "one of #{Enum.map_join(values, ", ", &inspect/1)}"
  defp expected({:struct_or_binary, mod}), do: "a #{inspect(mod)} or a checkpoint path / repo id"
  defp expected(:stop), do: "a list of token ids and non-empty strings"

  @doc "The options of `schema` as a Markdown list, for module and function docs."
  @spec docs(:generation | :chat | schema) :: String.t()
  def docs(schema) when is_atom(schema), do: docs(schema(schema))

  def docs(schema) do
    Enum.map_join(schema, "\n", fn {key, default, _check, doc, _cli} ->
      "  * `#{inspect(key)}` (#{show(default)}) — #{doc}"
    end)
  end

  defp show(text) when is_binary(text), do: text
  defp show(value), do: "`#{inspect(value)}`"

  @doc """
  `OptionParser` switches for the options with a command-line type (`--max-new-tokens`,
  `--sampler` …), and a function turning parsed switches back into options.
  """
  def cli_switches do
    for {key, _, _, _, type} <- @generation,
        type != nil,
        do: {key, if(type == :atom, do: :string, else: type)}
  end

  @doc "Generation options from parsed `cli_switches/0` values (absent ones stay unset)."
  def from_cli(parsed) do
    for {key, _, _, _, type} <- @generation, type != nil, Keyword.has_key?(parsed, key) do
      case type do
        :atom -> {key, String.to_atom(parsed[key])}
        :keep -> {key, Keyword.get_values(parsed, key)}
        _ -> {key, parsed[key]}
      end
    end
  end

  @doc "The command-line usage lines of `cli_switches/0`."
  def cli_usage do
    Enum.map_join(cli_switches(), "\n", fn {key, type} ->
      flag = "--" <> String.replace(to_string(key), "_", "-")
      arg = if type == :keep, do: "TEXT (repeatable)", else: String.upcase(to_string(type))
      "    #{String.pad_trailing("#{flag} #{arg}", 34)} #{doc_of(key)}"
    end)
  end

  defp doc_of(key) do
    {_, _, _, doc, _} = List.keyfind(@generation, key, 0)
    doc |> String.split(~r/[;(.]/, parts: 2) |> hd() |> String.trim() |> String.replace("`", "")
  end
end
