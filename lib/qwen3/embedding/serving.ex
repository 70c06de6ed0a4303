defmodule Qwen3.Embedding.Serving do
  @start_options [
    model: [
      default: nil,
      check: {:struct_or_path, Qwen3.Model},
      doc: "a loaded `Qwen3.Model`, or a path to load"
    ],
    name: [default: nil, check: :atom, doc: "registers the serving locally under this name"],
    batch_size: [default: 16, check: :pos_integer, doc: "texts embedded together at most, from any callers"]
  ]

  @moduledoc """
  Embeds many callers' texts together: texts that arrive while a batch runs wait, and the
  next batch takes up to `:batch_size` of them, whoever sent them (like `Qwen3.Serving`
  for generation). Each caller gets its own vectors, equal to `Qwen3.embed/3`'s.

      children = [{Qwen3.Embedding.Serving, model: model, name: MyApp.Embedder}]
      {:ok, vectors} = Qwen3.Embedding.Serving.embed(MyApp.Embedder, ["a text", "another"])

  ## Options of `start_link/1`

  #{Qwen3.Options.docs(@start_options)}

  Callers tokenize (and format with `:instruction`) in their own process; the serving runs
  the batches, one at a time, in a task of its own, so it keeps taking requests meanwhile.
  """
  use GenServer

  alias Qwen3.{Embedding, Error, Model}

  @doc false
  def child_spec(opts),
    do: %{id: Keyword.get(opts, :name, __MODULE__), start: {__MODULE__, :start_link, [opts]}}

  @spec start_link(keyword) :: GenServer.on_start()
  def start_link(opts) do
    opts = Qwen3.Options.validate!(opts, @start_options)
    gen_opts = if opts[:name], do: [name: opts[:name]], else: []
    GenServer.start_link(__MODULE__, opts, gen_opts)
  end

  @doc """
  Embeds `texts` as `Qwen3.embed/3` does, with its options (`:instruction`, `:dimensions`,
  `:max_length`, `:eos_token`; the batch size is the serving's) and `:timeout` (ms, default
  60 000).
  """
  @spec embed(GenServer.server(), String.t() | [String.t()], keyword) ::
          {:ok, [float] | [[float]]} | {:error, Error.t()}
  def embed(serving, texts, opts \\ [])

  def embed(serving, text, opts) when is_binary(text) do
    with {:ok, [vector]} <- embed(serving, [text], opts), do: {:ok, vector}
  end

  def embed(serving, texts, opts) when is_list(texts) do
    {timeout, opts} = Keyword.pop(opts, :timeout, 60_000)
    opts = Qwen3.Options.validate!(opts, :embedding)
    model = GenServer.call(serving, :model)

    with {:ok, rows} <- Embedding.token_rows(model, texts, opts),
         {:ok, vectors} <- GenServer.call(serving, {:embed, rows}, timeout),
         do: {:ok, Enum.map(vectors, &Embedding.truncate(&1, opts[:dimensions]))}
  end

  @doc "Counts so far: `:requests`, `:texts`, `:batches` (fewer than requests when shared)."
  @spec stats(GenServer.server()) :: map
  def stats(serving), do: GenServer.call(serving, :stats)

  @impl true
  def init(opts) do
    model =
      case opts[:model] do
        %Model{} = m -> m
        path when is_binary(path) -> Model.load!(path)
        nil -> raise ArgumentError, "Qwen3.Embedding.Serving needs :model"
      end

    stats = %{requests: 0, texts: 0, batches: 0}
    state = %{model: model, batch_size: opts[:batch_size], queue: :queue.new(), requests: %{}, running: nil}
    {:ok, Map.put(state, :stats, stats)}
  end

  @impl true
  def handle_call(:model, _from, state), do: {:reply, state.model, state}
  def handle_call(:stats, _from, state), do: {:reply, state.stats, state}

  def handle_call({:embed, rows}, from, state) do
    # One entry per text: {caller, its index, ids}; a caller's reply waits for all of its.
    request = %{from: from, left: length(rows), vectors: %{}}
    ref = make_ref()
    queue = Enum.reduce(Enum.with_index(rows), state.queue, fn {ids, i}, q -> :queue.in({ref, i, ids}, q) end)
    stats = %{state.stats | requests: state.stats.requests + 1, texts: state.stats.texts + length(rows)}
    state = %{state | queue: queue, stats: stats, requests: Map.put(state.requests, ref, request)}
    {:noreply, run_next(state)}
  end

  @impl true
  def handle_info({task_ref, result}, %{running: {%Task{ref: task_ref}, batch}} = state) do
    Process.demonitor(task_ref, [:flush])
    state = %{state | running: nil}

    state =
      case result do
        {:ok, vectors} -> Enum.zip(batch, vectors) |> Enum.reduce(state, &deliver/2)
        {:error, _} = error -> Enum.reduce(batch, state, &fail(&1, error, &2))
      end

    {:noreply, run_next(state)}
  end

  def handle_info({:DOWN, ref, :process, _, reason}, %{running: {%Task{ref: ref}, batch}} = state) do
    error = {:error, %Error{kind: :internal, message: "the embedding batch crashed: #{inspect(reason)}"}}
    {:noreply, run_next(Enum.reduce(batch, %{state | running: nil}, &fail(&1, error, &2)))}
  end

  defp run_next(%{running: nil} = state) do
    {batch, queue} = take(state.queue, state.batch_size, [])

    if batch == [] do
      state
    else
      model = state.model
      task = Task.async(fn -> Embedding.embed_batch(model, Enum.map(batch, &elem(&1, 2))) end)
      stats = %{state.stats | batches: state.stats.batches + 1}
      %{state | queue: queue, running: {task, batch}, stats: stats}
    end
  end

  defp run_next(state), do: state

  defp take(queue, 0, acc), do: {Enum.reverse(acc), queue}

  defp take(queue, n, acc) do
    case :queue.out(queue) do
      {{:value, item}, rest} -> take(rest, n - 1, [item | acc])
      {:empty, _} -> {Enum.reverse(acc), queue}
    end
  end

  defp deliver({{ref, i, _}, vector}, state) do
    case state.requests[ref] do
      nil ->
        state

      %{left: 1} = request ->
        vectors = request.vectors |> Map.put(i, vector) |> Enum.sort() |> Enum.map(&elem(&1, 1))
        GenServer.reply(request.from, {:ok, vectors})
        %{state | requests: Map.delete(state.requests, ref)}

      request ->
        request = %{request | left: request.left - 1, vectors: Map.put(request.vectors, i, vector)}
        %{state | requests: Map.put(state.requests, ref, request)}
    end
  end

  # A failed batch fails each of its requests once; their other queued texts are dropped.
  defp fail({ref, _, _}, error, state) do
    case state.requests[ref] do
      nil ->
        state

      request ->
        GenServer.reply(request.from, error)
        queue = :queue.filter(fn {r, _, _} -> r != ref end, state.queue)
        %{state | requests: Map.delete(state.requests, ref), queue: queue}
    end
  end
end
