defmodule Qwen3.Hub do
  @moduledoc """
  Finds a model in the local Hugging Face cache: `Org/Name` resolves to
  `$HF_HOME/hub/models--Org--Name/snapshots/<revision>` (default `HF_HOME` is
  `~/.cache/huggingface`; `HF_HUB_CACHE` overrides the `hub` folder). The revision is the
  one `refs/main` names, else the only snapshot present.
  """

  @doc "A local directory is returned as is; a repo id is looked up in the cache."
  @spec resolve(String.t(), keyword) :: {:ok, Path.t()} | {:error, Qwen3.Error.t()}
  def resolve(path_or_repo, opts \\ []) do
    opts = Keyword.validate!(opts, revision: "main")

    cond do
      File.dir?(path_or_repo) -> {:ok, path_or_repo}
      repo_id?(path_or_repo) -> from_cache(path_or_repo, opts[:revision])
      true -> error("#{path_or_repo} is neither a directory nor a repo id like Qwen/Qwen3-0.6B")
    end
  end

  defp repo_id?(s), do: Regex.match?(~r{^[\w.-]+/[\w.-]+$}, s)

  defp hub_dir do
    System.get_env("HF_HUB_CACHE") ||
      Path.join(System.get_env("HF_HOME") || Path.expand("~/.cache/huggingface"), "hub")
  end

  defp from_cache(repo, revision) do
    root = Path.join(hub_dir(), "models--" <> String.replace(repo, "/", "--"))
    snapshots = Path.join(root, "snapshots")
    ref = Path.join([root, "refs", revision])

    commit =
      cond do
        File.regular?(ref) -> ref |> File.read!() |> String.trim()
        File.dir?(Path.join(snapshots, revision)) -> revision
        true -> only_snapshot(snapshots)
      end

    dir = commit && Path.join(snapshots, commit)

    if dir && File.regular?(Path.join(dir, "config.json")) do
      {:ok, dir}
    else
      error(
        "#{repo} is not in the Hugging Face cache (#{root}). Download it there first, e.g. " <>
          "`huggingface-cli download #{repo}` on a machine with access, or pass a model directory."
      )
    end
  end

  defp only_snapshot(snapshots) do
    case File.ls(snapshots) do
      {:ok, [one]} -> one
      _ -> nil
    end
  end

  defp error(message), do: {:error, %Qwen3.Error{kind: :not_found, message: message}}
end
