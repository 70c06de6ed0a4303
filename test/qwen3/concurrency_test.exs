defmodule Qwen3.ConcurrencyTest do
  # Many callers on one model, callers that die, generations that time out. Not async: the
  # memory assertions read the process-wide MLX allocator.
  use ExUnit.Case, async: false

  import Qwen3.MemoryHelpers
  alias Qwen3.{Fixtures, Generate, KVCache, Model}

  @callers 100

  setup_all do
    {:ok, model: Model.load!(Fixtures.path("dense-f32-tied")), chat: Model.load!(Fixtures.chat_model_path())}
  end

  # Each caller gets its own prompt, sampler and seed, so a mix-up between callers shows.
  defp request(i) do
    sampler = Enum.at([:greedy, :sample, :sample_host], rem(i, 3))
    prompt = for j <- 0..rem(i, 7), do: rem(i * 31 + j * 17, 1000)
    {prompt, [sampler: sampler, seed: i, temperature: 0.8, max_new_tokens: 6 + rem(i, 5)]}
  end

  defp tokens(model, {prompt, opts}), do: elem(Generate.generate!(prompt, model, opts), 0)

  test "#{@callers} processes generating at once get what each would alone", %{model: model} do
    expected = Enum.map(0..(@callers - 1), &tokens(model, request(&1)))

    got =
      0..(@callers - 1)
      |> Enum.map(fn i -> Task.async(fn -> tokens(model, request(i)) end) end)
      |> Task.await_many(60_000)

    assert got == expected
    # Sampled rows differ between seeds: the comparison above is not trivially true.
    assert expected |> Enum.uniq() |> length() > @callers / 2
  end

  test "a caller killed mid-generation frees its KV cache", %{model: model} do
    max_len = 4096
    baseline = settled_active()
    parent = self()

    caller =
      spawn(fn ->
        {:ok, gen} = Generate.start([1, 2, 3], model, max_len: max_len, max_new_tokens: max_len)
        {:token, _, _, gen} = Generate.next(gen)
        send(parent, {:generating, Qwen3.Memory.stats!().active})
        endless(gen)
      end)

    assert_receive {:generating, active}, 10_000
    # A cache holds its first 256 slots (KV_STEP) and grows as tokens arrive.
    assert active >= baseline + cache_bytes(model, 256)

    Process.exit(caller, :kill)
    assert wait_for_active(&(&1 <= baseline)) <= baseline
    assert_generates(model)
  end

  test "a stream_to receiver that dies stops the generation and frees its cache", %{chat: model} do
    baseline = settled_active()
    parent = self()

    receiver =
      spawn(fn ->
        {:ok, ref} = Qwen3.stream_to(self(), model, [1, 2, 3], max_len: 2048, max_new_tokens: 2000)
        assert_receive {^ref, {:token, _, _}}, 10_000
        send(parent, :streaming)
        Process.sleep(:infinity)
      end)

    assert_receive :streaming, 10_000

    [{task, _}] =
      Registry.select(Qwen3.Registry, [{{:_, :"$1", :"$2"}, [{:==, :"$2", receiver}], [{{:"$1", :"$2"}}]}])

    task_ref = Process.monitor(task)

    Process.exit(receiver, :kill)
    assert_receive {:DOWN, ^task_ref, :process, ^task, _}, 10_000
    assert wait_for_active(&(&1 <= baseline)) <= baseline
  end

  test "a generation past its :timeout returns a tagged error and frees its cache", %{model: model} do
    baseline = settled_active()

    assert {:error, %Qwen3.Error{kind: :timeout, message: msg}} =
             Generate.generate([1, 2], model, max_len: 100_000, max_new_tokens: 100_000, timeout: 50)

    assert msg =~ "50 ms"
    assert wait_for_active(&(&1 <= baseline)) <= baseline

    # A cache the caller passed in stays usable.
    {:ok, cache} = Model.init_kv_cache(model, max_len: 64)

    assert {:error, %Qwen3.Error{kind: :timeout}} =
             Generate.generate([1, 2], model, kv_cache: cache, timeout: 0)

    assert {:ok, _} = KVCache.offset(cache)
    assert_generates(model)
  end

  test "a released cache refuses further use", %{model: model} do
    {:ok, cache} = Model.init_kv_cache(model, max_len: 16)
    assert :ok = KVCache.release(cache)
    assert {:error, %Qwen3.Error{kind: :invalid_argument, message: msg}} = KVCache.offset(cache)
    assert msg =~ "released"
    assert {:error, %Qwen3.Error{}} = Generate.generate([1], model, kv_cache: cache)
  end

  defp endless(gen) do
    case Generate.next(gen) do
      {:token, _, _, gen} -> endless(gen)
      _ -> :ok
    end
  end

  defp assert_generates(model),
    do: assert({:ok, {[_, _], _}} = Generate.generate([5, 6], model, max_new_tokens: 2))
end
