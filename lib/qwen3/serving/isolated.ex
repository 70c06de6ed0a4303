defmodule Qwen3.Serving.Isolated do
  @moduledoc false
  # `Qwen3.Serving` with `isolate: true`: the model runs in a serving on a `:peer` node (its
  # own OS process) that joins the group of the serving's name, so `Qwen3.Serving.generate/3`
  # and `stream/3` reach it as any serving of another node. If that OS process dies (an MLX
  # abort kills it: Metal command-buffer errors do), its running requests fail with
  # `:node_down`, and this process starts a new node and loads the model again.

  use GenServer
  require Logger

  # The serving options a node's serving gets (the isolation is this process's).
  @node_serving_keys [:name, :batch_size, :max_len, :max_queue, :prefill_chunk, :prefix_cache_bytes, :load]

  def start_link(opts), do: GenServer.start_link(__MODULE__, opts)

  @doc "The model an isolated serving of `name` was started with in this VM, or nil."
  def local_model(name) do
    case Registry.lookup(Qwen3.Registry, {:isolated, name}) do
      [{_pid, model}] -> model
      [] -> nil
    end
  end

  @doc "The node the model runs on now (nil while it starts), and how many times it restarted."
  def status(pid), do: GenServer.call(pid, :status)

  @impl true
  def init(opts) do
    cond do
      not Node.alive?() ->
        {:stop,
         "isolate: true runs the model on a peer node: start this VM distributed (--sname, or Node.start/2) first"}

      opts[:name] == nil ->
        {:stop, "isolate: true needs :name (callers reach the model's node by it)"}

      true ->
        Process.flag(:trap_exit, true)
        # A model loaded here stays this VM's view of it (tokenizer, chat template, info),
        # for `Qwen3.Serving.model/1` and so for the HTTP server.
        with %Qwen3.Model{} = model <- opts[:model],
             do: {:ok, _} = Registry.register(Qwen3.Registry, {:isolated, opts[:name]}, model)

        {:ok, %{opts: serving_opts(opts), peer: nil, node: nil, restarts: 0}, {:continue, :start}}
    end
  end

  # A model loaded in this VM cannot move to another: its node loads it from its path.
  defp serving_opts(opts) do
    opts = Keyword.take(opts, @node_serving_keys ++ [:model])

    case opts[:model] do
      %Qwen3.Model{path: path, device: device, info: info} ->
        load = Keyword.merge([device: device, dtype: info.dtype, weights: info.weights], opts[:load] || [])
        opts |> Keyword.put(:model, path) |> Keyword.put(:load, load)

      _ ->
        opts
    end
  end

  @impl true
  def handle_continue(:start, state) do
    case start_node(state.opts) do
      {:ok, peer, node} ->
        {:noreply, %{state | peer: peer, node: node}}

      {:error, reason} ->
        {:stop, {:model_node_failed, reason}, state}
    end
  end

  @impl true
  def handle_call(:status, _from, state), do: {:reply, %{node: state.node, restarts: state.restarts}, state}

  @impl true
  def handle_info({:EXIT, peer, reason}, %{peer: peer} = state) do
    Logger.warning("qwen3: the model node #{state.node} went down (#{inspect(reason)}); starting a new one")
    {:noreply, %{state | peer: nil, node: nil, restarts: state.restarts + 1}, {:continue, :start}}
  end

  def handle_info({:EXIT, _other, reason}, state), do: {:stop, reason, state}

  @impl true
  def terminate(_reason, %{peer: peer}) when is_pid(peer), do: :peer.stop(peer)
  def terminate(_reason, _state), do: :ok

  defp start_node(opts) do
    code_path = Enum.flat_map(:code.get_path(), &[~c"-pa", &1])
    name = :"qwen3_model_#{System.unique_integer([:positive])}"

    with {:ok, peer, node} <- :peer.start_link(%{name: name, args: code_path, wait_boot: 60_000}),
         {:ok, _} <- :erpc.call(node, Application, :ensure_all_started, [:qwen3]),
         {:ok, _} <- :erpc.call(node, Supervisor, :start_child, [Qwen3.Supervisor, {Qwen3.Serving, opts}]) do
      {:ok, peer, node}
    end
  catch
    kind, reason -> {:error, {kind, reason}}
  end
end
