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

  # Each option: `default:` (or `default_doc:`, text, for an option the sampler spec owns),
  # `check:` (a clause of valid?/2, or :sampler), `doc:`, and `cli:` {type, argument} when
  # the mix tasks take it as a switch.
  @generation [
    max_new_tokens: [
      default: 100,
      check: :pos_integer,
      cli: {:integer, "N"},
      doc: "tokens to generate at most; generation then ends with `:length`"
    ],
    max_len: [
      default: 2048,
      check: :pos_integer,
      cli: {:integer, "N"},
      doc:
        "KV cache capacity in tokens, prompt included (ignored with `:kv_cache`); " <>
          "generation ends with `:length` when it is full"
    ],
    max_kv_size: [
      default: nil,
      check: :pos_integer_or_nil,
      cli: {:integer, "N"},
      doc:
        "a KV cache window of N tokens instead of `:max_len`: it keeps the first 4 tokens and drops " <>
          "the oldest after them when full (as mlx-lm's `max_kv_size`), so generation goes on past " <>
          "N; the prompt must fit in N - 4"
    ],
    kv_bits: [
      default: nil,
      check: {:one_of, [nil, 4, 8, 16]},
      cli: {:integer, "4|8|16"},
      doc:
        "stores the KV cache's keys and values quantized to 4 or 8 bits (as mlx-lm's `kv_bits`, " <>
          "from the first token): about 1/4 or 1/2 of bf16's bytes; attention reads them " <>
          "dequantized. 16: as float16 (half of a float32 cache's bytes, as llama.cpp keeps its " <>
          "cache), which the CPU's decode reads where it lies"
    ],
    kv_group_size: [
      default: 64,
      check: {:one_of, [32, 64, 128]},
      doc: "values per scale and bias of a quantized KV cache, along the head dimension"
    ],
    kv_cache: [
      default: nil,
      check: :kv_cache,
      doc:
        "a `Qwen3.KVCache` (from `Qwen3.Model.init_kv_cache/2` or a previous result) to " <>
          "continue: only what it does not hold yet is prefilled"
    ],
    sampler: [
      default: :greedy,
      check: :sampler,
      cli: {:atom, "greedy|sample|sample_host"},
      doc:
        "how the next token is chosen: `:greedy` (the most likely one), `:sample` " <>
          "(temperature, top-k, top-p and min-p in the MLX graph on the model's device; the " <>
          "token stays lazy) or `:sample_host` (the same filters in Rust on the host). " <>
          "`:top_p_gpu` and `:top_p_cpu` are deprecated names of the last two"
    ],
    temperature: [
      default_doc: "generation_config.json's, else 1.0",
      check: :sampler,
      cli: {:float, "T"},
      doc: "softmax temperature of the sampling samplers"
    ],
    top_p: [
      default_doc: "generation_config.json's, else 1.0: off",
      check: :sampler,
      cli: {:float, "P"},
      doc: "the probability mass of the nucleus to keep"
    ],
    top_k: [
      default_doc: "generation_config.json's, else off",
      check: :sampler,
      cli: {:integer, "K"},
      doc: "keep the k most likely tokens; `nil` turns it off"
    ],
    min_p: [
      default_doc: "generation_config.json's, else off",
      check: :sampler,
      cli: {:float, "P"},
      doc: "drop tokens below this fraction of the top probability; `nil` turns it off"
    ],
    repetition_penalty: [
      default_doc: "generation_config.json's, else off",
      check: :sampler,
      cli: {:float, "R"},
      doc:
        "above 1 discourages recent tokens (prompt included), for every sampler; `nil` " <>
          "turns it off"
    ],
    repetition_context_size: [
      default_doc: "20",
      check: :sampler,
      cli: {:integer, "N"},
      doc: "how many recent tokens the penalty looks at"
    ],
    presence_penalty: [
      default_doc: "0: off",
      check: :sampler,
      cli: {:float, "P"},
      doc: "subtracted once from the logit of every token generated so far (OpenAI's, in [-2, 2])"
    ],
    frequency_penalty: [
      default_doc: "0: off",
      check: :sampler,
      cli: {:float, "F"},
      doc: "subtracted from a token's logit per time it was generated (OpenAI's, in [-2, 2])"
    ],
    seed: [
      default: nil,
      check: :seed,
      cli: {:integer, "S"},
      doc: "the sampler's random stream (a 64-bit unsigned integer); `nil` draws a fresh one"
    ],
    rng_key: [
      default: nil,
      check: :rng_key,
      doc: "an MLX PRNG key from `Qwen3.Sampler.key/2` instead of `:seed` (the same stream)"
    ],
    logprobs: [
      default: false,
      check: :boolean,
      doc:
        "adds `:logprobs` to the result: per token its log-probability under the model's raw " <>
          "logits (before penalties and temperature)"
    ],
    top_logprobs: [
      default: 0,
      check: {:range, 0, 20},
      doc: "with `:logprobs`, also the most likely alternatives at each step, `{id, logprob}`"
    ],
    thinking_budget: [
      default: nil,
      check: :non_neg_integer_or_nil,
      cli: {:integer, "N"},
      doc:
        "tokens a `<think>` block may hold: after N, `</think>` is the next token and the answer " <>
          "follows (as llama.cpp's `--reasoning-budget`); a prompt that ends inside `<think>` counts from there. Needs the tokenizer"
    ],
    json_schema: [
      default: nil,
      check: :json_schema,
      doc: "constrains the output to JSON that fits this schema (a map, or JSON text); see `Qwen3.Constraint`"
    ],
    regex: [
      default: nil,
      check: :string_or_nil,
      doc: "constrains the output to match this regular expression"
    ],
    choice: [default: nil, check: :choices, doc: "constrains the output to one of these strings"],
    grammar: [
      default: nil,
      check: :string_or_nil,
      doc: "constrains the output to this Lark grammar (llguidance's dialect)"
    ],
    constraint_start: [
      default: :auto,
      check: {:one_of, [:auto, :first_token, :after_think]},
      doc:
        "where a constraint starts: `:auto` after Qwen3's `</think>` when a chat prompt leaves " <>
          "thinking on (the think block stays free text), else at the first token"
    ],
    stop: [
      default: [],
      check: :stop,
      cli: {:keep, "TEXT"},
      doc:
        "token ids and strings that end generation with `:stop`; strings may span tokens " <>
          "(they need a tokenizer) and never show in the text. The EOS ids always stop"
    ],
    loop: [
      default: :elixir,
      check: {:one_of, [:elixir, :native]},
      cli: {:atom, "elixir|native"},
      doc: "how a step runs: `:elixir` (layer by layer from Elixir) or `:native` (one call)"
    ],
    skip_special_tokens: [default: true, check: :boolean, doc: "leave special tokens out of the text"],
    dump_logits: [
      default: false,
      check: :boolean,
      doc: "adds `:logits`: one float32 binary of last-position logits per token"
    ],
    profile_timing: [default: true, check: :boolean, doc: "`:timing` is nil when false"],
    timeout: [
      default: :infinity,
      check: :timeout,
      doc:
        "milliseconds for the whole generation; past it the next token read returns " <>
          "`{:error, %Qwen3.Error{kind: :timeout}}` and a cache the call made is released"
    ]
  ]

  @chat [
    enable_thinking: [
      default: true,
      check: :boolean,
      doc: "Qwen3's `<think>` block (the chat template's switch)"
    ],
    tools: [default: nil, check: :tools, doc: "tool definitions (maps) for the chat template"],
    add_generation_prompt: [
      default: true,
      check: :boolean,
      doc: "end the prompt with the opening of the assistant's turn"
    ]
  ]

  @embedding [
    instruction: [
      default: nil,
      check: :string_or_nil,
      doc:
        "a task description for queries: each text becomes `\"Instruct: <instruction>\\nQuery:<text>\"`, " <>
          "Qwen3-Embedding's format (leave documents without one)"
    ],
    dimensions: [
      default: nil,
      check: :pos_integer_or_nil,
      doc: "keep the first N values of each vector and normalise them again (Matryoshka); nil keeps all"
    ],
    batch_size: [default: 16, check: :pos_integer, doc: "texts run together at most, left-padded"],
    max_length: [
      default: 8192,
      check: :pos_integer,
      doc: "tokens per text at most, EOS included (longer ones are cut)"
    ],
    eos_token: [
      default: "<|endoftext|>",
      check: :string_or_nil,
      doc: "the token appended to every text, whose final hidden state is the embedding"
    ]
  ]

  @sampler_keys for {key, spec} <- @generation, spec[:check] == :sampler, do: key

  @typedoc "A schema: each option's `:default` (or `:default_doc`), `:check`, `:doc`, `:cli`."
  @type schema :: [{atom, keyword}]

  @doc "The schema of `:generation` (`Qwen3.Generate`), `:chat` (message prompts) or `:embedding` (`Qwen3.Embedding`) options."
  @spec schema(:generation | :chat | :embedding) :: schema
  def schema(:generation), do: @generation
  def schema(:chat), do: @chat
  def schema(:embedding), do: @embedding

  @doc "The options the sampler spec owns (checked and defaulted by `Qwen3.Sampler.spec!/2`)."
  @spec sampler_keys() :: [atom]
  def sampler_keys, do: @sampler_keys

  @doc """
  Checks `opts` against `schema` (a name or a schema) and fills in the defaults, except for
  the sampler's options, which stay as given (unset ones take the checkpoint's
  `generation_config.json`). Raises `ArgumentError` naming the first bad option.
  """
  @spec validate!(keyword, :generation | :chat | :embedding | schema) :: keyword
  def validate!(opts, schema) when is_atom(schema), do: validate!(opts, schema(schema))

  def validate!(opts, schema) do
    case Enum.find(Keyword.keys(opts), &(not Keyword.has_key?(schema, &1))) do
      nil -> :ok
      key -> raise ArgumentError, "unknown option #{inspect(key)}; known: #{inspect(Keyword.keys(schema))}"
    end

    own = for {key, spec} <- schema, spec[:check] != :sampler, do: {key, spec}
    opts = Keyword.merge(for({key, spec} <- own, do: {key, spec[:default]}), opts)
    for {key, spec} <- own, do: check!(key, opts[key], spec[:check])
    opts
  end

  @doc "Raises `ArgumentError` naming `key` unless `value` passes `check`."
  def check!(key, value, check) do
    unless valid?(check, value),
      do: raise(ArgumentError, "#{inspect(key)} must be #{expected(check)}, got #{inspect(value)}")
  end

  defp valid?(:pos_integer, v), do: is_integer(v) and v >= 1
  defp valid?(:pos_integer_or_nil, v), do: is_nil(v) or (is_integer(v) and v >= 1)
  defp valid?(:non_neg_integer_or_nil, v), do: is_nil(v) or (is_integer(v) and v >= 0)
  defp valid?(:non_neg_integer, v), do: is_integer(v) and v >= 0
  defp valid?(:boolean, v), do: is_boolean(v)
  defp valid?(:timeout, v), do: v == :infinity or (is_integer(v) and v >= 0)
  defp valid?(:seed, v), do: is_nil(v) or (is_integer(v) and v in 0..0xFFFFFFFFFFFFFFFF)
  defp valid?(:rng_key, v), do: is_nil(v) or is_struct(v, Qwen3.Array)
  defp valid?(:kv_cache, v), do: is_nil(v) or is_struct(v, Qwen3.KVCache)
  defp valid?(:tools, v), do: is_nil(v) or is_list(v)
  defp valid?(:atom, v), do: is_atom(v)
  defp valid?(:keyword, v), do: Keyword.keyword?(v)
  defp valid?(:map, v), do: is_map(v)
  defp valid?(:json_schema, v), do: is_nil(v) or is_map(v) or is_boolean(v) or (is_binary(v) and v != "")

  defp valid?(:choices, v),
    do: is_nil(v) or (is_list(v) and v != [] and Enum.all?(v, &(is_binary(&1) and &1 != "")))

  defp valid?(:string_or_nil, v), do: is_nil(v) or (is_binary(v) and v != "")
  defp valid?(:serving, v), do: is_pid(v) or (is_atom(v) and v != nil)
  defp valid?(:ip, v), do: is_binary(v) and match?({:ok, _}, :inet.parse_address(String.to_charlist(v)))
  defp valid?({:one_of, values}, v), do: v in values
  defp valid?({:range, lo, hi}, v), do: is_integer(v) and v >= lo and v <= hi
  defp valid?({:struct_or_path, mod}, v), do: is_struct(v, mod) or is_binary(v)

  defp valid?(:stop, v),
    do: is_list(v) and Enum.all?(v, &((is_integer(&1) and &1 >= 0) or (is_binary(&1) and &1 != "")))

  defp expected(:pos_integer), do: "a positive integer"
  defp expected(:pos_integer_or_nil), do: "nil or a positive integer"
  defp expected(:non_neg_integer_or_nil), do: "nil or a non-negative integer"
  defp expected(:non_neg_integer), do: "a non-negative integer"
  defp expected(:boolean), do: "true or false"
  defp expected(:timeout), do: ":infinity or milliseconds (a non-negative integer)"
  defp expected(:seed), do: "nil or a 64-bit unsigned integer"
  defp expected(:rng_key), do: "nil or a key from Qwen3.Sampler.key/1"
  defp expected(:kv_cache), do: "nil or a Qwen3.KVCache"
  defp expected(:tools), do: "nil or a list of tool definitions"
  defp expected(:atom), do: "an atom"
  defp expected(:keyword), do: "a keyword list"
  defp expected(:map), do: "a map"
  defp expected(:json_schema), do: "nil, a JSON Schema map, or its JSON text"
  defp expected(:choices), do: "nil or a non-empty list of non-empty strings"
  defp expected(:string_or_nil), do: "nil or a non-empty string"
  defp expected(:serving), do: "a Qwen3.Serving's name or pid"
  defp expected(:ip), do: "an IP address, such as \"127.0.0.1\""
  defp expected({:one_of, values}), do: "one of #{Enum.map_join(values, ", ", &inspect/1)}"
  defp expected({:range, lo, hi}), do: "an integer from #{lo} to #{hi}"
  defp expected({:struct_or_path, mod}), do: "a #{inspect(mod)} or a checkpoint path / repo id"
  defp expected(:stop), do: "a list of token ids and non-empty strings"

  @doc "The options of `schema` as a Markdown list, for module and function docs."
  @spec docs(:generation | :chat | schema) :: String.t()
  def docs(schema) when is_atom(schema), do: docs(schema(schema))

  def docs(schema) do
    Enum.map_join(schema, "\n", fn {key, spec} ->
      default = spec[:default_doc] || "`#{inspect(spec[:default])}`"
      "  * `#{inspect(key)}` (#{default}) — #{spec[:doc]}"
    end)
  end

  @doc "`OptionParser` switches for the generation options the mix tasks take."
  @spec cli_switches() :: keyword
  def cli_switches do
    for {key, spec} <- @generation, {type, _arg} <- [spec[:cli]] do
      {key, if(type == :atom, do: :string, else: type)}
    end
  end

  @doc "Generation options from parsed `cli_switches/0` values; absent ones stay unset."
  @spec from_cli(keyword) :: keyword
  def from_cli(parsed) do
    for {key, spec} <- @generation, {type, _arg} <- [spec[:cli]], Keyword.has_key?(parsed, key) do
      case type do
        :atom -> {key, String.to_atom(parsed[key])}
        :keep -> {key, Keyword.get_values(parsed, key)}
        _ -> {key, parsed[key]}
      end
    end
  end

  @doc "One usage line per `cli_switches/0` switch: the flag, its argument, its doc's first clause."
  @spec cli_usage() :: String.t()
  def cli_usage do
    lines =
      for {key, spec} <- @generation, {type, arg} <- [spec[:cli]] do
        flag = "--#{String.replace(to_string(key), "_", "-")} #{arg}"
        flag = if type == :keep, do: flag <> " (repeatable)", else: flag
        summary = spec[:doc] |> String.split(~r/; |: | \(|\. /, parts: 2) |> hd()
        "    #{String.pad_trailing(flag, 38)} #{String.replace(summary, "`", "")}"
      end

    Enum.join(lines, "\n")
  end
end
