defmodule Qwen3.Serving.Server do
  @moduledoc false
  # The process behind `Qwen3.Serving`. Requests wait in a bounded queue, take a free slot
  # (a one-row KV cache, reused), prefill in chunks between decode steps, and decode
  # together: one `Model.forward_rows` + `Sampler.sample_rows` per step for every row.
  # A row leaves when it finishes, times out, or its caller exits or cancels.

  use GenServer

  alias Qwen3.{Error, KVCache, Model, PrefixCache, Request, Sequence}
  alias Qwen3.Serving.{Board, Row}

  @scope Qwen3.Serving
  @window_ms 5_000
  # Options a request may not set: the serving owns the caches and the loop.
  @not_per_request [:kv_cache, :max_len, :max_kv_size, :kv_bits, :loop, :dump_logits]

  defstruct [
    :model,
    :name,
    :batch_size,
    :max_len,
    :max_queue,
    :prefill_chunk,
    :prefix,
    free: [],
    unallocated: 0,
    rows: [],
    queue: :queue.new(),
    stepping: false,
    window: [],
    counts: %{
      submitted: 0,
      completed: 0,
      failed: 0,
      rejected: 0,
      cancelled: 0,
      timed_out: 0,
      tokens_generated: 0,
      decode_steps: 0,
      decode_rows: 0
    }
  ]

  # `opts` are checked by `Qwen3.Serving.start_link/1`.
  def start_link(opts),
    do: GenServer.start_link(__MODULE__, opts, if(opts[:name], do: [name: opts[:name]], else: []))

  @impl true
  def init(opts) do
    state = %__MODULE__{
      name: opts[:name],
      batch_size: opts[:batch_size],
      max_len: opts[:max_len],
      max_queue: opts[:max_queue],
      prefill_chunk: opts[:prefill_chunk],
      unallocated: opts[:batch_size],
      prefix: if(opts[:prefix_cache_bytes] > 0, do: PrefixCache.new(opts[:prefix_cache_bytes]))
    }

    case opts[:model] do
      %Model{} = model -> {:ok, joined(%{state | model: model})}
      path -> {:ok, state, {:continue, {:load, path, opts[:load]}}}
    end
  end

  @impl true
  def handle_continue({:load, path, load_opts}, state) do
    case Model.load(path, load_opts) do
      {:ok, model} -> {:noreply, joined(%{state | model: model})}
      {:error, e} -> {:stop, {:load_failed, e}, state}
    end
  end

  # Visible to routing only once it can take requests.
  defp joined(state) do
    if state.name, do: :ok = :pg.join(@scope, state.name, self())
    :ok = Board.register(stats(state), state.model)
    state
  end

  @impl true
  def handle_call({:submit, request}, _from, state) do
    case enqueue(request, state) do
      {:ok, state} -> {:reply, :ok, state |> publish() |> schedule()}
      {:error, reply, state} -> {:reply, reply, publish(state)}
    end
  end

  def handle_call({:cancel, ref}, _from, state),
    do: {:reply, :ok, state |> drop(&(&1.ref == ref), :cancelled) |> publish()}

  @impl true
  def handle_info({:DOWN, monitor, :process, _pid, _reason}, state),
    do: {:noreply, state |> drop(&(&1.monitor == monitor), :cancelled) |> publish()}

  def handle_info(:step, state) do
    state = %{state | stepping: false} |> expire() |> admit() |> prefill() |> decode()
    {:noreply, state |> publish() |> schedule()}
  end

  # A late reply nobody waits for any more must not stop the serving.
  def handle_info(_other, state), do: {:noreply, state}

  ## Submission

  defp enqueue(request, state) do
    in_system = length(state.rows) + :queue.len(state.queue)

    if in_system >= state.batch_size + state.max_queue do
      e = %Error{
        kind: :overloaded,
        message: "serving #{inspect(state.name || self())} is full (#{in_system} requests)"
      }

      {:error, {:error, e}, count(state, :rejected)}
    else
      case prepare(request, state) do
        {:ok, row} -> {:ok, %{count(state, :submitted) | queue: :queue.in(row, state.queue)}}
        {:error, _} = error -> {:error, error, state}
        {:raise, _} = raise -> {:error, raise, state}
      end
    end
  end

  # The prompt as a checked request; ArgumentError travels back to be raised.
  defp prepare(%{prompt: prompt, opts: opts} = request, state) do
    check_request_options!(opts)
    {timeout, opts} = Keyword.pop(opts, :timeout, :infinity)

    with {:ok, req} <- Request.new(state.model, prompt, opts),
         :ok <- fits(req.ids, state.max_len) do
      now = System.monotonic_time()

      {:ok,
       %Row{
         ref: request.ref,
         caller: request.caller,
         monitor: Process.monitor(request.caller),
         mode: request.mode,
         request: req,
         submitted_at: now,
         deadline:
           if(timeout != :infinity, do: now + System.convert_time_unit(timeout, :millisecond, :native))
       }}
    end
  rescue
    e in ArgumentError -> {:raise, Exception.message(e)}
  end

  defp check_request_options!(opts) do
    case Enum.find(@not_per_request, &Keyword.has_key?(opts, &1)) do
      nil -> :ok
      key -> raise ArgumentError, "#{inspect(key)} cannot be set per request in Qwen3.Serving"
    end

    if Keyword.has_key?(opts, :timeout), do: Qwen3.Options.check!(:timeout, opts[:timeout], :timeout)
  end

  defp fits(ids, max_len) when length(ids) <= max_len, do: :ok

  defp fits(ids, max_len),
    do:
      {:error,
       %Error{
         kind: :cache_overflow,
         message: "a #{length(ids)}-token prompt exceeds the serving's max_len of #{max_len}"
       }}

  ## Steps

  defp schedule(%{stepping: false} = state) do
    if state.rows != [] or not :queue.is_empty(state.queue) do
      send(self(), :step)
      %{state | stepping: true}
    else
      state
    end
  end

  defp schedule(state), do: state

  defp expire(state) do
    now = System.monotonic_time()
    {late, state} = take_out(state, &(&1.deadline != nil and &1.deadline < now))

    Enum.reduce(late, state, fn row, state ->
      ms = System.convert_time_unit(now - row.submitted_at, :native, :millisecond)

      e = %Error{
        kind: :timeout,
        message: "request timed out after #{ms} ms (#{Row.tokens_taken(row)} tokens)"
      }

      state |> fail(row, e, :timed_out) |> release(row)
    end)
  end

  defp admit(state) do
    with true <- state.free != [] or state.unallocated > 0,
         {{:value, row}, queue} <- :queue.out(state.queue) do
      state = %{state | queue: queue}

      case take_cache(state, row.request.ids) do
        {:ok, cache, state} ->
          case with({:ok, row} <- Row.admit(row, cache), do: shared_prefix(state, row)) do
            {:ok, row, state} -> admit(%{state | rows: state.rows ++ [row]})
            {:error, e} -> state |> fail(row, e) |> free(%{cache | tokens: nil}) |> admit()
          end

        {:error, e} ->
          admit(fail(state, row, e))
      end
    else
      _ -> state
    end
  end

  # A longer prefix of the row's prompt from the prefix cache than its slot kept, copied in.
  defp shared_prefix(%{prefix: nil} = state, row), do: {:ok, row, state}

  defp shared_prefix(state, row) do
    ids = row.request.ids
    {source, len, prefix} = PrefixCache.lookup(state.prefix, ids)
    # At least the last prompt token is fed, for logits to sample from.
    len = min(len, length(ids) - 1)
    state = %{state | prefix: prefix}

    if source != nil and len > row.fed do
      with {:ok, cache} <- KVCache.copy_prefix(row.cache, source, len),
           do: {:ok, %{row | cache: cache, fed: len}, state}
    else
      {:ok, row, state}
    end
  end

  # The free cache sharing the longest prefix with `ids`, else a new one.
  defp take_cache(%{free: []} = state, _ids) do
    with {:ok, cache} <- Model.init_kv_cache(state.model, max_len: state.max_len),
         do: {:ok, cache, %{state | unallocated: state.unallocated - 1}}
  end

  defp take_cache(state, ids) do
    best = Enum.max_by(state.free, &KVCache.common_prefix(&1.tokens || [], ids))
    {:ok, best, %{state | free: List.delete(state.free, best)}}
  end

  # Advances prefilling rows, oldest first, by up to `prefill_chunk` prompt tokens in all.
  defp prefill(state), do: prefill(state, Enum.filter(state.rows, &(&1.gen == nil)), state.prefill_chunk)

  defp prefill(state, [row | rest], budget) when budget > 0 do
    case Row.prefill(row, state.model, budget) do
      {:fed, n, row} -> prefill(replace(state, row), rest, budget - n)
      {:started, n, token, row} -> state |> replace(row) |> took(row, token) |> prefill(rest, budget - n)
      {:error, e} -> state |> remove(row) |> fail(row, e) |> release(row) |> prefill(rest, budget)
    end
  end

  defp prefill(state, _rows, _budget), do: state

  defp decode(state) do
    case Enum.filter(state.rows, &(&1.gen != nil)) do
      [] ->
        state

      rows ->
        case Row.decode(rows, state.model) do
          {:ok, results} ->
            state = note_step(state, length(rows))
            Enum.reduce(results, state, fn {row, token}, state -> took(state, row, token) end)

          {:error, e} ->
            Enum.reduce(rows, state, &(&2 |> remove(&1) |> fail(&1, e) |> release(&1)))
        end
    end
  end

  # A row's new token: sent to a streaming caller; the result once the row finished.
  defp took(state, row, {:token, id, text, gen}) do
    row = %{row | gen: gen}

    if row.mode == :stream,
      do: send(row.caller, {row.ref, {:token, text, id, Sequence.last_logprobs(gen.sequence)}})

    state = state |> replace(row) |> count(:tokens_generated)

    if Row.finished?(row) do
      {result, cache} = Row.result(row)
      send(row.caller, {row.ref, {:done, result}})
      Process.demonitor(row.monitor, [:flush])

      state =
        if state.prefix,
          do: %{state | prefix: PrefixCache.insert(state.prefix, state.model, cache)},
          else: state

      state |> remove(row) |> free(cache) |> count(:completed)
    else
      state
    end
  end

  ## Bookkeeping

  defp fail(state, row, e, counter \\ :failed) do
    send(row.caller, {row.ref, {:error, e}})
    Process.demonitor(row.monitor, [:flush])
    count(state, counter)
  end

  # Removes matching rows and queued requests (cancelled or caller gone) without a reply.
  defp drop(state, match?, counter) do
    {gone, state} = take_out(state, match?)

    Enum.reduce(gone, state, fn row, state ->
      Process.demonitor(row.monitor, [:flush])
      state |> release(row) |> count(counter)
    end)
  end

  # The running rows and queued requests that match, and the state without them.
  defp take_out(state, match?) do
    {rows_out, rows} = Enum.split_with(state.rows, match?)
    {queued_out, queued} = state.queue |> :queue.to_list() |> Enum.split_with(match?)
    {rows_out ++ queued_out, %{state | rows: rows, queue: :queue.from_list(queued)}}
  end

  # A row that did not finish: its cache content is unknown, so it is cleared on reuse.
  defp release(state, %Row{cache: nil}), do: state
  defp release(state, %Row{cache: cache}), do: free(state, %{cache | tokens: nil})

  defp free(state, %KVCache{} = cache), do: %{state | free: [cache | state.free]}

  defp replace(state, row),
    do: %{state | rows: Enum.map(state.rows, &if(&1.ref == row.ref, do: row, else: &1))}

  defp remove(state, row), do: %{state | rows: Enum.reject(state.rows, &(&1.ref == row.ref))}

  defp count(state, key, n \\ 1), do: %{state | counts: Map.update!(state.counts, key, &(&1 + n))}

  defp note_step(state, rows) do
    now = System.monotonic_time()
    horizon = now - System.convert_time_unit(@window_ms, :millisecond, :native)
    window = [{now, rows} | Enum.take_while(state.window, fn {t, _} -> t > horizon end)]
    %{count(count(state, :decode_steps), :decode_rows, rows) | window: window}
  end

  defp publish(state) do
    Board.put(stats(state))
    state
  end

  defp stats(state) do
    active = length(state.rows)
    prefilling = Enum.count(state.rows, &(&1.gen == nil))

    Map.merge(state.counts, %{
      name: state.name,
      node: node(),
      batch_size: state.batch_size,
      max_queue: state.max_queue,
      max_len: state.max_len,
      queue_length: :queue.len(state.queue),
      active: active,
      prefilling: prefilling,
      decoding: active - prefilling,
      occupancy: active / state.batch_size,
      window: state.window,
      prefix_cache: state.prefix && PrefixCache.stats(state.prefix)
    })
  end
end
