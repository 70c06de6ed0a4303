defmodule Qwen3.MemoryHelpers do
  @moduledoc false
  # Resource destructors run when the BEAM collects a heap, and the worker frees the buffers
  # after that: poll briefly instead of sleeping a fixed time.

  @doc "MLX active bytes once `done?` holds (or after ~2 s, whatever they are then)."
  def wait_for_active(done?, tries \\ 100) do
    :erlang.garbage_collect()
    active = Qwen3.Memory.stats!().active

    if done?.(active) or tries == 0 do
      active
    else
      Process.sleep(20)
      wait_for_active(done?, tries - 1)
    end
  end

  @doc """
  MLX active bytes once nothing else is being freed: every process's garbage collected (an
  earlier test's arrays may still sit in some heap) and three reads 20 ms apart agree.
  Baselines taken this way are not undercut by another test's late frees.
  """
  def settled_active(tries \\ 100) do
    Enum.each(Process.list(), &:erlang.garbage_collect/1)
    reads = for _ <- 1..3, do: Process.sleep(20) && Qwen3.Memory.stats!().active

    case Enum.uniq(reads) do
      [active] -> active
      _ when tries == 0 -> List.last(reads)
      _ -> settled_active(tries - 1)
    end
  end

  @doc "Bytes one KV cache of `max_len` positions holds for `model` (keys and values, all layers)."
  def cache_bytes(model, max_len), do: Qwen3.KVCache.bytes_per_token(model) * max_len
end
