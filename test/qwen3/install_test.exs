defmodule Qwen3.InstallTest do
  # What a user does on a fresh machine: a new Mix project with `{:qwen3, path: ...}` in its
  # deps, then `mix deps.get && mix compile` and a generation, with an empty MLX cache and
  # no `make`. The wheel comes from the download cache that set-up filled (QWEN3_WHEELS),
  # so the test fetches nothing; it is unpacked, checked and linked from scratch, and the
  # NIF is built cold in the project's _build.
  use ExUnit.Case, async: false

  alias Qwen3.Fixtures

  @moduletag :install
  @moduletag timeout: 1_200_000

  # Outside the repository, as a user's project is.
  setup do
    tmp = Path.join(System.tmp_dir!(), "qwen3-install-#{System.unique_integer([:positive])}")
    File.mkdir_p!(tmp)
    on_exit(fn -> File.rm_rf!(tmp) end)
    {:ok, tmp_dir: tmp}
  end

  @mix_exs """
  defmodule Userapp.MixProject do
    use Mix.Project

    def project, do: [app: :userapp, version: "0.1.0", deps: [{:qwen3, path: System.fetch_env!("QWEN3_REPO")}]]
  end
  """

  test "a throwaway project compiles the dependency, fetching MLX itself, and generates", %{tmp_dir: tmp} do
    repo = File.cwd!()
    app = Path.join(tmp, "userapp")
    File.mkdir_p!(Path.join(app, "lib"))
    File.write!(Path.join(app, "mix.exs"), @mix_exs)
    repo_files = ignored_and_untracked(repo)

    env = [
      {"QWEN3_REPO", repo},
      {"QWEN3_CACHE", Path.join(tmp, "empty-cache")},
      {"QWEN3_WHEELS", Qwen3.Build.MLX.wheel_dir()},
      {"MIX_ENV", "dev"},
      {"MLX_DIR", nil},
      {"CARGO_TARGET_DIR", nil}
    ]

    mix = fn args -> System.cmd("mix", args, cd: app, env: env, stderr_to_stdout: true) end
    assert {_, 0} = mix.(["deps.get"])
    {out, status} = mix.(["compile"])
    assert status == 0, out

    model = Fixtures.path("dense-f32-tied")

    script =
      "IO.puts(Enum.join(Qwen3.generate!(Qwen3.load!(#{inspect(model)}), [1, 2, 3], max_new_tokens: 8).tokens, \" \"))"

    {out, 0} = mix.(["run", "-e", script])
    want = Qwen3.generate!(Qwen3.load!(model), [1, 2, 3], max_new_tokens: 8).tokens
    assert out |> String.split("\n", trim: true) |> List.last() == Enum.join(want, " ")

    # MLX was unpacked into the (empty) cache given, from the cached wheel.
    assert File.regular?(Path.join([tmp, "empty-cache", "mlx-cpu-#{Qwen3.Build.MLX.version()}", ".complete"]))
    # Nothing was written in the project but _build (and Mix's own lock file), nor in the
    # dependency's sources.
    assert File.ls!(app) -- ["_build", "lib", "mix.exs", "mix.lock"] == []
    assert File.ls!(Path.join(app, "lib")) == []
    assert ignored_and_untracked(repo) == repo_files
  end

  test "the wheel's BLAS is pointed at OpenBLAS when there is one, and back when not", %{tmp_dir: tmp} do
    libs = Path.join(tmp, "mlx_cpu.libs")
    openblas = Path.join(tmp, "openblas-pthread")
    File.mkdir_p!(libs)
    File.mkdir_p!(openblas)
    for f <- ~w(libblas.so.3 liblapack.so.3), do: File.write!(Path.join(openblas, f), "openblas")

    for f <- ~w(libblas-ab12.so.3.10.0 liblapack-cd34.so.3.10.0 libgfortran-ef56.so.5),
        do: File.write!(Path.join(libs, f), f)

    link = &File.read_link(Path.join(libs, &1))

    if match?({:unix, :linux}, :os.type()) do
      assert Qwen3.Build.MLX.point_blas_at_openblas(libs, openblas) == :openblas
      assert link.("libblas-ab12.so.3.10.0") == {:ok, Path.join(openblas, "libblas.so.3")}
      assert link.("liblapack-cd34.so.3.10.0") == {:ok, Path.join(openblas, "liblapack.so.3")}
      assert {:error, _} = link.("libgfortran-ef56.so.5")
      # Again: nothing changes.
      assert Qwen3.Build.MLX.point_blas_at_openblas(libs, openblas) == :openblas
      assert File.read!(Path.join(libs, "libblas-ab12.so.3.10.0.wheel")) == "libblas-ab12.so.3.10.0"

      assert Qwen3.Build.MLX.point_blas_at_openblas(libs, nil) == :reference
      assert {:error, _} = link.("libblas-ab12.so.3.10.0")
      assert File.read!(Path.join(libs, "libblas-ab12.so.3.10.0")) == "libblas-ab12.so.3.10.0"
      refute File.exists?(Path.join(libs, "libblas-ab12.so.3.10.0.wheel"))
    else
      assert Qwen3.Build.MLX.point_blas_at_openblas(libs, openblas) == nil
    end
  end

  test "without python3 the MLX fetch says what to install", %{tmp_dir: tmp} do
    # This PATH's commands, but no python or pip.
    bin = Path.join(tmp, "bin")
    File.mkdir_p!(bin)

    for dir <- System.get_env("PATH") |> String.split(":") |> Enum.uniq(),
        {:ok, names} <- [File.ls(dir)],
        name <- names,
        not String.starts_with?(name, ["python", "pip"]),
        not File.exists?(Path.join(bin, name)),
        do: File.ln_s!(Path.join(dir, name), Path.join(bin, name))

    env = [
      {"PATH", bin},
      {"QWEN3_CACHE", Path.join(tmp, "cache")},
      {"QWEN3_WHEELS", Path.join(tmp, "no-wheels")},
      {"MLX_DIR", nil}
    ]

    {out, status} = System.cmd(Path.join(bin, "mix"), ["qwen3.mlx"], env: env, stderr_to_stdout: true)
    assert status != 0
    assert out =~ "python3-pip" and out =~ "MLX_DIR", out
  end

  test "QWEN3_BUILD=cuda takes the wheel for the driver's CUDA major version" do
    header = fn version ->
      "| NVIDIA-SMI 580.159.04   Driver Version: 580.159.04   CUDA Version: #{version}     |"
    end

    assert Qwen3.Build.MLX.cuda_major(header.("13.0")) == 13
    assert Qwen3.Build.MLX.cuda_major(header.("12.8")) == 12
    # No driver (or no nvidia-smi): the CUDA 12 wheel, which newer drivers also run.
    assert Qwen3.Build.MLX.cuda_major("") == 12
  end

  # Files git does not track in the repository (ignored ones included), outside _build.
  defp ignored_and_untracked(repo) do
    {out, 0} = System.cmd("git", ~w(status --porcelain --ignored --untracked-files=all), cd: repo)
    out |> String.split("\n", trim: true) |> Enum.reject(&String.contains?(&1, "_build/")) |> Enum.sort()
  end
end
