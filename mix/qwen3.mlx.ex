defmodule Mix.Tasks.Qwen3.Mlx do
  @shortdoc "Fetches MLX's C++ SDK if needed and prints its directory"
  @moduledoc """
  Makes sure the MLX C++ SDK the NIF builds against is there (what `mix compile` does
  first) and prints its prefix, for tools that build without Mix (`cargo test`):

      export MLX_DIR="$(mix qwen3.mlx)"

  `MLX_DIR` set to an MLX install is used as it is. Otherwise the official wheel
  (`mlx-cpu`, `mlx-metal` on Apple Silicon, or `QWEN3_BUILD=cuda|cuda-12|cuda-13`) is fetched
  with pip into `QWEN3_WHEELS` (default `~/.cache/qwen3/wheels`), checked against its
  pinned sha256, and unpacked into the cache (`QWEN3_CACHE`, default `~/.cache/qwen3`). On
  Linux its CPU backend uses the system's OpenBLAS when installed (`libopenblas0-pthread`).

      mix qwen3.mlx --version            the MLX version this project builds against
      mix qwen3.mlx --point-blas DIR     point another wheel's BLAS (DIR: its *.libs) at OpenBLAS
  """
  use Mix.Task

  @impl true
  def run(argv) do
    case OptionParser.parse(argv, strict: [version: :boolean, point_blas: :string]) do
      {[version: true], [], []} -> IO.puts(Qwen3.Build.MLX.version())
      {[point_blas: dir], [], []} -> IO.puts(Qwen3.Build.MLX.point_blas_at_openblas(dir))
      {[], [], []} -> IO.puts(elem(Qwen3.Build.MLX.ensure!(), 0))
      _ -> Mix.raise("usage: mix qwen3.mlx [--version | --point-blas DIR]")
    end
  end
end
