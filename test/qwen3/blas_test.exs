defmodule Qwen3.BlasTest do
  # What native/qwen3_cpu_setup writes into the C library's environment before OpenBLAS
  # loads. The VM's copy of the environment (System.get_env) is the one the test run
  # started with, so it says what a caller asked for.
  use ExUnit.Case, async: true

  test "OpenBLAS's idle threads are told to sleep unless the caller chose a timeout" do
    assert Qwen3.Blas.openblas_thread_timeout() == (System.get_env("OPENBLAS_THREAD_TIMEOUT") || "4")
  end

  test "the environment for other processes names what this one's OpenBLAS was given" do
    env = Map.new(Qwen3.Blas.environment())
    assert env["OPENBLAS_THREAD_TIMEOUT"] == Qwen3.Blas.openblas_thread_timeout()
    assert env["OPENBLAS_CORETYPE"] == Qwen3.Blas.openblas_coretype()
  end
end
