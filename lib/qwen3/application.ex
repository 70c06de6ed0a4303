defmodule Qwen3.Application do
  @moduledoc false
  # Message-based streams run as tasks under `Qwen3.TaskSupervisor`, registered by their
  # reference in `Qwen3.Registry` so `Qwen3.cancel/1` can find them.
  use Application

  @impl true
  def start(_type, _args) do
    children = [
      {Registry, keys: :unique, name: Qwen3.Registry},
      {Task.Supervisor, name: Qwen3.TaskSupervisor}
    ]

    Supervisor.start_link(children, strategy: :one_for_one, name: Qwen3.Supervisor)
  end
end
