defmodule Qwen3.OptionsTest do
  # One schema: what it documents and what it checks, wherever an option is taken.
  use ExUnit.Case, async: true

  alias Qwen3.{Fixtures, Options}

  defp moduledoc(module) do
    {:docs_v1, _, _, _, %{"en" => doc}, _, _} = Code.fetch_docs(module)
    doc
  end

  test "every generation option is documented where it is taken, from the one schema" do
    for module <- [Qwen3.Generate, Qwen3], {key, spec} <- Options.schema(:generation) do
      assert moduledoc(module) =~ "`#{inspect(key)}` (", "#{inspect(module)} lacks #{inspect(key)}"
      assert moduledoc(module) =~ spec[:doc]
    end

    for {key, _} <- Options.schema(:chat), do: assert(moduledoc(Qwen3) =~ "`#{inspect(key)}`")
    usage = Qwen3.CLI.usage()

    for {key, _type} <- Options.cli_switches(),
        do: assert(usage =~ "--" <> String.replace(to_string(key), "_", "-"))
  end

  test "switches parse back into the options they name" do
    {parsed, [], []} =
      OptionParser.parse(~w(--sampler sample --top-k 5 --temperature 0.7 --stop a --stop b --loop native),
        strict: Options.cli_switches()
      )

    assert Enum.sort(Options.from_cli(parsed)) ==
             Enum.sort(sampler: :sample, top_k: 5, temperature: 0.7, stop: ["a", "b"], loop: :native)
  end

  test "defaults are filled in, the sampler's options are left to the sampler spec" do
    opts = Options.validate!([max_new_tokens: 3], :generation)
    assert opts[:max_new_tokens] == 3 and opts[:max_len] == 2048 and opts[:stop] == []
    refute Keyword.has_key?(opts, :temperature)

    assert Options.sampler_keys() ==
             ~w(sampler temperature top_p top_k min_p repetition_penalty repetition_context_size
                presence_penalty frequency_penalty)a
  end

  test "a serving's start options go through the same checks, naming the bad one" do
    model = Fixtures.path("dense-f32-tied")

    for {key, value} <- [batch_size: 0, max_queue: -1, prefill_chunk: 1.5, name: "x", model: 42, colour: 1] do
      error =
        assert_raise ArgumentError, fn ->
          Qwen3.Serving.start_link(Keyword.put([model: model], key, value))
        end

      assert error.message =~ inspect(key)
    end
  end
end
