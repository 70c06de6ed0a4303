defmodule Qwen3.ServingDistributedTest do
  # Servings on two `:peer` nodes form one `:pg` group; this node (the third, with no
  # serving of its own) sends requests that both serve. One node is then halted mid-run:
  # its requests fail with a tagged error, the others complete, new ones go to the survivor.
  use ExUnit.Case, async: false

  import Qwen3.TestHelpers
  alias Qwen3.{Error, Fixtures, Serving}

  @serving :distributed_serving

  setup_all do
    on_exit(Qwen3.TestNode.start!())
  end

  # A node running this project's code with a serving of the tiny model.
  defp start_node(tag) do
    code_path = Enum.flat_map(:code.get_path(), &[~c"-pa", &1])
    name = :"qwen3_#{tag}_#{System.unique_integer([:positive])}"
    # A boot waits up to 60 s, as Qwen3.Serving.Isolated's does: :peer's default 15 s ran out
    # once on a 2-core machine while another test's model node was starting.
    {:ok, peer, node} = :peer.start_link(%{name: name, args: code_path, wait_boot: 60_000})
    {:ok, _} = :erpc.call(node, Application, :ensure_all_started, [:qwen3])
    spec = {Serving, model: Fixtures.path("dense-f32-tied"), name: @serving, batch_size: 4}
    {:ok, pid} = :erpc.call(node, Supervisor, :start_child, [Qwen3.Supervisor, spec])
    {peer, node, pid}
  end

  defp prompt(i), do: for(j <- 0..rem(i, 5), do: rem(i * 41 + j * 7, 1000))

  test "two nodes serve a third; a node halted mid-run fails only its own requests" do
    {_peer_a, node_a, serving_a} = start_node(:a)
    {_peer_b, _node_b, serving_b} = start_node(:b)

    assert eventually(500, fn -> Enum.sort(Serving.members(@serving)) == Enum.sort([serving_a, serving_b]) end)

    model = Qwen3.Model.load!(Fixtures.path("dense-f32-tied"))

    # Short requests: both nodes take some, and results equal local generation.
    results =
      0..11
      |> Enum.map(&Task.async(fn -> Serving.generate(@serving, prompt(&1), max_new_tokens: 20) end))
      |> Task.await_many(60_000)

    for {result, i} <- Enum.with_index(results) do
      assert {:ok, %{tokens: tokens}} = result
      assert tokens == Qwen3.generate!(model, prompt(i), max_new_tokens: 20).tokens
    end

    assert Serving.stats(serving_a).completed > 0
    assert Serving.stats(serving_b).completed > 0

    # Long requests on both nodes, then node A halts as if it crashed.
    long =
      for i <- 0..7, do: Task.async(fn -> Serving.generate(@serving, prompt(i), max_new_tokens: 1000) end)

    assert eventually(500, fn ->
             Serving.stats(serving_a).active > 0 and Serving.stats(serving_b).active > 0
           end)

    :erpc.cast(node_a, :erlang, :halt, [])
    outcomes = Task.await_many(long, 120_000)

    failed = for {:error, %Error{kind: kind}} <- outcomes, do: kind
    completed = for {:ok, %{tokens: tokens}} <- outcomes, do: tokens
    assert failed != [] and Enum.all?(failed, &(&1 == :node_down))
    assert completed != [] and Enum.all?(completed, &(length(&1) == 1000))
    assert length(failed) + length(completed) == 8

    # New requests go to the node that is left.
    assert eventually(500, fn -> Serving.members(@serving) == [serving_b] end)
    assert {:ok, %{tokens: [_, _, _]}} = Serving.generate(@serving, [1, 2], max_new_tokens: 3)
  end
end
