defmodule Qwen3.JSONTest do
  use ExUnit.Case, async: true
  alias Qwen3.JSON

  test "round trips values and keeps unicode" do
    value = %{"a" => [1, 2.5, nil, true, "é 👋"], "b" => %{"c" => "quote \" and \\ and \n"}}
    assert value |> JSON.encode!() |> JSON.decode!() == value
  end

  test "atom keys and atom values become strings" do
    assert JSON.decode!(JSON.encode!(%{reason: :stop, list: [{1, 2}]})) == %{
             "reason" => "stop",
             "list" => [[1, 2]]
           }
  end

  test "malformed JSON is a tagged error" do
    assert {:error, %Qwen3.Error{kind: :invalid_json}} = JSON.decode("{\"a\": ")
  end
end
