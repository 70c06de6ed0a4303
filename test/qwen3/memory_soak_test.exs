defmodule Qwen3.MemorySoakTest do
  # Many short text generations in a row: the OS process's RSS and MLX's active and peak
  # memory stay flat (±5%). CI runs #{@default} of them; `make soak` runs 1,000.
  use ExUnit.Case, async: false

  alias Qwen3.{Fixtures, Memory}

  @default 100
  @tolerance 0.05
  @window 25

  test "RSS and MLX active/peak memory stay flat over many generations" do
    count = String.to_integer(System.get_env("QWEN3_SOAK_GENERATIONS", "#{@default}"))
    model = Qwen3.load!(Fixtures.chat_model_path())
    # Each cache is released when done: left to the garbage collector, a dozen finished
    # caches may still be alive at any moment, and the peak would follow GC timing.
    run = fn i ->
      result = Qwen3.generate!(model, "Count to #{rem(i, 50)}:", max_new_tokens: 8)
      :ok = Qwen3.KVCache.release(result.kv_cache)
    end

    # Warm up: MLX's buffer cache and the BEAM's allocators reach their working size.
    Enum.each(1..(2 * @window), run)
    first = measure(model, run, 0)
    Enum.each(1..max(count - 2 * @window, 0), run)
    last = measure(model, run, count)

    IO.puts(
      "\n#{count} generations: " <>
        Enum.map_join([:rss, :active, :peak], ", ", &"#{&1} #{mb(first[&1])} → #{mb(last[&1])} MB")
    )

    for key <- [:rss, :active, :peak] do
      assert abs(last[key] - first[key]) <= @tolerance * first[key],
             "#{key} moved from #{first[key]} to #{last[key]} bytes over #{count} generations"
    end
  end

  # After a window of generations: RSS, MLX active bytes, and the lowest of each
  # generation's own peak. A generation's peak includes a step built while the previous one
  # still computes (async evaluation), so a reading follows thread timing, and on a busy
  # machine most readings can overlap (the median moved 5% under load); a leak lifts every
  # reading, the lowest included, which no late overlap lifts.
  # `model` is read last so the garbage collector cannot free it before the reading.
  defp measure(model, run, offset) do
    peaks =
      for i <- offset..(offset + @window - 1) do
        :ok = Memory.reset_peak()
        run.(i)
        Memory.stats!().peak
      end

    :erlang.garbage_collect()
    active = Qwen3.MemoryHelpers.wait_for_active(fn _ -> false end, 2)
    %{rss: Memory.rss(), active: active, peak: Enum.min(peaks), weights: model.info.weight_bytes}
  end

  defp mb(bytes), do: Float.round(bytes / 1_048_576, 1)
end
