defmodule Mix.Tasks.Compile.Qwen3Native do
  @shortdoc "Builds the Rust NIF (cargo, release) and copies it into priv/native"
  @moduledoc """
  Runs `cargo build --release -p qwen3_nif` in the project root and copies the library to
  `priv/native/libqwen3_nif.so`. Cargo decides what is stale, so a no-op build is quick.

  `MLX_DIR` (an MLX prefix with `include/` and `lib/`) and `CARGO_TARGET_DIR` are honoured.
  """
  use Mix.Task.Compiler

  @impl true
  def run(_args) do
    root = Path.expand("..", __DIR__)
    target_dir = System.get_env("CARGO_TARGET_DIR") || Path.join(root, "target")
    profile_dir = Path.join(Path.expand(target_dir, root), "release")

    {output, status} =
      System.cmd("cargo", ["build", "--release", "-p", "qwen3_nif", "--message-format", "short"],
        cd: root,
        stderr_to_stdout: true
      )

    if status != 0 do
      Mix.shell().error(output)
      Mix.raise("cargo build failed (status #{status})")
    end

    source = Enum.find(library_names(), &File.exists?(Path.join(profile_dir, &1)))
    dest = Path.join([Mix.Project.app_path(), "priv", "native", "libqwen3_nif.so"])
    File.mkdir_p!(Path.dirname(dest))
    src_path = Path.join(profile_dir, source)

    if stale?(src_path, dest) do
      # Copy to a temp name then rename: a loaded .so must not be overwritten in place.
      tmp = dest <> ".tmp"
      File.cp!(src_path, tmp)
      File.rename!(tmp, dest)
      {:ok, []}
    else
      {:noop, []}
    end
  end

  defp library_names, do: ["libqwen3_nif.so", "libqwen3_nif.dylib"]

  defp stale?(src, dest) do
    not File.exists?(dest) or File.stat!(src).mtime > File.stat!(dest).mtime or
      File.stat!(src).size != File.stat!(dest).size
  end
end
