defmodule Qwen3.Build.MLX do
  @moduledoc false
  # The MLX C++ SDK the NIF links: found under MLX_DIR, or taken from the official MLX wheel
  # for this platform (pip download, sha256-checked, unpacked into the user cache). The one
  # place that knows the MLX version, the wheels and the cache layout; `mix compile`,
  # `mix qwen3.mlx` and the Makefile all come here.

  @version "0.32.4"

  # sha256 of every wheel file of this version, as the package index lists them.
  @wheels %{
    "mlx_cpu-0.32.4-py3-none-manylinux_2_35_x86_64.whl" =>
      "0e0a24fa2ce8b6b94d2e6a90604e8813aa8e29fcb918bb2aa01cfb6d133d8cee",
    "mlx_cpu-0.32.4-py3-none-manylinux_2_35_aarch64.whl" =>
      "1289e85e64af1fd16380bf331438bfe4afe875d27afc3e0bcf35f427c488fadd",
    "mlx_metal-0.32.4-py3-none-macosx_14_0_arm64.whl" =>
      "8019b2db622599267d66cc168b2f0dbf5af929790a6c3b3913e00eabc42a7947",
    "mlx_metal-0.32.4-py3-none-macosx_15_0_arm64.whl" =>
      "9f0a3cc26d89724434d9684932fc6f3e4e83669d2a895d858ed2c8a55eb84e8b",
    "mlx_metal-0.32.4-py3-none-macosx_26_0_arm64.whl" =>
      "514df92d41a286895d2564b4b18f4da45096bd7a4a0c47e1042f345ad5a7f936",
    "mlx_cuda_12-0.32.4-py3-none-manylinux_2_35_x86_64.whl" =>
      "f385c7af7c1f63a9d6ce3e442e1c9ba881c881bcb45c6534ff8155b359da47e5",
    "mlx_cuda_12-0.32.4-py3-none-manylinux_2_35_aarch64.whl" =>
      "cea869b007c809013c369819d485e3b534f3ecc261199b4c655ef92a21f73f28",
    "mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl" =>
      "94cb48fba73e5ee39467e51c35c51c691123359ca17bafd1a24cf92ad6732bee",
    "mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_aarch64.whl" =>
      "cf8a67b49cebff85cd98b1d118c09f6c8ee966b899a914c50cc74d614b25616e"
  }

  @builds %{
    "cpu" => "mlx-cpu",
    "metal" => "mlx-metal",
    "cuda-12" => "mlx-cuda-12",
    "cuda-13" => "mlx-cuda-13"
  }

  def version, do: @version

  @doc "The user cache: QWEN3_CACHE, else $XDG_CACHE_HOME/qwen3, else ~/.cache/qwen3."
  def cache_dir do
    System.get_env("QWEN3_CACHE") ||
      Path.join(System.get_env("XDG_CACHE_HOME") || Path.join(System.user_home!(), ".cache"), "qwen3")
  end

  @doc "Where downloaded wheels are kept (QWEN3_WHEELS), so a fresh cache can reuse them."
  def wheel_dir, do: System.get_env("QWEN3_WHEELS") || Path.join(cache_dir(), "wheels")

  @doc """
  The MLX prefix (`include/`, `lib/`) to build against, fetching the wheel first if needed,
  and which BLAS its CPU backend will use (`:openblas` or `:reference`, `nil` off Linux).
  """
  def ensure! do
    case System.get_env("MLX_DIR") do
      dir when dir not in [nil, ""] ->
        unless File.regular?(Path.join(dir, "include/mlx/mlx.h")),
          do: Mix.raise("MLX_DIR=#{dir} has no include/mlx/mlx.h (it must be an MLX install prefix)")

        {dir, nil}

      _ ->
        package = package!()
        root = Path.join(cache_dir(), "#{package}-#{@version}")
        unless File.exists?(Path.join(root, ".complete")), do: unpack!(fetch!(package), root)
        {Path.join(root, "mlx"), point_blas_at_openblas(Path.join(root, "mlx_cpu.libs"))}
    end
  end

  # QWEN3_BUILD picks the wheel; by default Metal on Apple Silicon, the CPU build elsewhere.
  # `cuda` takes the CUDA major version the driver reports.
  defp package! do
    build =
      case System.get_env("QWEN3_BUILD") || default_build() do
        "cuda" -> "cuda-#{cuda_major(nvidia_smi())}"
        build -> build
      end

    Map.get(@builds, build) ||
      Mix.raise(
        "QWEN3_BUILD=#{build} is not one of cuda, #{@builds |> Map.keys() |> Enum.sort() |> Enum.join(", ")}"
      )
  end

  defp nvidia_smi do
    case System.find_executable("nvidia-smi") do
      nil -> ""
      exe -> exe |> System.cmd([], stderr_to_stdout: true) |> elem(0)
    end
  end

  @doc """
  The CUDA wheel's major version for a driver, from `nvidia-smi`'s header ("CUDA Version:
  13.0"): 13 when the driver runs CUDA 13, else 12 (which also runs on newer drivers).
  """
  def cuda_major(nvidia_smi_output) do
    case Regex.run(~r/CUDA Version:\s*(\d+)\./, nvidia_smi_output) do
      [_, major] -> if String.to_integer(major) >= 13, do: 13, else: 12
      nil -> 12
    end
  end

  defp default_build do
    case {:os.type(), to_string(:erlang.system_info(:system_architecture))} do
      {{:unix, :darwin}, "aarch64" <> _} -> "metal"
      {{:unix, :darwin}, _} -> Mix.raise("MLX has no wheel for Intel Macs: set MLX_DIR to an MLX install")
      _ -> "cpu"
    end
  end

  # The wheel file: one already in the wheel directory, else `pip download`ed there.
  defp fetch!(package) do
    dir = wheel_dir()

    case known_wheels(dir, package) do
      [file | _] ->
        verify!(file)

      [] ->
        IO.puts(:stderr, "==> qwen3: fetching #{package}==#{@version} (MLX's C++ SDK) with pip into #{dir}")
        File.mkdir_p!(dir)
        pip_download!(package, dir)

        case known_wheels(dir, package) do
          [file | _] ->
            verify!(file)

          [] ->
            Mix.raise(
              "pip fetched no #{package} wheel with a pinned checksum into #{dir}: #{inspect(File.ls!(dir))}"
            )
        end
    end
  end

  defp known_wheels(dir, package) do
    prefix = String.replace(package, "-", "_") <> "-#{@version}-"

    case File.ls(dir) do
      {:ok, files} ->
        for f <- Enum.sort(files),
            String.starts_with?(f, prefix),
            Map.has_key?(@wheels, f),
            do: Path.join(dir, f)

      {:error, _} ->
        []
    end
  end

  defp pip_download!(package, dir) do
    python =
      System.find_executable("python3") || System.find_executable("python") ||
        Mix.raise(
          "python3 with pip is needed to fetch MLX (#{package}): install python3 and python3-pip, or set MLX_DIR"
        )

    args =
      ~w(-m pip download --quiet --no-deps --only-binary=:all: --dest) ++ [dir, "#{package}==#{@version}"]

    case System.cmd(python, args, stderr_to_stdout: true) do
      {_, 0} ->
        :ok

      {out, _} ->
        hint =
          if out =~ "No module named pip",
            do: "pip is missing: install python3-pip (Debian/Ubuntu) or run `python3 -m ensurepip`",
            else:
              "the #{package} wheels need Linux with glibc 2.35+ (x86_64 or aarch64) or macOS 14+ on Apple Silicon"

        Mix.raise(
          "pip could not download #{package}==#{@version} (#{hint}); set MLX_DIR to use another MLX:\n#{out}"
        )
    end
  end

  defp verify!(path) do
    want = Map.fetch!(@wheels, Path.basename(path))

    digest =
      path
      |> File.stream!([], 1_048_576)
      |> Enum.reduce(:crypto.hash_init(:sha256), &:crypto.hash_update(&2, &1))

    got = digest |> :crypto.hash_final() |> Base.encode16(case: :lower)

    if got != want do
      File.rm!(path)
      Mix.raise("#{path} has sha256 #{got}, not the pinned #{want}: removed it; compile again to refetch")
    end

    path
  end

  # Unpacked with the wheel's folder structure kept: libmlx finds its BLAS through
  # RPATH $ORIGIN/../../mlx_cpu.libs. Into a temporary folder first, so that an interrupted
  # unpack never looks complete.
  defp unpack!(wheel, root) do
    tmp = root <> ".partial"
    File.rm_rf!(tmp)
    File.mkdir_p!(tmp)

    case :zip.extract(String.to_charlist(wheel), cwd: String.to_charlist(tmp)) do
      {:ok, _files} -> :ok
      {:error, reason} -> Mix.raise("could not unpack #{wheel}: #{inspect(reason)}")
    end

    File.touch!(Path.join(tmp, ".complete"))
    File.rm_rf!(root)
    File.rename!(tmp, root)
  end

  @doc """
  Points a wheel's bundled reference BLAS/LAPACK (`libs`, e.g. `mlx_cpu.libs`) at the
  system's OpenBLAS when it is installed (float32 matmuls ≈ 75× faster), and back at the
  wheel's own copies when it is not. Returns `:openblas`, `:reference`, or nil off Linux.
  `openblas` is the folder of OpenBLAS's `libblas.so.3` (nil: none).
  """
  def point_blas_at_openblas(libs, openblas \\ openblas_dir()) do
    cond do
      not match?({:unix, :linux}, :os.type()) or not File.dir?(libs) ->
        nil

      openblas ->
        for lib <- blas_libs(libs) do
          target =
            Path.join(
              openblas,
              if(String.starts_with?(Path.basename(lib), "libblas"),
                do: "libblas.so.3",
                else: "liblapack.so.3"
              )
            )

          keep_wheel_copy(lib)
          if File.read_link(lib) != {:ok, target}, do: relink(lib, target)
        end

        :openblas

      true ->
        for lib <- blas_libs(libs), File.exists?(lib <> ".wheel") do
          File.rm(lib)
          File.rename!(lib <> ".wheel", lib)
        end

        :reference
    end
  end

  defp blas_libs(libs) do
    for name <- File.ls!(libs),
        String.starts_with?(name, "libblas-") or String.starts_with?(name, "liblapack-"),
        not String.ends_with?(name, ".wheel"),
        do: Path.join(libs, name)
  end

  # The wheel's own library, kept beside the link so that it can be restored.
  defp keep_wheel_copy(lib) do
    if File.regular?(lib) and not match?({:ok, _}, File.read_link(lib)),
      do: File.rename!(lib, lib <> ".wheel")
  end

  defp relink(lib, target) do
    File.rm(lib)
    File.ln_s!(target, lib)
  end

  # Debian/Ubuntu's libopenblas0-pthread, for this machine's multiarch triplet.
  defp openblas_dir do
    arch = :erlang.system_info(:system_architecture) |> to_string() |> String.split("-") |> hd()

    Path.wildcard("/usr/lib/#{arch}-linux-gnu/openblas-pthread")
    |> Enum.find(&File.regular?(Path.join(&1, "libblas.so.3")))
  end
end
