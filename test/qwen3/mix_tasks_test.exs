defmodule Qwen3.MixTasksTest do
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO
  alias Qwen3.Fixtures

  test "mix qwen3.generate streams text and prints the JSON contract with text" do
    model = Fixtures.chat_model_path()
    args = ~w(--model #{model} --prompt Hello --max-new-tokens 6 --seed 1 --sampler sample)
    {:ok, want} = Qwen3.generate(Qwen3.load!(model), "Hello", max_new_tokens: 6, seed: 1, sampler: :sample)

    text = quiet(fn -> capture_io(fn -> Mix.Tasks.Qwen3.Generate.run(args) end) end)
    assert text == want.text <> "\n"

    json = capture_io(fn -> Mix.Tasks.Qwen3.Generate.run(args ++ ~w(--format json)) end)
    decoded = Qwen3.JSON.decode!(json)
    assert decoded["text"] == want.text
    assert decoded["tokens"] == want.tokens
    assert decoded["finish_reason"] == "length"
  end

  @tag :tmp_dir
  test "mix qwen3.generate --prompt-cache saves the cache and continues from it", %{tmp_dir: dir} do
    model = Fixtures.path("dense-f32-tied")
    file = Path.join(dir, "prompt.cache")
    run = fn ids -> capture_io(fn -> Mix.Tasks.Qwen3.Generate.run(~w(--model #{model} --prompt-ids #{ids}
             --max-new-tokens 5 --format json --prompt-cache #{file})) end) |> Qwen3.JSON.decode!() end

    first = run.("5,6,7,8")
    assert File.exists?(file)
    {:ok, saved} = Qwen3.KVCache.load(Qwen3.load!(model), file)
    # The prompt and all but the last generated token (never fed) are held.
    assert saved.tokens == [5, 6, 7, 8] ++ Enum.take(first["tokens"], 4)

    longer = Enum.join([5, 6, 7, 8] ++ first["tokens"] ++ [9], ",")

    want =
      Qwen3.generate!(Qwen3.load!(model), Enum.map(String.split(longer, ","), &String.to_integer/1),
        max_new_tokens: 5
      )

    assert run.(longer)["tokens"] == want.tokens
  end

  test "mix qwen3.generate rejects bad arguments" do
    assert_raise Mix.Error, ~r/--format/, fn -> Mix.Tasks.Qwen3.Generate.run(~w(--format yaml)) end
    assert_raise Mix.Error, ~r/unexpected/, fn -> Mix.Tasks.Qwen3.Generate.run(~w(--nope 1)) end
  end

  test "mix qwen3.chat runs a scripted multi-turn conversation with /think" do
    model = Fixtures.chat_model_path()
    script = "Hello!\n/think\nAnd now?\n/reset\n/bogus\n"

    out =
      quiet(fn ->
        capture_io(script, fn ->
          Mix.Tasks.Qwen3.Chat.run(~w(--model #{model} --max-new-tokens 5 --seed 3 --echo))
        end)
      end)

    # Turn two continues turn one with thinking off: same as a direct chat of both turns.
    {:ok, m} = {:ok, Qwen3.load!(model)}
    {:ok, t1} = Qwen3.chat(m, [%{role: "user", content: "Hello!"}], max_new_tokens: 5)
    turn2 = t1.messages ++ [%{role: "user", content: "And now?"}]
    {:ok, t2} = Qwen3.chat(m, turn2, max_new_tokens: 5, enable_thinking: false)

    assert out =~ "> Hello!\n#{t1.text}\n"
    assert out =~ "(thinking off)"
    assert out =~ "> And now?\n#{t2.text}\n"
    assert out =~ "(new conversation)"
    assert out =~ "(unknown command /bogus"
  end

  # Runs `fun` with its timing lines on stderr captured; returns what `fun` returns.
  defp quiet(fun) do
    parent = self()
    capture_io(:stderr, fn -> send(parent, {:result, fun.()}) end)
    receive do: ({:result, r} -> r)
  end
end
