defmodule Qwen3.Application do
  @moduledoc false
  # Message-based streams run as tasks under `Qwen3.TaskSupervisor`, registered by their
  # reference in `Qwen3.Registry` so `Qwen3.cancel/1` can find them. Servings find each
  # other through the `:pg` scope `Qwen3.Serving`.
  use Application

  @impl true
  def start(_type, _args) do
    :ok = apply_memory_limits()

    children = [
      {Registry, keys: :unique, name: Qwen3.Registry},
      {Task.Supervisor, name: Qwen3.TaskSupervisor},
      # `Qwen3.Serving`: the process group scope servings join, and their counters.
      %{id: :pg, start: {:pg, :start_link, [Qwen3.Serving]}},
      Qwen3.Serving.Board
    ]

    Supervisor.start_link(children, strategy: :one_for_one, name: Qwen3.Supervisor)
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
