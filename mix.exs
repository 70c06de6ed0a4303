# The native compiler must exist before `lib/` is compiled, so it lives outside `lib/`.
Code.require_file("mix/compile.qwen3_native.ex", __DIR__)

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
      test_coverage: [ignore_modules: [~r/^Mix\.Tasks\.Compile/]]
    ]
  end

  def application do
    [extra_applications: [:logger], mod: {Qwen3.Application, []}]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
