defmodule Qwen3.Array do
  @moduledoc """
  An MLX array held by the BEAM. Operations are lazy: they build MLX's graph and return at
  once; data is computed when read (`to_binary/1`, `to_list/1`) or on `eval/1`.

  All MLX work runs on one worker thread per device, so callers never block a scheduler.
  An array is freed (on its worker) when the last process holding it lets go.
  """

  alias Qwen3.{Error, Native}

  @enforce_keys [:ref]
  defstruct [:ref]

  @type t :: %__MODULE__{ref: reference}
  @type dtype :: :bool | :u8 | :u16 | :u32 | :u64 | :s8 | :s16 | :s32 | :s64 | :f16 | :f32 | :f64 | :bf16
  @type device :: :cpu | :gpu

  @doc "Makes an array from native-endian, row-major `binary` of the given shape and dtype."
  @spec from_binary(binary, [non_neg_integer], dtype, keyword) :: {:ok, t} | {:error, Error.t()}
  def from_binary(binary, shape, dtype, opts \\ []) when is_binary(binary) and is_list(shape) do
    opts = Keyword.validate!(opts, device: :cpu)

    if Enum.all?(shape, &(is_integer(&1) and &1 >= 0 and &1 < 2 ** 31)) do
      binary
      |> Native.array_from_binary(shape, dtype, opts[:device])
      |> Native.await_array()
    else
      {:error,
       %Error{kind: :invalid_argument, message: "shape must be non-negative integers: #{inspect(shape)}"}}
    end
  end

  @doc "Makes an array from a (nested) list of numbers; dtype defaults to `:s32` or `:f32`."
  @spec from_list(list, keyword) :: {:ok, t} | {:error, Error.t()}
  def from_list(list, opts \\ []) when is_list(list) do
    opts = Keyword.validate!(opts, [:dtype, device: :cpu])
    {shape, flat} = shape_and_flatten(list)
    dtype = opts[:dtype] || if Enum.all?(flat, &is_integer/1), do: :s32, else: :f32

    if dtype == :bf16 do
      with {:ok, a} <- from_binary(encode(flat, :f32), shape, :f32, device: opts[:device]),
           do: astype(a, :bf16)
    else
      from_binary(encode(flat, dtype), shape, dtype, device: opts[:device])
    end
  end

  @doc "Evaluates and copies the data out as a native-endian binary."
  @spec to_binary(t) :: {:ok, binary} | {:error, Error.t()}
  def to_binary(%__MODULE__{ref: ref}), do: ref |> Native.array_to_binary() |> Native.await()

  @doc "Evaluates and returns the data as nested lists (a number for a 0-d array)."
  @spec to_list(t) :: {:ok, list | number} | {:error, Error.t()}
  def to_list(%__MODULE__{} = a) do
    with {:ok, a} <- if(dtype(a) == :bf16, do: astype(a, :f32), else: {:ok, a}),
         {:ok, bin} <- to_binary(a) do
      {:ok, bin |> decode(dtype(a)) |> nest(shape(a))}
    end
  end

  @spec shape(t) :: [non_neg_integer]
  def shape(%__MODULE__{ref: ref}), do: Native.array_shape(ref)

  @spec dtype(t) :: dtype
  def dtype(%__MODULE__{ref: ref}), do: Native.array_dtype(ref)

  @spec device(t) :: device
  def device(%__MODULE__{ref: ref}), do: Native.array_device(ref)

  @doc "Computes every array in the list (one pass over their shared graph)."
  @spec eval(t | [t]) :: :ok | {:error, Error.t()}
  def eval(arrays) do
    arrays
    |> List.wrap()
    |> Enum.map(& &1.ref)
    |> Native.array_eval()
    |> Native.await_ok()
  end

  # The element-wise binary ops: the `binary` lines of native/mlx/ops.txt, the one list the
  # Rust enums and the C++ switch are generated from too.
  @ops_file Path.expand("../../native/mlx/ops.txt", __DIR__)
  @external_resource @ops_file
  @binary_ops for line <- File.read!(@ops_file) |> String.split("\n"),
                  ["binary", name | _] <- [String.split(line)],
                  do: String.to_atom(name)

  @doc "The element-wise binary operations, each a function of this module."
  @spec binary_ops() :: [atom]
  def binary_ops, do: @binary_ops

  for op <- @binary_ops do
    @doc "Element-wise `#{op}` with broadcasting."
    @spec unquote(op)(t, t) :: {:ok, t} | {:error, Error.t()}
    def unquote(op)(%__MODULE__{ref: a}, %__MODULE__{ref: b}),
      do: Native.array_binary_op(unquote(op), a, b) |> Native.await_array()
  end

  @doc "Matrix product (batched over leading axes)."
  def matmul(%__MODULE__{ref: a}, %__MODULE__{ref: b}),
    do: Native.array_matmul(a, b) |> Native.await_array()

  @doc "Softmax over the last axis (float32 precision)."
  def softmax(%__MODULE__{ref: a}), do: Native.array_softmax(a) |> Native.await_array()

  @doc "Sum over `axis`."
  def sum(%__MODULE__{ref: a}, axis, opts \\ []) do
    opts = Keyword.validate!(opts, keepdims: false)
    Native.array_sum(a, axis, opts[:keepdims]) |> Native.await_array()
  end

  def reshape(%__MODULE__{ref: a}, shape), do: Native.array_reshape(a, shape) |> Native.await_array()
  def astype(%__MODULE__{ref: a}, dtype), do: Native.array_astype(a, dtype) |> Native.await_array()

  @doc "Like `from_list/2` but raises `Qwen3.Error`."
  def from_list!(list, opts \\ []), do: Error.unwrap!(from_list(list, opts))
  def from_binary!(bin, shape, dtype, opts \\ []), do: Error.unwrap!(from_binary(bin, shape, dtype, opts))
  def to_list!(a), do: Error.unwrap!(to_list(a))
  def to_binary!(a), do: Error.unwrap!(to_binary(a))

  # Shape of a rectangular nested list, and its elements in row-major order.
  defp shape_and_flatten([first | _] = list) when is_list(first) do
    {inner_shapes, flats} = list |> Enum.map(&shape_and_flatten/1) |> Enum.unzip()

    case Enum.uniq(inner_shapes) do
      [inner] -> {[length(list) | inner], Enum.concat(flats)}
      _ -> raise ArgumentError, "ragged nested list: rows have different shapes"
    end
  end

  defp shape_and_flatten(list), do: {[length(list)], list}

  @doc false
  def encode(values, dtype) do
    for v <- values, into: <<>> do
      case dtype do
        :f32 -> <<v * 1.0::float-32-native>>
        :f64 -> <<v * 1.0::float-64-native>>
        :f16 -> <<v * 1.0::float-16-native>>
        :bool -> <<if(v in [true, 1], do: 1, else: 0)::8>>
        {:s, bits} -> <<v::signed-integer-size(bits)-native>>
        {:u, bits} -> <<v::unsigned-integer-size(bits)-native>>
        other -> encode([v], int_type(other))
      end
    end
  end

  defp decode(bin, :f32), do: for(<<v::float-32-native <- bin>>, do: v)
  defp decode(bin, :f64), do: for(<<v::float-64-native <- bin>>, do: v)
  defp decode(bin, :f16), do: for(<<v::float-16-native <- bin>>, do: v)
  defp decode(bin, :bool), do: for(<<v::8 <- bin>>, do: v != 0)

  defp decode(bin, dtype) do
    case int_type(dtype) do
      {:s, bits} -> for <<v::signed-integer-size(bits)-native <- bin>>, do: v
      {:u, bits} -> for <<v::unsigned-integer-size(bits)-native <- bin>>, do: v
    end
  end

  defp int_type(dtype) do
    case Atom.to_string(dtype) do
      "s" <> bits -> {:s, String.to_integer(bits)}
      "u" <> bits -> {:u, String.to_integer(bits)}
      _ -> raise ArgumentError, "unsupported dtype for lists: #{inspect(dtype)}"
    end
  end

  defp nest([value], []), do: value
  defp nest(flat, []), do: hd(flat)
  defp nest(flat, [_]), do: flat

  defp nest(flat, [_ | rest]) do
    flat |> Enum.chunk_every(Enum.product(rest)) |> Enum.map(&nest(&1, rest))
  end

  defimpl Inspect do
    def inspect(a, _opts) do
      dims = Enum.map_join(Qwen3.Array.shape(a), &"[#{&1}]")
      "#Qwen3.Array<#{Qwen3.Array.dtype(a)}#{dims} #{Qwen3.Array.device(a)}>"
    end
  end
end
