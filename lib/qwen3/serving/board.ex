defmodule Qwen3.Serving.Board do
  @moduledoc false
  # Each serving posts its counters here (a public ETS table per node) after every change,
  # so routing and `Qwen3.Serving.stats/1` read them without waiting for a serving that is
  # busy computing a step (the model too, for the HTTP server). Another node's board is read with one `:erpc` call. The owner
  # process drops a serving's entry when that serving exits.

  use GenServer

  @table __MODULE__

  def start_link(_opts), do: GenServer.start_link(__MODULE__, :ok, name: __MODULE__)

  @doc "Registers the calling serving and its model; its entries go when it exits."
  def register(stats, model), do: GenServer.call(__MODULE__, {:register, self(), stats, model})

  @doc "The model of a serving on this node, or nil."
  def model(pid) do
    case :ets.lookup(@table, {:model, pid}) do
      [{_, model}] -> model
      [] -> nil
    end
  end

  @doc "Replaces the calling serving's counters."
  def put(stats), do: :ets.insert(@table, {self(), stats})

  @doc "The counters of a serving on any connected node, or nil."
  @spec get(pid) :: map | nil
  def get(pid) when node(pid) == node(), do: lookup(pid)

  def get(pid) do
    :erpc.call(node(pid), __MODULE__, :lookup, [pid], 2_000)
  catch
    _, _ -> nil
  end

  @doc false
  # Adds `:tokens_per_second`: decoded tokens over the last few seconds, measured from the
  # oldest step seen there to now (so it falls off when the serving goes idle).
  def lookup(pid) do
    case :ets.lookup(@table, pid) do
      [{^pid, stats}] ->
        {window, stats} = Map.pop(stats, :window, [])
        Map.put(stats, :tokens_per_second, rate(window))

      [] ->
        nil
    end
  end

  defp rate(window) when length(window) < 2, do: 0.0

  defp rate(window) do
    {oldest, _} = List.last(window)
    tokens = window |> Enum.drop(-1) |> Enum.map(&elem(&1, 1)) |> Enum.sum()
    seconds = System.convert_time_unit(System.monotonic_time() - oldest, :native, :microsecond) / 1.0e6
    if seconds > 0, do: tokens / seconds, else: 0.0
  end

  @impl true
  def init(:ok) do
    :ets.new(@table, [:named_table, :public, :set, read_concurrency: true])
    {:ok, %{}}
  end

  @impl true
  def handle_call({:register, pid, stats, model}, _from, monitors) do
    :ets.insert(@table, [{pid, stats}, {{:model, pid}, model}])
    {:reply, :ok, Map.put(monitors, Process.monitor(pid), pid)}
  end

  @impl true
  def handle_info({:DOWN, monitor, :process, pid, _reason}, monitors) do
    :ets.delete(@table, pid)
    :ets.delete(@table, {:model, pid})
    {:noreply, Map.delete(monitors, monitor)}
  end
end
