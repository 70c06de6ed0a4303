defmodule Qwen3.NotebookTest do
  # Runs every Elixir cell of notebooks/qwen3.livemd, in order and in one binding, on the
  # tiny checkpoint, so the notebook keeps working. The Mix.install cell is skipped: the
  # library is already loaded here.
  use ExUnit.Case, async: false
  import ExUnit.CaptureIO

  @notebook Path.expand("../../notebooks/qwen3.livemd", __DIR__)

  test "every cell of the notebook runs" do
    cells =
      Regex.scan(~r/```elixir\n(.*?)```/s, File.read!(@notebook), capture: :all_but_first)
      |> Enum.map(&hd/1)
      |> Enum.reject(&String.contains?(&1, "Mix.install"))

    assert length(cells) >= 8
    previous = System.get_env("QWEN3_MODEL")
    System.put_env("QWEN3_MODEL", Qwen3.Fixtures.chat_model_path())

    try do
      output =
        capture_io(fn ->
          binding =
            Enum.reduce(cells, [], fn cell, binding ->
              {_value, binding} = Code.eval_string(cell, binding, file: @notebook)
              binding
            end)

          send(self(), {:binding, binding})
        end)

      assert_received {:binding, binding}
      assert %{content: content} = binding[:reply2]
      assert is_binary(content)
      assert binding[:a].text == binding[:b].text
      assert output =~ "| greedy, native step |"
    after
      if previous, do: System.put_env("QWEN3_MODEL", previous), else: System.delete_env("QWEN3_MODEL")
    end
  end
end
