defmodule Qwen3.TestNode do
  @moduledoc false
  # Makes this VM a distributed node, for tests that start `:peer` nodes. A fresh machine
  # runs no epmd, and `epmd -daemon` returns before the daemon listens: the suite starts it
  # and waits until it answers before starting distribution.

  @wait_ms 10_000

  @doc "Starts distribution (and epmd, if none answers); returns a function that stops it."
  def start! do
    if Node.alive?() do
      fn -> :ok end
    else
      await_epmd!(start_epmd!())
      name = :"qwen3_test_#{System.unique_integer([:positive])}"

      case Node.start(name, :shortnames) do
        {:ok, _} -> fn -> Node.stop() end
        {:error, reason} -> raise "could not start distribution as #{name}: #{inspect(reason)}"
      end
    end
  end

  defp start_epmd! do
    if epmd_answers?() do
      :running
    else
      epmd = System.find_executable("epmd") || raise "epmd is not on PATH (it ships with Erlang)"
      {out, status} = System.cmd(epmd, ["-daemon"], stderr_to_stdout: true)
      if status != 0, do: raise("`epmd -daemon` failed (status #{status}): #{out}")
      :started
    end
  end

  defp await_epmd!(how, waited \\ 0) do
    cond do
      epmd_answers?() ->
        :ok

      waited >= @wait_ms ->
        raise "epmd (#{how}) did not answer on port #{epmd_port()} within #{@wait_ms} ms"

      true ->
        Process.sleep(20)
        await_epmd!(how, waited + 20)
    end
  end

  # `:erl_epmd.names/0` asks the daemon for its registered nodes; it needs no distribution.
  defp epmd_answers?, do: match?({:ok, _}, :erl_epmd.names())

  defp epmd_port, do: System.get_env("ERL_EPMD_PORT", "4369")
end
