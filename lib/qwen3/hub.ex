defmodule Qwen3.Hub do
  @moduledoc """
  Finds a model in the local Hugging Face cache: `Org/Name` resolves to
  `$HF_HOME/hub/models--Org--Name/snapshots/<revision>` (default `HF_HOME` is
  `~/.cache/huggingface`; `HF_HUB_CACHE` overrides the `hub` folder). The revision is the
  one `refs/main` names, else the only snapshot present.

  A repo that is not cached is downloaded there (the `hf-hub` crate; `HF_ENDPOINT` and the
  cached token are honoured) unless `HF_HUB_OFFLINE=1` or `download: false`: only what a
  Qwen3 checkpoint needs (config, tokenizer, chat template, safetensors).
  """

  @doc """
  A local directory is returned as is; a repo id is looked up in the cache, then downloaded.

  Options: `:revision` ("main"), `:download` (true unless `HF_HUB_OFFLINE` is set),
  `:on_download` (called with `%{file:, bytes_done:, bytes_total:}`; by default a progress
  line on stderr).
  """
  @spec resolve(String.t(), keyword) :: {:ok, Path.t()} | {:error, Qwen3.Error.t()}
  def resolve(path_or_repo, opts \\ []) do
    opts = Keyword.validate!(opts, revision: "main", download: not offline?(), on_download: &show_progress/1)

    cond do
      File.dir?(path_or_repo) ->
        {:ok, path_or_repo}

      repo_id?(path_or_repo) ->
        with {:error, %Qwen3.Error{kind: :not_found} = e} <- from_cache(path_or_repo, opts[:revision]) do
          if opts[:download], do: download(path_or_repo, opts), else: {:error, e}
        end

      true ->
        error("#{path_or_repo} is neither a directory nor a repo id like Qwen/Qwen3-0.6B")
    end
  end

  defp offline?, do: System.get_env("HF_HUB_OFFLINE", "") in ~w(1 true TRUE yes YES ON on)

  @doc "Downloads `repo` into the cache now; returns the snapshot directory."
  @spec download(String.t(), keyword) :: {:ok, Path.t()} | {:error, Qwen3.Error.t()}
  def download(repo, opts \\ []) do
    opts = Keyword.validate!(opts, revision: "main", download: true, on_download: &show_progress/1)
    tag = make_ref()

    repo
    |> Qwen3.Native.hub_download(opts[:revision], System.get_env("HF_ENDPOINT", ""), hub_dir(), self(), tag)
    |> await_download(tag, opts[:on_download])
    |> case do
      {:ok, dir} ->
        {:ok, dir}

      {:error, e} ->
        message =
          "#{e.message}. Download #{repo} into #{hub_dir()} on a machine with access " <>
            "(`huggingface-cli download #{repo}`), or pass a model directory."

        {:error, %{e | message: message}}
    end
  end

  defp await_download(ref, tag, on_download) do
    receive do
      {^tag, {:download, file, done, total}} ->
        on_download.(%{file: file, bytes_done: done, bytes_total: total})
        await_download(ref, tag, on_download)

      {^ref, {:ok, dir}} ->
        {:ok, dir}

      {^ref, {:error, reason}} ->
        {:error, Qwen3.Error.from_native(reason)}
    end
  end

  defp show_progress(%{file: file, bytes_done: done, bytes_total: total}) do
    mb = &Float.round(&1 / 1_048_576, 1)
    IO.write(:stderr, "\r#{file}: #{mb.(done)} / #{mb.(total)} MB")
    if done == total, do: IO.write(:stderr, "\n")
  end

  defp repo_id?(s), do: Regex.match?(~r{^[\w.-]+/[\w.-]+$}, s)

  @doc "The Hugging Face hub cache directory."
  def hub_dir do
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
