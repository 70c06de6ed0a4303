defmodule Qwen3.Memory do
  @moduledoc """
  MLX's allocator: bytes held by live arrays (`:active`), the high-water mark (`:peak`) and
  buffers kept for reuse (`:cache`), with limits and a cache flush.

  Freed buffers stay in MLX's cache for reuse, so a process's memory does not shrink by
  itself after a generation ends. Cap it with `set_cache_limit/2` (or `config :qwen3,
  cache_limit: bytes`, applied when the application starts) and empty it with
  `clear_cache/1`. `config :qwen3, memory_limit: bytes` caps all allocations.

  On Linux the CPU's freed buffers are kept the same way by glibc's malloc, in blocks of up
  to 32 MiB (set when the library loads, unless `GLIBC_TUNABLES` tunes malloc): a prompt's
  activations are reused by the next prompt instead of being mapped and cleared afresh.
  They are not counted in `:cache`; `clear_cache/1` returns them to the OS as well.
  """

  alias Qwen3.Native

  @spec stats(Qwen3.Array.device()) ::
          {:ok, %{active: integer, peak: integer, cache: integer}} | {:error, Qwen3.Error.t()}
  def stats(device \\ :cpu) do
    with {:ok, pairs} <- device |> Native.memory_stats() |> Native.await(), do: {:ok, Map.new(pairs)}
  end

  def stats!(device \\ :cpu) do
    case stats(device) do
      {:ok, s} -> s
      {:error, e} -> raise e
    end
  end

  def reset_peak(device \\ :cpu), do: device |> Native.memory_reset_peak() |> Native.await_ok()
  def clear_cache(device \\ :cpu), do: device |> Native.memory_clear_cache() |> Native.await_ok()

  @doc "Caps MLX's buffer cache at `bytes`; returns the previous limit."
  def set_cache_limit(bytes, device \\ :cpu) when is_integer(bytes) and bytes >= 0,
    do: Native.memory_set_cache_limit(device, bytes) |> Native.await()

  @doc "Caps all MLX allocations at `bytes`; returns the previous limit."
  def set_memory_limit(bytes, device \\ :cpu) when is_integer(bytes) and bytes >= 0,
    do: Native.memory_set_memory_limit(device, bytes) |> Native.await()

  @doc """
  This OS process's resident set size in bytes (MLX buffers, the BEAM and everything else):
  from `/proc` on Linux, from `ps` elsewhere.
  """
  @spec rss() :: non_neg_integer
  def rss do
    case File.read("/proc/self/status") do
      {:ok, status} ->
        [kb] = Regex.run(~r/VmRSS:\s+(\d+) kB/, status, capture: :all_but_first)
        String.to_integer(kb) * 1024

      {:error, _} ->
        {out, 0} = System.cmd("ps", ["-o", "rss=", "-p", System.pid()])
        out |> String.trim() |> String.to_integer() |> Kernel.*(1024)
    end
  end
end
