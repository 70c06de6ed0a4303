defmodule Qwen3 do
  @moduledoc """
  Qwen3 language models on Apple's MLX, from Elixir.

  The native side keeps MLX arrays as BEAM resources and runs every MLX call on one worker
  thread per device (`:cpu`, `:gpu`), so no scheduler ever waits on MLX.
  """

  @doc "Whether MLX can run on `device` here (`:gpu` means Metal or CUDA)."
  @spec device_available?(Qwen3.Array.device()) :: boolean
  def device_available?(device), do: Qwen3.Native.device_available(device)
end
