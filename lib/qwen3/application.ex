defmodule Qwen3.Application do
  @moduledoc false
  # Message-based streams run as tasks under `Qwen3.TaskSupervisor`, registered by their
  # reference in `Qwen3.Registry` so `Qwen3.cancel/1` can find them. Servings find each
  # other through the `:pg` scope `Qwen3.Serving`.
  use Application

  @impl true
  def start(_type, _args) do
    :ok = apply_memory_limits()
    warn_about_reference_blas()

    children = [
      {Registry, keys: :unique, name: Qwen3.Registry},
      {Task.Supervisor, name: Qwen3.TaskSupervisor},
      # `Qwen3.Serving`: the process group scope servings join, and their counters.
      %{id: :pg, start: {:pg, :start_link, [Qwen3.Serving]}},
      Qwen3.Serving.Board
    ]

    Supervisor.start_link(children, strategy: :one_for_one, name: Qwen3.Supervisor)
  end

  # The build records which BLAS the CPU backend links (see mix/mlx.ex): the wheel's own
  # reference BLAS works, but float32 matmuls are ~75x slower than with OpenBLAS.
  defp warn_about_reference_blas do
    build = Path.join([:code.priv_dir(:qwen3), "native", "build.txt"])

    with {:ok, text} <- File.read(build), true <- text =~ "blas=reference" do
      require Logger

      Logger.warning(
        "qwen3: MLX's CPU backend uses the wheel's reference BLAS, which is slow; install " <>
          "OpenBLAS (Debian/Ubuntu: libopenblas0-pthread) and run `mix compile` again"
      )
    end

    :ok
  end

  # `config :qwen3, cache_limit: bytes, memory_limit: bytes` caps MLX on the CPU device
  # from the start (see `Qwen3.Memory` to change them at run time).
  defp apply_memory_limits do
    for {key, set} <- [
          cache_limit: &Qwen3.Memory.set_cache_limit/1,
          memory_limit: &Qwen3.Memory.set_memory_limit/1
        ],
        bytes = Application.get_env(:qwen3, key) do
      {:ok, _previous} = set.(bytes)
    end

    :ok
  end
end
