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
end
