defmodule Qwen3.StopStringsTest do
  use ExUnit.Case, async: true
  alias Qwen3.StopStrings

  defp feed(stops, chunks) do
    Enum.reduce_while(chunks, {[], StopStrings.new(stops)}, fn chunk, {out, s} ->
      case StopStrings.push(s, chunk) do
        {:cont, text, s} -> {:cont, {[text | out], s}}
        {:stop, text} -> {:halt, {:stopped, Enum.reverse([text | out])}}
      end
    end)
  end

  test "a stop string split over chunks is found and nothing of it is emitted" do
    assert {:stopped, out} = feed(["</end>"], ["Hello </", "en", "d> more"])
    assert out == ["Hello ", "", "", ""] or Enum.join(out) == "Hello "
    assert Enum.join(out) == "Hello "
  end

  test "text that only looks like a stop string's start is released" do
    {out, s} = feed(["STOP"], ["a S", "T", "x"])
    assert Enum.reverse(out) == ["a ", "", "STx"]
    assert StopStrings.flush(s) == ""
  end

  test "the earliest of several stop strings wins" do
    assert {:stopped, out} = feed(["bb", "ab"], ["xxabb"])
    assert Enum.join(out) == "xx"
  end

  test "held text is flushed when generation ends otherwise" do
    {out, s} = feed(["END"], ["one E", "N"])
    assert Enum.join(Enum.reverse(out)) == "one "
    assert StopStrings.flush(s) == "EN"
  end

  test "multi-byte text is held at character boundaries" do
    {out, s} = feed(["é!"], ["café"])
    assert Enum.reverse(out) == ["caf"]
    assert StopStrings.flush(s) == "é"
  end
end
