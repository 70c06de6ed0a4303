defmodule Qwen3.HubTest do
  # Mutates HF_HOME: not async.
  use ExUnit.Case, async: false

  alias Qwen3.{Fixtures, Hub, Model}

  @moduletag :tmp_dir

  setup %{tmp_dir: tmp} do
    previous = System.get_env("HF_HOME")
    System.put_env("HF_HOME", tmp)

    on_exit(fn -> if previous, do: System.put_env("HF_HOME", previous), else: System.delete_env("HF_HOME") end)
  end

  # The layout huggingface_hub writes: refs/main holds the commit; snapshot files link to blobs.
  defp fake_cache(tmp, repo, commit) do
    root = Path.join([tmp, "hub", "models--" <> String.replace(repo, "/", "--")])
    snapshot = Path.join([root, "snapshots", commit])
    File.mkdir_p!(snapshot)
    File.mkdir_p!(Path.join(root, "blobs"))

    for file <- File.ls!(Fixtures.path("dense-f32-tied")), file != "golden" do
      blob = Path.join([root, "blobs", file <> ".blob"])
      File.cp!(Path.join(Fixtures.path("dense-f32-tied"), file), blob)
      File.ln_s!(blob, Path.join(snapshot, file))
    end

    File.mkdir_p!(Path.join(root, "refs"))
    File.write!(Path.join([root, "refs", "main"]), commit <> "\n")
    snapshot
  end

  test "a repo id resolves through refs/main to its snapshot and loads", %{tmp_dir: tmp} do
    snapshot = fake_cache(tmp, "Qwen/Qwen3-Tiny", "abc123")
    assert {:ok, ^snapshot} = Hub.resolve("Qwen/Qwen3-Tiny")
    assert %Model{info: %{num_hidden_layers: 2}} = Model.load!("Qwen/Qwen3-Tiny")
  end

  test "offline, an uncached repo says what to download and where", %{tmp_dir: tmp} do
    System.put_env("HF_HUB_OFFLINE", "1")
    on_exit(fn -> System.delete_env("HF_HUB_OFFLINE") end)
    assert {:error, %Qwen3.Error{kind: :not_found, message: msg}} = Hub.resolve("Qwen/Qwen3-0.6B")
    assert msg =~ "huggingface-cli download Qwen/Qwen3-0.6B"
    assert msg =~ tmp
    assert {:error, %Qwen3.Error{kind: :not_found}} = Model.load("Qwen/Qwen3-0.6B")
    assert {:error, %Qwen3.Error{kind: :not_found}} = Hub.resolve("not a path or repo")
  end

  test "an unreachable hub is a tagged download error that says what to do", %{tmp_dir: tmp} do
    with_endpoint("http://127.0.0.1:9", fn ->
      assert {:error, %Qwen3.Error{kind: :download, message: msg}} = Model.load("Qwen/Qwen3-0.6B")
      assert msg =~ "Qwen/Qwen3-0.6B" and msg =~ tmp
    end)
  end

  test "an uncached repo is downloaded into the cache layout, then loads from it", %{tmp_dir: tmp} do
    source = Fixtures.chat_model_path()
    python = System.find_executable("python3") || flunk("python3 is needed for the fake hub")
    server = Path.expand("../support/fake_hub.py", __DIR__)

    port =
      Port.open({:spawn_executable, python}, [:binary, :exit_status, args: [server, "test/tiny-chat", source]])

    http_port = listening_port(port)

    with_endpoint("http://127.0.0.1:#{http_port}", fn ->
      parent = self()
      {:ok, dir} = Hub.resolve("test/tiny-chat", on_download: &send(parent, {:progress, &1}))
      assert String.starts_with?(dir, Path.join([tmp, "hub", "models--test--tiny-chat", "snapshots"]))
      assert_received {:progress, %{file: "model.safetensors", bytes_done: done, bytes_total: done}}

      for file <- ~w(config.json model.safetensors tokenizer.json tokenizer_config.json) do
        assert File.read!(Path.join(dir, file)) == File.read!(Path.join(source, file)), file
      end

      refute File.exists?(Path.join(dir, "golden"))
      model = Qwen3.load!("test/tiny-chat")
      assert model.tokenizer && model.chat_template
    end)

    # Cached now: found without the hub.
    with_endpoint("http://127.0.0.1:9", fn -> assert {:ok, _} = Hub.resolve("test/tiny-chat") end)
  end

  # The fake hub prints its port once it listens; a server that dies or hangs fails the test.
  defp listening_port(port) do
    receive do
      {^port, {:data, line}} -> line |> String.trim() |> String.to_integer()
      {^port, {:exit_status, status}} -> flunk("the fake hub exited with status #{status} before listening")
    after
      10_000 -> flunk("the fake hub printed no port within 10 s")
    end
  end

  defp with_endpoint(url, fun) do
    System.put_env("HF_ENDPOINT", url)

    try do
      fun.()
    after
      System.delete_env("HF_ENDPOINT")
    end
  end
end
