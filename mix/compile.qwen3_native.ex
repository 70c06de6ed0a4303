defmodule Mix.Tasks.Compile.Qwen3Native do
  @shortdoc "Builds the Rust NIF (cargo, release) against MLX and copies it into priv/native"
  @moduledoc """
  Makes sure the MLX C++ SDK is there (`MLX_DIR`, else the official MLX wheel for this
  platform, fetched once into the user cache: see `mix qwen3.mlx`), runs
  `cargo build --release -p qwen3_nif -p qwen3_cpu_setup` against it, and copies the
  libraries to the app's `priv/native/`. Cargo decides what is stale, so a no-op build is quick.

  Cargo builds into `CARGO_TARGET_DIR`, else into `_build/qwen3_native`, so that nothing is
  written in the project or the dependency's sources.
  """
  use Mix.Task.Compiler

  @impl true
  def run(_args) do
    root = Path.expand("..", __DIR__)
    {mlx_dir, blas} = Qwen3.Build.MLX.ensure!()
    cargo = tool!("cargo", "Rust's cargo is needed to build the NIF: install Rust with rustup")
    cxx_compiler!()

    # One build for every Mix environment: `_build/qwen3_native` beside `_build/dev`.
    target_dir =
      System.get_env("CARGO_TARGET_DIR") || Path.expand("../qwen3_native", Mix.Project.build_path())

    profile_dir = Path.join(Path.expand(target_dir, root), "release")

    {output, status} =
      System.cmd(
        cargo,
        ["build", "--release", "-p", "qwen3_nif", "-p", "qwen3_cpu_setup", "--message-format", "short"],
        cd: root,
        stderr_to_stdout: true,
        env: [{"MLX_DIR", mlx_dir}, {"CARGO_TARGET_DIR", target_dir}]
      )

    if status != 0 do
      Mix.shell().error(output)
      Mix.raise("cargo build failed (status #{status})")
    end

    priv = Path.join([Mix.Project.app_path(), "priv", "native"])
    File.mkdir_p!(priv)
    # Read at load: a CPU build without OpenBLAS says so once (Qwen3.Application).
    File.write!(Path.join(priv, "build.txt"), "mlx_dir=#{mlx_dir}\nblas=#{blas}\n")
    # libqwen3_cpu_setup is loaded first (Qwen3.Blas): it sets what OpenBLAS reads as it loads.
    copied =
      for lib <- ~w(qwen3_nif qwen3_cpu_setup) do
        source = Enum.find(library_names(lib), &File.exists?(Path.join(profile_dir, &1)))
        copy_if_stale(Path.join(profile_dir, source), Path.join(priv, "lib#{lib}.so"))
      end

    if Enum.any?(copied, &match?({:ok, _}, &1)), do: {:ok, []}, else: {:noop, []}
  end

  defp tool!(name, hint), do: System.find_executable(name) || Mix.raise("#{name} not found: #{hint}")

  defp cxx_compiler! do
    if System.get_env("CXX") in [nil, ""] and not Enum.any?(~w(c++ g++ clang++), &System.find_executable/1),
      do:
        Mix.raise(
          "no C++ compiler (c++, g++ or clang++) for the MLX bridge: install g++ " <>
            "(Debian/Ubuntu: apt install g++) or Xcode's command line tools (macOS)"
        )
  end

  defp library_names(lib), do: ["lib#{lib}.so", "lib#{lib}.dylib"]

  # Copy to a temp name then rename: a loaded .so must not be overwritten in place.
  defp copy_if_stale(src, dest) do
    if not File.exists?(dest) or File.stat!(src).mtime > File.stat!(dest).mtime or
         File.stat!(src).size != File.stat!(dest).size do
      tmp = dest <> ".tmp"
      File.cp!(src, tmp)
      File.rename!(tmp, dest)
      {:ok, []}
    else
      {:noop, []}
    end
  end
end
