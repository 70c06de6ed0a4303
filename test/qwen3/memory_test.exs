defmodule Qwen3.MemoryTest do
  # Not async: it measures the process-wide MLX allocator.
  use ExUnit.Case, async: false

  alias Qwen3.Array, as: A
  import Qwen3.MemoryHelpers

  # Measured around the allocation and the kill themselves, not against a baseline taken
  # earlier: an earlier test's buffers freed late (27 MB once, on CI's 2 cores) undercut it.
  test "an array held by a process that dies is freed on the worker" do
    settled_active()
    bytes = 16 * 1024 * 1024
    parent = self()

    {pid, ref} =
      spawn_monitor(fn ->
        before = Qwen3.Memory.stats!().active
        a = A.from_binary!(:binary.copy(<<1>>, bytes), [bytes], :u8)
        :ok = A.eval(a)
        send(parent, {:allocated, before, Qwen3.Memory.stats!().active})
        Process.sleep(:infinity)
      end)

    assert_receive {:allocated, before, held}, 5_000
    assert held >= before + bytes

    Process.exit(pid, :kill)
    assert_receive {:DOWN, ^ref, :process, ^pid, :killed}
    assert wait_for_active(&(&1 <= held - bytes)) <= held - bytes
  end

  # glibc usually keeps a freed 24 MiB buffer for reuse (qwen3_cpu_setup's mallopt; a
  # per-thread heap it filled alone goes back at once), so the RSS may stay up after the
  # array dies; once clear_cache returns, those pages are the OS's again.
  test "clear_cache returns the CPU's freed buffers to the OS" do
    if :os.type() != {:unix, :linux} or malloc_tuned_by_caller?() do
      IO.puts("\nskipped: not Linux, or GLIBC_TUNABLES tunes malloc")
    else
      settled_active()
      bytes = 24 * 1024 * 1024
      parent = self()

      {pid, ref} =
        spawn_monitor(fn ->
          a = A.from_binary!(:binary.copy(<<1>>, bytes), [bytes], :u8)
          :ok = A.eval(a)
          send(parent, {:allocated, Qwen3.Memory.stats!().active, Qwen3.Memory.rss()})
          Process.sleep(:infinity)
        end)

      assert_receive {:allocated, held, rss_held}, 5_000
      Process.exit(pid, :kill)
      assert_receive {:DOWN, ^ref, :process, ^pid, :killed}
      assert wait_for_active(&(&1 <= held - bytes)) <= held - bytes

      :ok = Qwen3.Memory.clear_cache()
      returned = rss_held - Qwen3.Memory.rss()
      assert returned >= div(bytes, 2), "RSS fell by #{returned} bytes after freeing #{bytes}"
    end
  end

  test "stats, peak reset, cache limit and clear" do
    assert %{active: a, peak: p, cache: c} = Qwen3.Memory.stats!()
    assert Enum.all?([a, p, c], &(is_integer(&1) and &1 >= 0))
    assert :ok = Qwen3.Memory.reset_peak()
    assert {:ok, previous} = Qwen3.Memory.set_cache_limit(0)
    assert is_integer(previous)
    assert :ok = Qwen3.Memory.clear_cache()
    assert Qwen3.Memory.stats!().cache == 0
    assert {:ok, 0} = Qwen3.Memory.set_cache_limit(previous)
  end

  defp malloc_tuned_by_caller?,
    do: String.contains?(System.get_env("GLIBC_TUNABLES", ""), "glibc.malloc.")
end
