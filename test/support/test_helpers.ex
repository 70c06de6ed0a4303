defmodule Qwen3.TestHelpers do
  @moduledoc false

  @doc "Polls `check` every 10 ms until it holds (true) or `tries` run out (false)."
  def eventually(tries \\ 200, check) do
    cond do
      check.() -> true
      tries == 0 -> false
      true -> Process.sleep(10) && eventually(tries - 1, check)
    end
  end
end
