defmodule Qwen3.KVCache do
  @moduledoc """
  A KV cache (`{batch, kv_heads, max_len, head_dim}` per layer, allocated 256 slots at a
  time as it fills) for one model.
  Each decoder layer writes its keys/values at its offset; `offset/1` is the number of
  tokens held. Pass it back to `Qwen3.Generate.generate/3` to continue a conversation.

  A cache remembers which token ids it holds (`:tokens`), so a continuation keeps the
  longest common prefix and prefills only the rest (`reuse/2`); `Qwen3.Serving` reuses its
  slots the same way (`keep_prefix/2`).
  """
  alias Qwen3.{Error, Native}

  @enforce_keys [:ref, :batch_size, :max_len]
  defstruct [:ref, :batch_size, :max_len, window: nil, tokens: []]

  @typedoc """
  `tokens` are the ids the cache holds, as `Qwen3.Generate` last left it (nil: unknown), so
  a continuation can keep the common prefix and recompute only what changed.
  """
  @type t :: %__MODULE__{
          ref: reference,
          batch_size: pos_integer,
          max_len: pos_integer,
          window: non_neg_integer | nil,
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

  @doc """
  Makes an empty one-row cache a window of `max_len` tokens that keeps its first `keep`:
  when full, it drops the oldest tokens after those (a quarter of the window at once) and
  goes on. `offset/1` then counts the tokens fed, more than it holds.
  """
  @spec window(t, non_neg_integer) :: {:ok, t} | {:error, Error.t()}
  def window(%__MODULE__{ref: ref} = cache, keep) when is_integer(keep) do
    with :ok <- ref |> Native.cache_set_window(keep) |> Native.await_ok(), do: {:ok, %{cache | window: keep}}
  end

  @doc "Declares how many padding slots start each row (batches of unequal prompts)."
  def set_left_padding(%__MODULE__{ref: ref}, padding) when is_list(padding),
    do: Native.cache_set_left_padding(ref, padding) |> Native.await_ok()

  @doc """
  Makes `cache` ready to generate from `ids`: with the tokens it holds known, it keeps the
  longest prefix they share with `ids` (`keep_prefix/2`); with them unknown (a cache filled
  elsewhere), `ids` must extend what it holds. Returns the cache and the ids still to feed.
  """
  @spec reuse(t, [non_neg_integer]) :: {:ok, t, [non_neg_integer]} | {:error, Error.t()}
  def reuse(%__MODULE__{} = cache, ids) do
    with {:ok, offset} <- offset(cache) do
      cond do
        is_list(cache.tokens) and length(cache.tokens) == offset -> keep_prefix(cache, ids)
        length(ids) > offset -> {:ok, cache, Enum.drop(ids, offset)}
        true -> {:error, %Error{kind: :invalid_argument, message: extend_message(offset, ids)}}
      end
    end
  end

  defp extend_message(offset, ids),
    do: "the cache already holds #{offset} tokens; input_ids (#{length(ids)}) must extend them"

  @doc """
  Cuts a cache whose tokens are known back to the longest prefix it shares with `ids`, and
  returns it with the ids still to feed: at least the last one, so that there are logits to
  sample from.
  """
  @spec keep_prefix(t, [non_neg_integer]) :: {:ok, t, [non_neg_integer]} | {:error, Error.t()}
  def keep_prefix(%__MODULE__{tokens: known} = cache, ids) when is_list(known) do
    keep = min(common_prefix(known, ids), length(ids) - 1)

    with :ok <- if(keep < length(known), do: truncate(cache, keep), else: :ok),
         do: {:ok, %{cache | tokens: Enum.take(ids, keep)}, Enum.drop(ids, keep)}
  end

  @doc "Empties the cache, so that what it holds is known again (nothing)."
  @spec reset(t) :: {:ok, t} | {:error, Error.t()}
  def reset(%__MODULE__{} = cache) do
    with :ok <- truncate(cache, 0), do: {:ok, %{cache | tokens: []}}
  end

  @doc """
  The cache with the tokens it holds recorded: the first `offset/1` of `ids` (the prompt
  and the generated tokens; the last one sampled is never fed). Unknown if it cannot tell.
  """
  @spec record(t, [non_neg_integer]) :: t
  def record(%__MODULE__{} = cache, ids) do
    case offset(cache) do
      {:ok, offset} -> %{cache | tokens: Enum.take(ids, offset)}
      {:error, _} -> %{cache | tokens: nil}
    end
  end

  @doc """
  Saves the cache to `path` (safetensors: each layer's keys and values, with the token ids
  it holds and its model's identity as metadata). The cache must be a one-row cache whose
  tokens are known, as `Qwen3.generate/3`'s result and `load/3` give it.
  """
  @spec save(t, Path.t()) :: :ok | {:error, Error.t()}
  def save(%__MODULE__{tokens: tokens, ref: ref}, path) when is_list(tokens),
    do: ref |> Native.cache_save(tokens, to_string(path)) |> Native.await_ok()

  def save(%__MODULE__{}, _path),
    do:
      {:error,
       %Error{kind: :invalid_argument, message: "the tokens this cache holds are unknown: it cannot be saved"}}

  @doc """
  Loads a cache `save/2` wrote, for `model`: a continuation given it as `:kv_cache`
  prefills only what follows the saved tokens. `:max_len` is the new cache's capacity
  (default: the saved tokens + 2048). A cache saved from another model (other shapes,
  dtype or weights) is `{:error, %Qwen3.Error{kind: :incompatible_cache}}`.
  """
  @spec load(Qwen3.Model.t(), Path.t(), keyword) :: {:ok, t} | {:error, Error.t()}
  def load(%Qwen3.Model{ref: model}, path, opts \\ []) do
    opts = Keyword.validate!(opts, max_len: nil)

    with {:ok, {ref, tokens}} <-
           model |> Native.model_load_cache(to_string(path), opts[:max_len]) |> Native.await() do
      {:ok,
       %__MODULE__{ref: ref, batch_size: 1, max_len: opts[:max_len] || length(tokens) + 2048, tokens: tokens}}
    end
  end

  @doc """
  Makes `cache` hold the first `len` tokens `source` holds, copied (both one-row caches of
  the same model; `source`'s tokens must be known). Returns `cache` with its tokens.
  """
  @spec copy_prefix(t, t, non_neg_integer) :: {:ok, t} | {:error, Error.t()}
  def copy_prefix(%__MODULE__{} = cache, %__MODULE__{tokens: tokens} = source, len)
      when is_list(tokens) and is_integer(len) and len <= length(tokens) do
    with :ok <- Native.cache_copy_prefix(cache.ref, source.ref, len) |> Native.await_ok(),
         do: {:ok, %{cache | tokens: Enum.take(tokens, len)}}
  end

  def copy_prefix(%__MODULE__{}, %__MODULE__{}, len),
    do:
      {:error,
       %Error{
         kind: :invalid_argument,
         message: "cannot copy #{inspect(len)} tokens of a cache whose tokens are unknown or fewer"
       }}

  @doc "Bytes the cache takes when full (all layers, its whole capacity; quantized or not)."
  @spec nbytes(t) :: {:ok, non_neg_integer} | {:error, Error.t()}
  def nbytes(%__MODULE__{ref: ref}), do: ref |> Native.cache_nbytes() |> Native.await()

  @doc "Bytes a cache as computed (not quantized) takes per token and row for `model`: keys and values, all layers."
  @spec bytes_per_token(Qwen3.Model.t()) :: pos_integer
  def bytes_per_token(%Qwen3.Model{info: i}) do
    elem = if i.dtype == :f32, do: 4, else: 2
    2 * i.num_hidden_layers * i.num_key_value_heads * i.head_dim * elem
  end

  @doc "How many leading elements two lists share."
  @spec common_prefix(list, list) :: non_neg_integer
  def common_prefix(a, b), do: common_prefix(a, b, 0)

  defp common_prefix([x | as], [x | bs], n), do: common_prefix(as, bs, n + 1)
  defp common_prefix(_, _, n), do: n
end
