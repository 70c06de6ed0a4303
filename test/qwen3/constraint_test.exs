defmodule Qwen3.ConstraintTest do
  # Constrained decoding on the tiny real-vocabulary checkpoint, whose random weights know
  # no JSON: whatever it is made to write must still be valid. JSON is checked by the oracle
  # venv's `jsonschema`, regexes by Elixir's own, independently of llguidance.
  use ExUnit.Case, async: false

  alias Qwen3.{Fixtures, Serving}

  @moduletag timeout: 600_000
  @max 96

  @schemas [
    %{
      type: "object",
      properties: %{name: %{type: "string", maxLength: 8}},
      required: ["name"],
      additionalProperties: false
    },
    %{
      type: "object",
      properties: %{n: %{type: "integer", minimum: 3, maximum: 9}},
      required: ["n"],
      additionalProperties: false
    },
    %{
      type: "object",
      properties: %{x: %{type: "number", minimum: -1, maximum: 1}},
      required: ["x"],
      additionalProperties: false
    },
    %{type: "object", properties: %{ok: %{type: "boolean"}}, required: ["ok"], additionalProperties: false},
    %{
      type: "object",
      properties: %{colour: %{enum: ["red", "green", "blue"]}},
      required: ["colour"],
      additionalProperties: false
    },
    %{type: "array", items: %{type: "integer", minimum: 0, maximum: 99}, minItems: 1, maxItems: 4},
    %{type: "array", items: %{type: "array", items: %{type: "boolean"}, maxItems: 2}, maxItems: 3},
    %{
      type: "object",
      properties: %{
        a: %{
          type: "object",
          properties: %{b: %{type: "integer"}},
          required: ["b"],
          additionalProperties: false
        }
      },
      required: ["a"],
      additionalProperties: false
    },
    %{type: "string", pattern: "^[a-z]{2,5}$"},
    %{type: "string", pattern: "^[0-9]{3}-[0-9]{2}$"},
    %{anyOf: [%{type: "integer", minimum: 0, maximum: 9}, %{type: "string", maxLength: 3}]},
    %{
      type: "object",
      properties: %{
        id: %{type: "integer", minimum: 1, maximum: 1000},
        tags: %{type: "array", items: %{enum: ["a", "b"]}, maxItems: 3}
      },
      required: ["id", "tags"],
      additionalProperties: false
    },
    %{
      type: "object",
      properties: %{kind: %{const: "point"}, x: %{type: "integer", maximum: 10, minimum: -10}},
      required: ["kind", "x"],
      additionalProperties: false
    },
    %{type: "null"},
    %{type: "integer", minimum: 10, maximum: 20},
    %{
      type: "object",
      properties: %{s: %{type: "string", minLength: 2, maxLength: 4}, t: %{type: "string", maxLength: 2}},
      required: ["s"],
      additionalProperties: false
    },
    %{enum: [1, "two", false, nil]},
    %{
      type: "object",
      properties: %{v: %{anyOf: [%{type: "null"}, %{type: "boolean"}]}},
      required: ["v"],
      additionalProperties: false
    },
    %{
      type: "array",
      prefixItems: [%{type: "integer", maximum: 5, minimum: 0}, %{type: "boolean"}],
      items: false,
      minItems: 2
    },
    %{
      type: "object",
      properties: %{date: %{type: "string", pattern: "^20[0-9]{2}-[01][0-9]-[0-3][0-9]$"}},
      required: ["date"],
      additionalProperties: false
    }
  ]

  setup_all do
    model = Qwen3.load!(Fixtures.chat_model_path())
    name = :"constraint_serving_#{System.unique_integer([:positive])}"
    start_supervised!({Serving, model: model, name: name, batch_size: 8, max_len: 256, max_queue: 256})
    {:ok, model: model, serving: name}
  end

  defp validate(cases) do
    input = Qwen3.JSON.encode!(Enum.map(cases, fn {schema, text} -> %{schema: schema, text: text} end))
    python = System.fetch_env!("QWEN3_ORACLE_PYTHON")
    script = Path.expand("../support/validate_json.py", __DIR__)
    file = Path.join(System.tmp_dir!(), "qwen3-json-#{System.unique_integer([:positive])}.json")
    File.write!(file, input)
    {out, 0} = System.cmd("sh", ["-c", "#{python} #{script} < #{file}"])
    File.rm(file)
    Qwen3.JSON.decode!(out)
  end

  test "200 sampled generations over 20 JSON Schemas all parse and validate", %{serving: serving} do
    assert length(@schemas) == 20

    outputs =
      for {schema, i} <- Enum.with_index(@schemas), seed <- 1..10 do
        Task.async(fn ->
          {:ok, r} =
            Serving.generate(serving, "Answer:",
              json_schema: schema,
              sampler: :sample,
              seed: seed + 100 * i,
              max_new_tokens: @max
            )

          {schema, r}
        end)
      end
      |> Task.await_many(600_000)

    {stopped, ran_out} = Enum.split_with(outputs, fn {_, r} -> r.finish_reason == :stop end)
    # Cut only by the length limit, and most finish well before it.
    assert Enum.all?(ran_out, fn {_, r} -> length(r.tokens) == @max end)
    assert length(stopped) >= 150, "only #{length(stopped)} of 200 finished"
    errors = validate(for {schema, r} <- stopped, do: {schema, r.text})
    bad = for {e, {schema, r}} <- Enum.zip(errors, stopped), e != nil, do: {schema, r.text, e}
    assert bad == []
  end

  test "regex and choice outputs all match; a single allowed answer is forced", %{
    serving: serving,
    model: model
  } do
    regex_runs =
      for seed <- 1..100 do
        Task.async(fn ->
          Serving.generate(serving, "Code:",
            regex: "[A-Z]{2}[0-9]{2,4}(-[a-z]{1,6})?",
            sampler: :sample,
            seed: seed,
            max_new_tokens: 24
          )
        end)
      end

    choices = ["yes", "no", "maybe later", "ask again"]

    choice_runs =
      for seed <- 1..100 do
        Task.async(fn ->
          Serving.generate(serving, "Well?",
            choice: choices,
            sampler: :sample_host,
            seed: seed,
            max_new_tokens: 16
          )
        end)
      end

    for {:ok, r} <- Task.await_many(regex_runs, 300_000) do
      assert r.finish_reason == :stop and Regex.match?(~r/\A[A-Z]{2}[0-9]{2,4}(-[a-z]{1,6})?\z/, r.text),
             r.text
    end

    picked = for {:ok, r} <- Task.await_many(choice_runs, 300_000), do: r.text
    assert length(picked) == 100 and Enum.all?(picked, &(&1 in choices))
    assert length(Enum.uniq(picked)) > 1

    assert Qwen3.generate!(model, "?", choice: ["exactly this, 42"], max_new_tokens: 20).text ==
             "exactly this, 42"

    assert Qwen3.generate!(model, "?", regex: "forced", max_new_tokens: 20, sampler: :sample, seed: 3).text ==
             "forced"
  end

  test "constrained rows batched with unconstrained ones equal each alone, seed for seed", %{
    serving: serving,
    model: model
  } do
    requests =
      for i <- 1..8 do
        constraint =
          Enum.at(
            [[json_schema: Enum.at(@schemas, i)], [regex: "[a-z]{3,6}"], [choice: ["a b", "c d"]], []],
            rem(i, 4)
          )

        {"Go #{i}", constraint ++ [sampler: :sample, seed: i, max_new_tokens: 32]}
      end

    batched =
      requests
      |> Enum.map(fn {p, o} -> Task.async(fn -> Serving.generate(serving, p, o) end) end)
      |> Task.await_many(120_000)

    for {{:ok, got}, {p, o}} <- Enum.zip(batched, requests),
        do: assert(got.tokens == Qwen3.generate!(model, p, o).tokens, inspect(o))
  end

  test "the think block stays free text; the constraint takes over after </think>" do
    model = Qwen3.load!(Fixtures.path("tiny-steered"))

    schema = %{
      type: "object",
      properties: %{ok: %{type: "boolean"}},
      required: ["ok"],
      additionalProperties: false
    }

    messages = [%{role: "user", content: "Weather?"}]

    {:ok, reply} = Qwen3.chat(model, messages, json_schema: schema, max_new_tokens: 40)
    assert reply.thinking == "Weather first."
    assert Qwen3.JSON.decode!(reply.content) in [%{"ok" => true}, %{"ok" => false}]

    {:ok, from_start} =
      Qwen3.chat(model, messages, json_schema: schema, constraint_start: :first_token, max_new_tokens: 40)

    assert from_start.thinking == nil and String.starts_with?(from_start.text, "{")
  end

  test "a constraint that does not compile is :invalid_grammar at the call and nothing is queued",
       %{serving: serving, model: model} do
    before = Serving.stats(serving).submitted

    for bad <- [
          [regex: "(unclosed"],
          [grammar: "start: nothing_defined"],
          [json_schema: ~s({"type": "nonsense"})],
          [json_schema: "{not json"]
        ] do
      assert {:error, %Qwen3.Error{kind: :invalid_grammar, message: message}} =
               Serving.generate(serving, "x", bad)

      assert message != ""
      assert {:error, %Qwen3.Error{kind: :invalid_grammar}} = Qwen3.generate(model, "x", bad)
    end

    assert Serving.stats(serving).submitted == before
    assert_raise ArgumentError, ~r/one of/, fn -> Qwen3.generate(model, "x", regex: "a", choice: ["a"]) end
    assert_raise ArgumentError, ~r/:choice/, fn -> Qwen3.generate(model, "x", choice: []) end
  end
end
