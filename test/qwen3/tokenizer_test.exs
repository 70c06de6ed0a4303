defmodule Qwen3.TokenizerTest do
  use ExUnit.Case, async: true

  alias Qwen3.{Fixtures, Tokenizer}
  alias Qwen3.Tokenizer.Decoder

  setup_all do
    {:ok, tok: Tokenizer.load!(Fixtures.chat_model_path()), golden: Fixtures.text_golden()}
  end

  test "encodes like Hugging Face transformers", %{tok: tok, golden: golden} do
    assert length(golden["encode"]) >= 8

    for %{"text" => text, "ids" => ids} <- golden["encode"] do
      assert Tokenizer.encode(tok, text) == {:ok, ids}, "encoding #{inspect(text)}"
    end
  end

  test "decodes like Hugging Face transformers, with and without special tokens", %{tok: tok, golden: golden} do
    for %{"ids" => ids, "skip_special" => skip, "text" => text} <- golden["decode"] do
      assert Tokenizer.decode(tok, ids, skip_special_tokens: skip) == {:ok, text}
    end
  end

  test "special and added tokens", %{tok: tok} do
    assert Tokenizer.token_to_id(tok, "<|im_end|>") == 151_645
    assert Tokenizer.id_to_token(tok, 151_667) == "<think>"
    assert Tokenizer.token_to_id(tok, "no such token") == nil
    assert Tokenizer.vocab_size(tok) == 151_669
    added = Tokenizer.added_tokens(tok)
    assert %{id: 151_644, content: "<|im_start|>", special: true} in added
    assert %{id: 151_668, content: "</think>", special: false} in added
  end

  test "the streaming decoder emits whole characters and adds up to the full text", %{tok: tok} do
    text = "Emoji 👋🏽🎉, 中文 and ∑∫√ — split across byte-level tokens"
    {:ok, ids} = Tokenizer.encode(tok, text)
    {chunks, dec} = Enum.map_reduce(ids, Decoder.new(tok), &Decoder.push(&2, &1))
    chunks = chunks ++ [Decoder.flush(dec)]

    assert Enum.join(chunks) == text
    assert Enum.all?(chunks, &String.valid?/1)
    refute Enum.any?(chunks, &String.contains?(&1, "\uFFFD"))
    # At least one character spans several tokens, so some steps emit nothing.
    assert Enum.count(chunks, &(&1 == "")) >= 1
  end

  test "the streaming decoder flushes an unfinished character as U+FFFD", %{tok: tok} do
    # A rare character that byte-level BPE splits into several tokens.
    ids =
      Enum.find_value(["𓀀", "𝔘", "🦩"], fn c ->
        case Tokenizer.encode(tok, c) do
          {:ok, [_, _ | _] = ids} -> ids
          _ -> nil
        end
      end)

    assert ids
    {chunks, dec} = ids |> Enum.drop(-1) |> Enum.map_reduce(Decoder.new(tok), &Decoder.push(&2, &1))
    assert Enum.all?(chunks, &(&1 == ""))
    assert Decoder.flush(dec) =~ "\uFFFD"
  end

  @tag :tmp_dir
  test "bad files and ids give tagged errors", %{tok: tok, tmp_dir: tmp} do
    assert {:error, %Qwen3.Error{kind: :io}} = Tokenizer.load(Path.join(tmp, "missing.json"))
    garbage = Path.join(tmp, "tokenizer.json")
    File.write!(garbage, ~s({"model": 42))
    assert {:error, %Qwen3.Error{kind: :invalid_file}} = Tokenizer.load(tmp)
    assert {:error, %Qwen3.Error{kind: :invalid_argument}} = Tokenizer.decode(tok, [1, -2])
    # Ids past the tokenizer (a model's padded vocabulary rows) decode to nothing.
    assert Tokenizer.decode(tok, [9707, 151_900]) == Tokenizer.decode(tok, [9707])
  end
end
