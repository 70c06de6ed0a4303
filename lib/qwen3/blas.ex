defmodule Qwen3.Blas do
  @moduledoc false
  # Loads native/qwen3_cpu_setup before Qwen3.Native's library: it settles what OpenBLAS
  # reads from the environment as it loads (OPENBLAS_CORETYPE=SkylakeX on an AVX-512 CPU
  # whose model OpenBLAS 0.3.21 may not know, OPENBLAS_THREAD_TIMEOUT=4 so that its idle
  # threads sleep instead of spinning beside ours; see that crate). A missing library only
  # means OpenBLAS chooses by itself.

  @on_load :load_nif

  def load_nif do
    path = :filename.join(:code.priv_dir(:qwen3), ~c"native/libqwen3_cpu_setup")

    _ = :erlang.load_nif(path, 0)
    :ok
  end

  @doc """
  The OpenBLAS core type in this process's environment, if any (nil: OpenBLAS chooses).
  Pass it on to other processes that load OpenBLAS (the VM's copy of the environment,
  which `System.cmd/3` hands on, does not have it).
  """
  def openblas_coretype, do: System.get_env("OPENBLAS_CORETYPE")

  @doc "The spinning timeout OpenBLAS was given (nil: its default)."
  def openblas_thread_timeout, do: System.get_env("OPENBLAS_THREAD_TIMEOUT")

  @doc "Both, as `System.cmd/3`'s `:env` for other processes that load OpenBLAS."
  def environment do
    [
      {"OPENBLAS_CORETYPE", openblas_coretype()},
      {"OPENBLAS_THREAD_TIMEOUT", openblas_thread_timeout()}
    ]
  end
end
