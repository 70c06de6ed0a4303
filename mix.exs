# The native compiler (and the MLX SDK it builds against) must exist before `lib/` is
# compiled, so they live outside `lib/`.
for file <- ~w(mlx.ex qwen3.mlx.ex compile.qwen3_native.ex),
    do: Code.require_file(Path.join("mix", file), __DIR__)

defmodule Qwen3.MixProject do
  use Mix.Project

  def project do
    [
      app: :qwen3,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      compilers: [:qwen3_native | Mix.compilers()],
      deps: [],
      elixirc_paths: elixirc_paths(Mix.env()),
      test_coverage: [ignore_modules: [~r/^Mix\.Tasks\.(Compile|Qwen3\.Mlx)/, Qwen3.Build.MLX]]
    ]
  end

  def application do
    [extra_applications: [:logger, :crypto], mod: {Qwen3.Application, []}]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
