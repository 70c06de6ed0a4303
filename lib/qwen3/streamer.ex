defmodule Qwen3.Streamer do
  @moduledoc false
  # The task behind `Qwen3.stream_to/4`: generates token by token, sends each to the
  # receiver, and stops as soon as the receiver is gone.

  alias Qwen3.Generate

  # `starter` hears `{ref, :registered}` once `Qwen3.cancel(ref)` can find this task.
  # `prepared` is what `Qwen3.Request.new/3` returned.
  def run(starter, pid, ref, prepared, model) do
    {:ok, _} = Registry.register(Qwen3.Registry, ref, pid)
    send(starter, {ref, :registered})
    monitor = Process.monitor(pid)

    case with({:ok, request} <- prepared, do: Generate.start(request, model)) do
      {:ok, gen} -> loop(gen, pid, ref, monitor)
      {:error, e} -> send(pid, {ref, {:error, e}})
    end
  end

  defp loop(gen, pid, ref, monitor) do
    receive do
      {:DOWN, ^monitor, :process, _, _} -> :receiver_gone
    after
      0 ->
        case Generate.next(gen) do
          {:token, id, text, gen} ->
            send(pid, {ref, {:token, text, id}})
            loop(gen, pid, ref, monitor)

          {:done, gen} ->
            send(pid, {ref, {:done, Generate.result(gen)}})

          {:error, e} ->
            send(pid, {ref, {:error, e}})
        end
    end
  end

  @doc "Drops every `{ref, _}` message already in the caller's mailbox."
  def flush(ref) do
    receive do
      {^ref, _} -> flush(ref)
    after
      0 -> :ok
    end
  end
end
