defmodule Qwen3.PrefixCache do
  @moduledoc """
  KV caches of finished requests, kept so that a later request whose prompt starts the same
  way (an agent's system prompt, tools and history, resent every turn) copies the longest
  prefix it shares with one of them and prefills only the rest. Least recently used entries
  are evicted to keep the entries' bytes within a budget.

  Entries are indexed by the hash of their prefixes at every 16-token block (a chain
  of block hashes), so a lookup costs a hash per block of the prompt, not a comparison with
  every entry. A plain data structure: `Qwen3.Serving` owns one (`:prefix_cache_bytes`).
  """
  alias Qwen3.{KVCache, Model}

  @block 16

  defstruct budget: 0,
            bytes: 0,
            clock: 0,
            entries: %{},
            index: %{},
            hits: 0,
            misses: 0,
            hit_tokens: 0,
            inserted: 0,
            evicted: 0

  @type t :: %__MODULE__{}

  @doc "An empty cache that keeps at most `budget` bytes of keys and values."
  @spec new(non_neg_integer) :: t
  def new(budget) when is_integer(budget) and budget >= 0, do: %__MODULE__{budget: budget}

  @doc """
  The entry sharing the longest prefix (at least one block) with `ids`, and that length:
  `{cache, len, pc}`, or `{nil, 0, pc}`. A hit makes the entry the most recently used.
  """
  @spec lookup(t, [non_neg_integer]) :: {KVCache.t() | nil, non_neg_integer, t}
  def lookup(%__MODULE__{} = pc, ids) do
    found =
      ids
      |> block_hashes()
      |> Enum.reverse()
      |> Enum.find_value(fn hash ->
        case Map.get(pc.index, hash) do
          [key | _] -> key
          nil -> nil
        end
      end)

    case found && pc.entries[found] do
      nil ->
        {nil, 0, %{pc | misses: pc.misses + 1}}

      entry ->
        len = KVCache.common_prefix(entry.cache.tokens, ids)
        entries = Map.put(pc.entries, found, %{entry | used: pc.clock})
        pc = %{pc | entries: entries, clock: pc.clock + 1, hits: pc.hits + 1, hit_tokens: pc.hit_tokens + len}
        {entry.cache, len, pc}
    end
  end

  @doc """
  Keeps a copy of what `cache` holds (its tokens must be known), unless an entry already
  holds those tokens or more, or it alone would pass the budget; entries it extends are
  dropped, and the least recently used ones until the bytes fit the budget.
  """
  @spec insert(t, Model.t(), KVCache.t()) :: t
  def insert(%__MODULE__{} = pc, %Model{} = model, %KVCache{tokens: tokens} = cache)
      when is_list(tokens) and length(tokens) >= @block do
    snapshot_bytes = KVCache.bytes_per_token(model) * length(tokens)

    cond do
      snapshot_bytes > pc.budget -> pc
      covered?(pc, tokens) -> pc
      true -> store(pc, model, cache, snapshot_bytes)
    end
  end

  def insert(%__MODULE__{} = pc, _model, _cache), do: pc

  @doc "Counters and sizes, for `stats/1` of a serving."
  @spec stats(t) :: map
  def stats(%__MODULE__{} = pc) do
    Map.take(pc, [:budget, :bytes, :hits, :misses, :hit_tokens, :inserted, :evicted])
    |> Map.put(:entries, map_size(pc.entries))
  end

  defp store(pc, model, cache, bytes) do
    tokens = cache.tokens

    with {:ok, copy} <- Model.init_kv_cache(model, max_len: length(tokens)),
         {:ok, copy} <- KVCache.copy_prefix(copy, cache, length(tokens)) do
      # Entries whose tokens this one starts with are superseded by it.
      pc = Enum.reduce(superseded(pc, tokens), pc, &remove(&2, &1))
      key = make_ref()
      entry = %{cache: copy, bytes: bytes, used: pc.clock, hashes: block_hashes(tokens)}
      index = Enum.reduce(entry.hashes, pc.index, fn h, index -> Map.update(index, h, [key], &[key | &1]) end)
      pc = %{pc | entries: Map.put(pc.entries, key, entry), index: index, bytes: pc.bytes + bytes}
      evict(%{pc | clock: pc.clock + 1, inserted: pc.inserted + 1})
    else
      # No memory for a copy: the cache simply does not keep this one.
      {:error, _} -> pc
    end
  end

  defp covered?(pc, tokens),
    do: Enum.any?(pc.entries, fn {_, e} -> List.starts_with?(e.cache.tokens, tokens) end)

  defp superseded(pc, tokens),
    do: for({key, e} <- pc.entries, List.starts_with?(tokens, e.cache.tokens), do: key)

  defp evict(%{bytes: bytes, budget: budget} = pc) when bytes <= budget, do: pc

  defp evict(pc) do
    {key, _} = Enum.min_by(pc.entries, fn {_, e} -> e.used end)
    evict(%{remove(pc, key) | evicted: pc.evicted + 1})
  end

  defp remove(pc, key) do
    {entry, entries} = Map.pop(pc.entries, key)
    :ok = KVCache.release(entry.cache)

    index =
      Enum.reduce(entry.hashes, pc.index, fn h, index ->
        case List.delete(Map.get(index, h, []), key) do
          [] -> Map.delete(index, h)
          keys -> Map.put(index, h, keys)
        end
      end)

    %{pc | entries: entries, index: index, bytes: pc.bytes - entry.bytes}
  end

  # The hash of each whole block's prefix: each block's hash chains the one before it.
  defp block_hashes(ids) do
    ids
    |> Enum.chunk_every(@block, @block, :discard)
    |> Enum.map_reduce(0, fn block, prev ->
      hash = :erlang.phash2({prev, block}, 4_294_967_296)
      {hash, hash}
    end)
    |> elem(0)
  end
end
