defmodule Qwen3.ServingIsolatedTest do
  # `isolate: true`: the model runs in a serving on a peer node of its own. `kill -9` of that
  # node's OS process fails the request it was running with `:node_down`; a new node loads
  # the model again and serves the next request; this VM and the serving's process live on.
  use ExUnit.Case, async: false

  import Qwen3.TestHelpers
  alias Qwen3.{Error, Fixtures, Serving}

  setup_all do
    on_exit(Qwen3.TestNode.start!())
  end

  test "an isolated serving survives kill -9 of its model node" do
    model = Qwen3.Model.load!(Fixtures.path("dense-f32-tied"))
    {:ok, isolated} = Serving.start_link(model: model, name: :isolated_serving, isolate: true, max_len: 1024)
    assert eventually(1_000, fn -> Serving.members(:isolated_serving) != [] end)
    [first] = Serving.members(:isolated_serving)
    assert node(first) != node()

    want = Qwen3.generate!(model, [1, 2, 3], max_new_tokens: 6).tokens
    assert {:ok, %{tokens: ^want}} = Serving.generate(:isolated_serving, [1, 2, 3], max_new_tokens: 6)
    # This VM's copy of the model answers for it (the HTTP server's tokenizer and template).
    assert {:ok, ^model} = Serving.model(:isolated_serving)

    long = Task.async(fn -> Serving.generate(:isolated_serving, [4, 5], max_new_tokens: 1000) end)
    assert eventually(500, fn -> (Serving.stats(:isolated_serving) || %{active: 0}).active > 0 end)
    os_pid = :erpc.call(node(first), System, :pid, [])
    {_, 0} = System.cmd("kill", ["-9", os_pid])

    assert {:error, %Error{kind: :node_down}} = Task.await(long, 60_000)
    # A new node, with the model loaded again, serves the next request.
    assert eventually(3_000, fn ->
             match?([pid] when node(pid) != node(first), Serving.members(:isolated_serving))
           end)

    assert {:ok, %{tokens: ^want}} = Serving.generate(:isolated_serving, [1, 2, 3], max_new_tokens: 6)
    assert %{restarts: 1} = Serving.Isolated.status(isolated)
    assert Process.alive?(isolated)
    GenServer.stop(isolated)
  end

  test "isolate: true needs a name" do
    Process.flag(:trap_exit, true)
    assert {:error, message} = Serving.start_link(model: Fixtures.path("dense-f32-tied"), isolate: true)
    assert message =~ ":name"
  end
end
