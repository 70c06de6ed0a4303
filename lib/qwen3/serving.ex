defmodule Qwen3.Serving do
  @start_options [
    model: [
      default: nil,
      check: {:struct_or_path, Qwen3.Model},
      doc: "a loaded `Qwen3.Model`, or a path / repo id to load (with `:load` options)"
    ],
    name: [
      default: nil,
      check: :atom,
      doc: "registers the serving locally and joins the `:pg` group of that name"
    ],
    batch_size: [default: 8, check: :pos_integer, doc: "requests decoding together, one slot each"],
    max_len: [default: 1024, check: :pos_integer, doc: "tokens per slot (prompt and output)"],
    max_queue: [
      default: 64,
      check: :non_neg_integer,
      doc:
        "requests waiting beyond the running ones; past it a request gets " <>
          "`{:error, %Qwen3.Error{kind: :overloaded}}`"
    ],
    prefill_chunk: [
      default: 256,
      check: :pos_integer,
      doc: "prompt tokens prefilled between two decode steps"
    ],
    prefix_cache_bytes: [
      default: 0,
      check: :non_neg_integer,
      doc:
        "bytes of KV cache the serving keeps from finished requests (`Qwen3.PrefixCache`, least " <>
          "recently used evicted first): a request whose prompt starts as one of them did copies " <>
          "that prefix instead of prefilling it. 0 keeps none"
    ],
    load: [default: [], check: :keyword, doc: "`Qwen3.Model.load/2` options, when `:model` is a path"],
    isolate: [
      default: false,
      check: :boolean,
      doc:
        "runs the model on a `:peer` node of its own (needs `:name` and a distributed VM): if " <>
          "that OS process dies, its running requests fail with `:node_down`, and a new node " <>
          "loads the model again, while this VM carries on"
    ]
  ]

  @moduledoc """
  Serves many callers from one model with continuous batching, on one node or several.

      children = [{Qwen3.Serving, model: model, name: MyApp.LLM, batch_size: 8}]
      {:ok, %{text: text}} = Qwen3.Serving.generate(MyApp.LLM, "Hello", max_new_tokens: 20)
      MyApp.LLM |> Qwen3.Serving.stream("Once upon a time") |> Enum.each(&IO.write/1)

  A serving keeps up to `:batch_size` requests running. Each one gets a slot (a one-row KV
  cache of `:max_len` tokens, kept for the next request, which reuses any common prompt
  prefix), is prefilled in chunks of `:prefill_chunk` tokens between decode steps, and then
  decodes together with the others: one batched step per token for all of them. A finished
  request leaves at once and the next queued one takes its slot. Each request keeps its own
  options (sampler, seed, stop, max_new_tokens…): batched results equal `Qwen3.generate/3`
  on the same model and seed, up to float rounding in batched products.

  ## Options of `start_link/1`

  #{Qwen3.Options.docs(@start_options)}

  Slots are allocated on first use; each holds `max_len` tokens of keys and values for
  every layer.

  ## Across nodes
  Servings with the same name on connected nodes form one group. `generate/3` and
  `stream/3` given a name go to a serving on this node when it has a free slot, else to the
  least-loaded one in the group (by running plus queued requests per slot), and move on to
  the next if that one is full or gone. If the node of a running request goes down, the
  request fails with `:node_down`; later requests go to the remaining nodes.
  """
  alias Qwen3.Error
  alias Qwen3.Serving.{Board, Server}

  @scope __MODULE__

  @doc false
  def child_spec(opts),
    do: %{id: Keyword.get(opts, :name, __MODULE__), start: {__MODULE__, :start_link, [opts]}}

  @doc "Starts a serving (see the module doc for the options)."
  @spec start_link(keyword) :: GenServer.on_start()
  def start_link(opts) do
    opts = Qwen3.Options.validate!(opts, @start_options)
    if opts[:isolate], do: Qwen3.Serving.Isolated.start_link(opts), else: Server.start_link(opts)
  end

  @doc """
  Generates a continuation of `prompt` (text, token ids or chat messages, as in
  `Qwen3.generate/3`) and returns the same result, without `:kv_cache`, with
  `timing.queue_ms` (time before the request got a slot).

  Options are those of `Qwen3.generate/3` (`Qwen3.Options`) except `:kv_cache`,
  `:max_len`, `:loop` and `:dump_logits`; `:timeout` (ms) counts from submission,
  queueing included. They are checked once, at submission.

  Errors: `:overloaded` (every serving full), `:not_found` (no serving of that name),
  `:timeout`, `:node_down` / `:serving_down` (the serving went away mid-request), and the
  prompt errors of `Qwen3.generate/3`. Bad options raise `ArgumentError`.
  """
  @spec generate(pid | atom, term, keyword) :: {:ok, map} | {:error, Error.t()}
  def generate(serving, prompt, opts \\ []) do
    with {:ok, pid, ref, monitor} <- submit(serving, prompt, opts, :collect),
         do: await(pid, ref, monitor)
  end

  @doc """
  A lazy stream of text chunks. With `tokens: true` it yields `{text_chunk, token_id}` per
  token; with `events: true`, `{:token, text_chunk, token_id, logprobs}` per token
  (`logprobs` nil unless asked for) and last `{:done, result}`, the result
  `generate/3` would return, or `{:error, %Qwen3.Error{}}` instead of raising. Halting it
  removes the request from the batch. Otherwise a failure raises `Qwen3.Error`; bad options
  raise `ArgumentError`.
  """
  @spec stream(pid | atom, term, keyword) :: Enumerable.t()
  def stream(serving, prompt, opts \\ []) do
    {tokens?, opts} = Keyword.pop(opts, :tokens, false)
    {events?, opts} = Keyword.pop(opts, :events, false)
    shape = if events?, do: :events, else: if(tokens?, do: :tokens, else: :text)

    Stream.resource(
      fn ->
        case submit(serving, prompt, opts, :stream) do
          {:ok, pid, ref, monitor} -> {pid, ref, monitor, :running}
          {:error, e} when shape == :events -> {:failed, e}
          {:error, e} -> raise e
        end
      end,
      &next_chunk(&1, shape),
      &close/1
    )
  end

  @doc """
  Counters of a serving (a pid, or a name registered on this node): `:queue_length`,
  `:active` (`:prefilling` + `:decoding`), `:occupancy` (active / batch size),
  `:tokens_per_second` (decoded, over the last 5 s), `:tokens_generated`, `:decode_steps`,
  `:decode_rows` (their sum: the mean batch is `decode_rows / decode_steps`), and request
  counts `:submitted`, `:completed`, `:failed`, `:rejected`, `:cancelled`, `:timed_out`.
  Read from a table the serving updates, so it answers at once even mid-step.
  """
  @spec stats(pid | atom) :: map | nil
  def stats(serving) when is_pid(serving), do: Board.get(serving)

  def stats(name) when is_atom(name) do
    # A name not registered here may be an isolated serving's group, on its model node.
    case Process.whereis(name) || List.first(members(name)) do
      nil -> nil
      pid -> Board.get(pid)
    end
  end

  @doc """
  The model a serving on this node runs (a pid or a local name): `{:ok, model}`, or
  `{:error, %Qwen3.Error{kind: :loading}}` while it loads its checkpoint. Answers at once,
  even while the serving computes a step.
  """
  @spec model(pid | atom) :: {:ok, Qwen3.Model.t()} | {:error, Error.t()}
  def model(serving) do
    local = serving |> pid_of() |> then(&(&1 && Board.model(&1)))
    # An isolated serving's model runs elsewhere; this VM's copy answers once a node serves it.
    isolated = fn ->
      is_atom(serving) and members(serving) != [] and Qwen3.Serving.Isolated.local_model(serving)
    end

    case local || isolated.() || nil do
      nil -> {:error, %Error{kind: :loading, message: "serving #{inspect(serving)} is not ready"}}
      model -> {:ok, model}
    end
  end

  defp pid_of(pid) when is_pid(pid), do: pid
  defp pid_of(name) when is_atom(name), do: Process.whereis(name)

  @doc "The servings of group `name` on all connected nodes."
  @spec members(atom) :: [pid]
  def members(name) when is_atom(name), do: :pg.get_members(@scope, name)

  ## Routing and submission

  defp submit(serving, prompt, opts, mode) do
    ref = make_ref()
    request = %{ref: ref, caller: self(), prompt: prompt, opts: opts, mode: mode}
    try_each(candidates(serving), request, not_found(serving))
  end

  # Tries servings in order; a full or vanished one passes the request to the next.
  defp try_each([], _request, last_error), do: {:error, last_error}

  defp try_each([pid | rest], request, _last_error) do
    monitor = Process.monitor(pid)

    case call(pid, {:submit, request}) do
      :ok ->
        {:ok, pid, request.ref, monitor}

      {:raise, message} ->
        Process.demonitor(monitor, [:flush])
        raise ArgumentError, message

      {:error, %Error{kind: kind} = e} when kind in [:overloaded, :node_down, :serving_down] ->
        Process.demonitor(monitor, [:flush])
        try_each(rest, request, e)

      {:error, _} = error ->
        Process.demonitor(monitor, [:flush])
        error
    end
  end

  defp call(pid, message) do
    GenServer.call(pid, message, :infinity)
  catch
    :exit, reason -> {:error, down_error(pid, reason)}
  end

  defp candidates(pid) when is_pid(pid), do: [pid]

  defp candidates(name) when is_atom(name) do
    {local, remote} = name |> members() |> Enum.split_with(&(node(&1) == node()))
    loads = fn pids -> for pid <- pids, stats = Board.get(pid), do: {pid, stats} end
    {roomy, full} = local |> then(loads) |> Enum.split_with(fn {_, s} -> load(s) < 1 end)

    if roomy != [],
      do: by_load(roomy) ++ by_load(full ++ loads.(remote)),
      else: by_load(full ++ loads.(remote))
  end

  # Least loaded first; equal loads in random order, so callers spread over idle servings.
  defp by_load(pairs),
    do: pairs |> Enum.shuffle() |> Enum.sort_by(fn {_, s} -> load(s) end) |> Enum.map(&elem(&1, 0))

  defp load(stats), do: (stats.active + stats.queue_length) / stats.batch_size

  defp not_found(serving),
    do: %Error{kind: :not_found, message: "no serving #{inspect(serving)} on this node or a connected one"}

  defp down_error(pid, reason) do
    if reason == :noconnection or match?({{:nodedown, _}, _}, reason),
      do: %Error{kind: :node_down, message: "the node of serving #{inspect(pid)} (#{node(pid)}) went down"},
      else: %Error{
        kind: :serving_down,
        message: "serving #{inspect(pid)} exited: #{inspect(reason, limit: 5)}"
      }
  end

  ## Replies

  defp await(pid, ref, monitor) do
    receive do
      {^ref, {:done, result}} ->
        Process.demonitor(monitor, [:flush])
        {:ok, result}

      {^ref, {:error, e}} ->
        Process.demonitor(monitor, [:flush])
        {:error, e}

      {:DOWN, ^monitor, :process, _, reason} ->
        {:error, down_error(pid, reason)}
    end
  end

  defp next_chunk({_, _, _, :done} = state, _shape), do: {:halt, state}
  defp next_chunk({:failed, e}, :events), do: {[{:error, e}], :failed}
  defp next_chunk(:failed, :events), do: {:halt, :failed}

  defp next_chunk({pid, ref, monitor, :running} = state, shape) do
    receive do
      {^ref, {:token, text, id, logprobs}} ->
        case shape do
          :events -> {[{:token, text, id, logprobs}], state}
          :tokens -> {[{text, id}], state}
          :text -> {Enum.reject([text], &(&1 == "")), state}
        end

      {^ref, {:done, result}} ->
        done = {pid, ref, monitor, :done}
        if shape == :events, do: {[{:done, result}], done}, else: {:halt, done}

      {^ref, {:error, e}} ->
        failed(state, shape, e)

      {:DOWN, ^monitor, :process, _, reason} ->
        failed(state, shape, down_error(pid, reason))
    end
  end

  defp failed({pid, ref, monitor, _}, :events, e), do: {[{:error, e}], {pid, ref, monitor, :done}}
  defp failed(_state, _shape, e), do: raise(e)

  # Halted early (or failed): once the serving has dropped the request (a call, so every
  # token it sent before is already here), its messages are flushed.
  defp close(:failed), do: :ok

  defp close({pid, ref, monitor, state}) do
    if state == :running, do: call(pid, {:cancel, ref})
    Process.demonitor(monitor, [:flush])
    Qwen3.Streamer.flush(ref)
  end
end
