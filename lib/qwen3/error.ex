defmodule Qwen3.Error do
  @moduledoc """
  The error every `Qwen3` function returns as `{:error, %Qwen3.Error{}}` (and bang variants raise).

  `:kind` says what went wrong, as an atom you can match on:

    * `:invalid_argument` — a shape, dtype, token id or option that fails a check
    * `:mlx` — MLX itself rejected the operation (its message is kept)
    * `:wrong_device` — arrays from different devices were combined
    * `:device_unavailable` — the device is not in this MLX build
    * `:io`, `:not_found`, `:invalid_file`, `:invalid_config`, `:missing_tensor` — loading problems
    * `:empty_prompt` — nothing to generate from
    * `:out_of_memory` — a checkpoint's weights would not fit the memory available
    * `:cache_overflow` — the prompt (or conversation) does not fit the KV cache
    * `:incompatible_cache` — a saved or shared KV cache belongs to another model
    * `:timeout` — a generation passed its `:timeout`
    * `:overloaded` — every `Qwen3.Serving` of that name is full (running and queued)
    * `:node_down`, `:serving_down` — the serving of a request went away mid-request
    * `:invalid_grammar` — a constraint (`Qwen3.Constraint`) that does not compile
    * `:loading` — the serving is still loading its checkpoint (`Qwen3.Serving.model/1`)
    * `:worker_gone` — the device worker has stopped
  """
  defexception [:kind, :message]

  @type t :: %__MODULE__{kind: atom, message: String.t()}

  @impl true
  def message(%__MODULE__{kind: kind, message: message}), do: "(#{kind}) #{message}"

  @doc """
  The value of `{:ok, value}`; raises the error of `{:error, %Qwen3.Error{}}`. What every
  bang variant (`Qwen3.load!/2`, `Qwen3.Array.to_list!/1` …) does with its tuple.
  """
  @spec unwrap!({:ok, value} | {:error, t}) :: value when value: term
  def unwrap!({:ok, value}), do: value
  def unwrap!({:error, %__MODULE__{} = e}), do: raise(e)

  @doc false
  def from_native({kind, message}) when is_atom(kind), do: %__MODULE__{kind: kind, message: message}
end
