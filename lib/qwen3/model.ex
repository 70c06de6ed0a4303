defmodule Qwen3.Model do
  @moduledoc """
  A loaded Qwen3 checkpoint and its fused primitives.

  The primitives are lazy: each returns a `Qwen3.Array` whose value is computed only when
  read (normally once per token, at the sampler). `Qwen3.Generate` drives them.
  """
  alias Qwen3.{Array, Error, KVCache, Native}

  @enforce_keys [:ref, :path, :device, :info]
  defstruct [:ref, :path, :device, :info, :tokenizer, :chat_template]

  @type t :: %__MODULE__{
          ref: reference,
          path: String.t(),
          device: Array.device(),
          info: map,
          tokenizer: Qwen3.Tokenizer.t() | nil,
          chat_template: Qwen3.ChatTemplate.t() | nil
        }

  @doc """
  Loads a Hugging Face model directory (`config.json`, safetensors single or sharded), or a
  repo id such as `"Qwen/Qwen3-0.6B"` found in the local Hugging Face cache (`Qwen3.Hub`).

  Options:
    * `:device` — `:cpu` (default) or `:gpu`
    * `:dtype` — compute dtype (`:f32`, `:bf16`, `:f16`); default `:f32` on the CPU, the
      checkpoint's dtype on a GPU
    * `:weights` — how the weight matrices are held: `:stored` (default: as the checkpoint
      stores them — 2/4/8-bit packed, bf16/f16 — with the CPU's packed kernels computing in
      float32 from them, or MLX's kernels on a GPU; 3/5/6-bit are widened on the CPU) or
      `:widened` (converted once at load to the compute dtype, quantized ones dequantized)
    * `:activations` — `:float32` (default) or `:int8`: on a CPU with AVX-512 VNNI, products
      with 4/8-bit packed weights quantize their input rows to int8 per weight group and
      multiply with integer dot products (faster above all for batched rows, as a
      `Qwen3.Serving` with many callers runs;
      each output moves by at most Σ|scale · q| · the input's int8 step / 2, so logits are no
      longer within the float32 parity bounds). Elsewhere, and for other weights, ignored:
      `info.int8_activations` says whether any product uses it
    * `:memory_limit` — bytes the weights may take (default: the memory the system has
      available); a load that needs more is `{:error, %Qwen3.Error{kind: :out_of_memory}}`
      before anything is allocated
    * `:quantized` — deprecated: `:packed` is `weights: :stored`, `:dense` is
      `weights: :widened`
    * `:on_progress` — called with `%{tensors_done:, tensors_total:, bytes_done:, bytes_total:}`
    * `:tokenizer` — `true` (default) loads `tokenizer.json` and the chat template when the
      directory has them; `false` skips them
    * `:download` — for a repo id that is not cached: download it (default: unless
      `HF_HUB_OFFLINE` is set; see `Qwen3.Hub`)
  """
  @spec load(Path.t(), keyword) :: {:ok, t} | {:error, Error.t()}
  def load(path, opts \\ []) do
    opts =
      Keyword.validate!(opts,
        device: :cpu,
        dtype: nil,
        weights: nil,
        activations: :float32,
        memory_limit: nil,
        quantized: nil,
        on_progress: nil,
        tokenizer: true,
        download: nil
      )

    limit = opts[:memory_limit]

    unless opts[:activations] in [:float32, :int8],
      do: raise(ArgumentError, "activations: expected :float32 or :int8, got #{inspect(opts[:activations])}")

    unless limit == nil or (is_integer(limit) and limit > 0),
      do: raise(ArgumentError, "memory_limit: expected a positive number of bytes, got #{inspect(limit)}")

    tag = make_ref()

    hub_opts = if opts[:download] == nil, do: [], else: [download: opts[:download]]

    with {:ok, path} <- Qwen3.Hub.resolve(path, hub_opts),
         path = Path.expand(path),
         {:ok, ref} <-
           Native.model_load(
             path,
             opts[:device],
             {opts[:dtype] || :default, weights(opts), opts[:memory_limit], opts[:activations] == :int8},
             self(),
             tag
           )
           |> await_with_progress(tag, opts[:on_progress]),
         {:ok, pairs} <- ref |> Native.model_info() |> Native.await(),
         {:ok, tokenizer, template} <- text_files(path, opts[:tokenizer]) do
      {:ok,
       %__MODULE__{
         ref: ref,
         path: path,
         device: opts[:device],
         info: Map.new(pairs),
         tokenizer: tokenizer,
         chat_template: template
       }}
    end
  end

  defp weights(opts) do
    case {opts[:weights], opts[:quantized]} do
      {nil, nil} -> :default
      {nil, :default} -> :default
      {nil, :packed} -> :stored
      {nil, :dense} -> :widened
      {nil, other} -> raise ArgumentError, "quantized: #{inspect(other)} (use weights: :stored | :widened)"
      {w, _} -> w
    end
  end

  # The tokenizer and chat template are optional: a bare checkpoint still generates ids.
  defp text_files(_path, false), do: {:ok, nil, nil}

  defp text_files(path, true) do
    with {:ok, tokenizer} <-
           optional(File.regular?(Path.join(path, "tokenizer.json")), &Qwen3.Tokenizer.load/1, path),
         {:ok, template} <- optional(tokenizer != nil, &template/1, path),
         do: {:ok, tokenizer, template}
  end

  defp optional(false, _load, _path), do: {:ok, nil}
  defp optional(true, load, path), do: load.(path)

  defp template(path) do
    case Qwen3.ChatTemplate.load(path) do
      {:error, %Error{kind: :not_found}} -> {:ok, nil}
      other -> other
    end
  end

  def load!(path, opts \\ []), do: Error.unwrap!(load(path, opts))

  defp await_with_progress(ref, tag, on_progress) when is_reference(ref) do
    receive do
      {^tag, {:progress, done, total, bytes, bytes_total}} ->
        if on_progress,
          do:
            on_progress.(%{
              tensors_done: done,
              tensors_total: total,
              bytes_done: bytes,
              bytes_total: bytes_total
            })

        await_with_progress(ref, tag, on_progress)

      {^ref, _} = reply ->
        send(self(), reply)
        flush_progress(tag)
        Native.await(ref)
    end
  end

  defp await_with_progress(error, _tag, _), do: Native.await(error)

  defp flush_progress(tag) do
    receive do
      {^tag, _} -> flush_progress(tag)
    after
      0 -> :ok
    end
  end

  @doc """
  A KV cache for this model (`:batch_size` rows, `:max_len` tokens); with `:kv_bits` (4 or
  8) it stores keys and values quantized in groups of `:kv_group_size` (64) along the head
  dimension, as mlx-lm's QuantizedKVCache; with 16, as float16.
  """
  @spec init_kv_cache(t, keyword) :: {:ok, KVCache.t()} | {:error, Error.t()}
  def init_kv_cache(%__MODULE__{ref: ref}, opts \\ []) do
    opts = Keyword.validate!(opts, batch_size: 1, max_len: 2048, kv_bits: nil, kv_group_size: 64)
    quant = opts[:kv_bits] && {opts[:kv_bits], opts[:kv_group_size]}

    with {:ok, cache} <-
           Native.model_new_cache(ref, opts[:batch_size], opts[:max_len], quant) |> Native.await() do
      {:ok, %KVCache{ref: cache, batch_size: opts[:batch_size], max_len: opts[:max_len]}}
    end
  end

  def init_kv_cache!(model, opts \\ []), do: Error.unwrap!(init_kv_cache(model, opts))

  @doc "Token ids `{B, L}` (or `{B}`) → hidden states `{B, L, hidden}`."
  def embed(%__MODULE__{ref: m}, %Array{ref: ids}), do: Native.model_embed(m, ids) |> Native.await_array()

  @doc "Decoder layer `index` (norms, attention with the cache, MLP, residuals)."
  def layer(%__MODULE__{ref: m}, index, %Array{ref: h}, %KVCache{ref: c}),
    do: Native.model_layer(m, index, h, c) |> Native.await_array()

  @doc """
  The attention block of layer `index` alone: on a normed input `{B, L, hidden}`, it writes
  the layer's keys and values into the cache and returns the output projection (no
  residual). With `mlp/3`, for loops that change what runs between the blocks (steering,
  inspecting activations); `layer/4` is the two with their norms and residuals.
  """
  def attention(%__MODULE__{ref: m}, index, %Array{ref: x}, %KVCache{ref: c}),
    do: Native.model_attention(m, index, x, c) |> Native.await_array()

  @doc "The SwiGLU MLP of layer `index` alone, on a normed input `{B, L, hidden}` (no residual)."
  def mlp(%__MODULE__{ref: m}, index, %Array{ref: x}),
    do: Native.model_mlp(m, index, x) |> Native.await_array()

  @doc "Final norm + LM head; only the last position unless `last_only: false`."
  def final_logits(%__MODULE__{ref: m}, %Array{ref: h}, opts \\ []) do
    opts = Keyword.validate!(opts, last_only: true)
    Native.model_final_logits(m, h, opts[:last_only]) |> Native.await_array()
  end

  @doc "One whole step natively: embed, every layer, final logits."
  def forward(%__MODULE__{ref: m}, %Array{ref: ids}, %KVCache{ref: c}, opts \\ []) do
    opts = Keyword.validate!(opts, last_only: true)
    Native.model_forward(m, ids, c, opts[:last_only]) |> Native.await_array()
  end

  @doc """
  One step for independent rows: `ids` `{B, L}`, row `i` extending its own one-row cache
  `Enum.at(caches, i)` at that cache's offset (continuous batching; see `Qwen3.Serving`).
  """
  def forward_rows(%__MODULE__{ref: m}, %Array{ref: ids}, caches, opts \\ []) when is_list(caches) do
    opts = Keyword.validate!(opts, last_only: true)
    refs = Enum.map(caches, fn %KVCache{ref: c} -> c end)
    Native.model_forward_rows(m, ids, refs, opts[:last_only]) |> Native.await_array()
  end

  @doc """
  Text embeddings (see `Qwen3.Embedding`): token rows `{B, L}`, row `b` left-padded by
  `Enum.at(left_padding, b)` slots, through every layer; the final norm of each row's last
  position, L2-normalised. Returns an f32 array `{B, hidden}`.
  """
  def pooled_embeddings(%__MODULE__{ref: m}, %Array{ref: ids}, left_padding) when is_list(left_padding),
    do: Native.model_pooled_embeddings(m, ids, left_padding) |> Native.await_array()

  defimpl Inspect do
    def inspect(m, _opts) do
      i = m.info

      "#Qwen3.Model<#{Path.basename(m.path)} #{i.num_hidden_layers} layers, hidden #{i.hidden_size}, " <>
        "vocab #{i.vocab_size}, #{i.dtype}#{if i.quantized != :none, do: " (quantized: #{i.quantized})"} #{m.device}>"
    end
  end
end
