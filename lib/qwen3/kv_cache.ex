defmodule Qwen3.KVCache do
  @moduledoc """
  A preallocated KV cache (`{batch, kv_heads, max_len, head_dim}` per layer) for one model.
  Each decoder layer writes its keys/values at its offset; `offset/1` is the number of
  tokens held. Pass it back to `Qwen3.Generate.generate/3` to continue a conversation.
  """
  alias Qwen3.Native

  @enforce_keys [:ref, :batch_size, :max_len]
  defstruct [:ref, :batch_size, :max_len, tokens: []]

  @typedoc """
  `tokens` are the ids the cache holds, as `Qwen3.Generate` last left it (nil: unknown), so
  a continuation can keep the common prefix and recompute only what changed.
  """
  @type t :: %__MODULE__{
          ref: reference,
          batch_size: pos_integer,
          max_len: pos_integer,
          tokens: [non_neg_integer] | nil
        }

  @doc "Tokens held so far."
  @spec offset(t) :: {:ok, non_neg_integer} | {:error, Qwen3.Error.t()}
  def offset(%__MODULE__{ref: ref}), do: ref |> Native.cache_offset() |> Native.await()

  @doc "Forgets everything after the first `len` tokens."
  def truncate(%__MODULE__{ref: ref}, len) when is_integer(len),
    do: Native.cache_truncate(ref, len) |> Native.await_ok()

  @doc """
  Frees the cache's buffers now rather than when the garbage collector drops the last
  reference; later calls with it return an `:invalid_argument` error.
  """
  def release(%__MODULE__{ref: ref}), do: ref |> Native.cache_release() |> Native.await_ok()

  @doc "Declares how many padding slots start each row (batches of unequal prompts)."
  def set_left_padding(%__MODULE__{ref: ref}, padding) when is_list(padding),
    do: Native.cache_set_left_padding(ref, padding) |> Native.await_ok()
end
