defmodule Qwen3.ChatTemplateTest do
  use ExUnit.Case, async: true

  alias Qwen3.{ChatTemplate, Fixtures, Tokenizer}

  setup_all do
    dir = Fixtures.chat_model_path()
    {:ok, template: ChatTemplate.load!(dir), tok: Tokenizer.load!(dir), golden: Fixtures.text_golden()}
  end

  defp render_opts(opts) do
    [
      add_generation_prompt: opts["add_generation_prompt"],
      enable_thinking: Map.get(opts, "enable_thinking", true),
      tools: opts["tools"]
    ]
  end

  test "renders the real Qwen3 template exactly as transformers does", %{
    template: t,
    tok: tok,
    golden: golden
  } do
    names = Enum.map(golden["chat"], & &1["name"])
    assert "tools" in names and "multi-turn-history-drops-thinking" in names

    for %{"name" => name, "messages" => messages, "opts" => opts, "text" => text, "ids" => ids} <-
          golden["chat"] do
      assert {:ok, ^text} = ChatTemplate.render(t, messages, render_opts(opts)), name
      assert Tokenizer.encode(tok, text) == {:ok, ids}, name
    end
  end

  test "enable_thinking: false closes an empty think block", %{template: t} do
    {:ok, on} = ChatTemplate.render(t, [%{role: "user", content: "Hi"}])
    {:ok, off} = ChatTemplate.render(t, [%{role: "user", content: "Hi"}], enable_thinking: false)
    assert String.ends_with?(on, "<|im_start|>assistant\n")
    assert String.ends_with?(off, "<|im_start|>assistant\n<think>\n\n</think>\n\n")
  end

  test "atom keys, string keys and {role, content} tuples render the same", %{template: t} do
    a = ChatTemplate.render(t, [%{role: :user, content: "Hi"}, %{role: "assistant", content: "Yo"}])

    b =
      ChatTemplate.render(t, [
        %{"role" => "user", "content" => "Hi"},
        %{"role" => "assistant", "content" => "Yo"}
      ])

    c = ChatTemplate.render(t, [{:user, "Hi"}, {"assistant", "Yo"}])
    assert a == b and b == c
    assert {:ok, _} = a
  end

  @tag :tmp_dir
  test "named templates, missing templates and template errors", %{tmp_dir: tmp} do
    File.write!(
      Path.join(tmp, "tokenizer_config.json"),
      Qwen3.JSON.encode!(%{
        chat_template: [
          %{name: "tool_use", template: "x"},
          %{name: "default", template: "{{ messages[0].content }}!"}
        ]
      })
    )

    assert {:ok, "Hi!"} = tmp |> ChatTemplate.load!() |> ChatTemplate.render([%{role: "user", content: "Hi"}])

    File.write!(Path.join(tmp, "tokenizer_config.json"), "{}")
    assert {:error, %Qwen3.Error{kind: :not_found}} = ChatTemplate.load(tmp)

    assert {:error, %Qwen3.Error{kind: :template}} = ChatTemplate.new("{% for %}")
    {:ok, raising} = ChatTemplate.new("{{ raise_exception('no system role') }}")
    assert {:error, %Qwen3.Error{kind: :template, message: message}} = ChatTemplate.render(raising, [])
    assert message =~ "no system role"
    assert_raise ArgumentError, fn -> ChatTemplate.render(raising, [:not_a_message]) end
  end
end
