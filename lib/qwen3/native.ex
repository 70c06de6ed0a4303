defmodule Qwen3.Native do
  @moduledoc false
  # The NIF table. Functions that touch MLX return a reference at once and the device
  # worker later sends `{ref, {:ok, value} | {:error, {kind, message}}}`: use `await/1`.

  @on_load :load_nif

  def load_nif do
    # First: it sets what OpenBLAS reads from the environment as libmlx loads it (without
    # it, OpenBLAS chooses alone).
    _ = Code.ensure_loaded(Qwen3.Blas)
    path = :filename.join(:code.priv_dir(:qwen3), ~c"native/libqwen3_nif")
    :erlang.load_nif(path, 0)
  end

  @doc "Waits for the worker's reply to a call that returned `ref`."
  def await(ref) when is_reference(ref) do
    receive do
      {^ref, {:ok, value}} -> {:ok, value}
      {^ref, {:error, reason}} -> {:error, Qwen3.Error.from_native(reason)}
    end
  end

  def await({:error, reason}), do: {:error, Qwen3.Error.from_native(reason)}

  @doc "Wraps the error of a NIF that answers directly."
  def direct({:ok, _} = ok), do: ok
  def direct({:error, reason}), do: {:error, Qwen3.Error.from_native(reason)}

  @doc "`await/1` for calls whose success value is just `:ok`."
  def await_ok(call) do
    case await(call) do
      {:ok, :ok} -> :ok
      error -> error
    end
  end

  @doc "`await/1` for calls that return an array resource, wrapped as `Qwen3.Array`."
  def await_array(call) do
    case await(call) do
      {:ok, ref} -> {:ok, %Qwen3.Array{ref: ref}}
      error -> error
    end
  end

  defp nif_error, do: :erlang.nif_error(:nif_not_loaded)

  def array_from_binary(_data, _shape, _dtype, _device), do: nif_error()
  def array_to_binary(_array), do: nif_error()
  def array_shape(_array), do: nif_error()
  def array_dtype(_array), do: nif_error()
  def array_device(_array), do: nif_error()
  def array_eval(_arrays), do: nif_error()
  def array_binary_op(_op, _a, _b), do: nif_error()
  def array_matmul(_a, _b), do: nif_error()
  def array_softmax(_a), do: nif_error()
  def array_sum(_a, _axis, _keepdims), do: nif_error()
  def array_reshape(_a, _shape), do: nif_error()
  def array_astype(_a, _dtype), do: nif_error()

  def array_async_eval(_arrays), do: nif_error()

  def model_load(_path, _device, _opts, _progress_pid, _tag), do: nif_error()
  def model_info(_model), do: nif_error()
  def model_new_cache(_model, _batch, _max_len, _quant), do: nif_error()
  def model_embed(_model, _ids), do: nif_error()
  def model_layer(_model, _index, _h, _cache), do: nif_error()
  def model_attention(_model, _index, _x, _cache), do: nif_error()
  def model_mlp(_model, _index, _x), do: nif_error()
  def model_final_logits(_model, _h, _last_only), do: nif_error()
  def model_forward(_model, _ids, _cache, _last_only), do: nif_error()
  def model_forward_rows(_model, _ids, _caches, _last_only), do: nif_error()
  def model_pooled_embeddings(_model, _ids, _left_padding), do: nif_error()
  def cache_offset(_cache), do: nif_error()
  def cache_truncate(_cache, _len), do: nif_error()
  def cache_set_left_padding(_cache, _padding), do: nif_error()
  def cache_release(_cache), do: nif_error()
  def cache_save(_cache, _tokens, _path), do: nif_error()
  def cache_set_window(_cache, _keep), do: nif_error()
  def cache_nbytes(_cache), do: nif_error()
  def cache_copy_prefix(_dst, _src, _len), do: nif_error()
  def model_load_cache(_model, _path, _max_len), do: nif_error()

  def sampler_new(_device, _spec, _seed, _history, _constraint, _thinking), do: nif_error()
  def sampler_sample(_sampler, _logits), do: nif_error()
  def sampler_sample_rows(_samplers, _logits), do: nif_error()
  def sampler_logprobs(_logits, _tokens, _top), do: nif_error()

  # These touch no MLX and answer directly: `{:ok, value} | {:error, {kind, message}}`.
  def sampler_spec(_model, _options), do: nif_error()
  def constraint_new(_model, _tokenizer_json, _kind, _source, _choices), do: nif_error()
  def tokenizer_load(_path), do: nif_error()
  def tokenizer_encode(_tokenizer, _text, _add_special), do: nif_error()
  def tokenizer_decode(_tokenizer, _ids, _skip_special), do: nif_error()
  def tokenizer_token_to_id(_tokenizer, _token), do: nif_error()
  def tokenizer_id_to_token(_tokenizer, _id), do: nif_error()
  def tokenizer_vocab_size(_tokenizer, _with_added), do: nif_error()
  def tokenizer_added_tokens(_tokenizer), do: nif_error()
  def tokenizer_token_bytes(_tokenizer, _ids), do: nif_error()
  def chat_template_new(_source), do: nif_error()
  def chat_template_render(_template, _context), do: nif_error()
  def json_decode(_text), do: nif_error()
  def hub_download(_repo, _revision, _endpoint, _cache_dir, _progress_pid, _tag), do: nif_error()
  def json_encode(_term, _pretty), do: nif_error()

  def device_available(_device), do: nif_error()
  def device_ping(_device), do: nif_error()
  def memory_stats(_device), do: nif_error()
  def memory_reset_peak(_device), do: nif_error()
  def memory_clear_cache(_device), do: nif_error()
  def memory_set_cache_limit(_device, _bytes), do: nif_error()
  def memory_set_memory_limit(_device, _bytes), do: nif_error()
end
