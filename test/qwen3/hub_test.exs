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

  test "an uncached repo says what to download and where", %{tmp_dir: tmp} do
    assert {:error, %Qwen3.Error{kind: :not_found, message: msg}} = Hub.resolve("Qwen/Qwen3-0.6B")
    assert msg =~ "huggingface-cli download Qwen/Qwen3-0.6B"
    assert msg =~ tmp
    assert {:error, %Qwen3.Error{kind: :not_found}} = Model.load("Qwen/Qwen3-0.6B")
    assert {:error, %Qwen3.Error{kind: :not_found}} = Hub.resolve("not a path or repo")
  end
end
