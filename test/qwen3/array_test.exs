defmodule Qwen3.ArrayTest do
  use ExUnit.Case, async: true

  alias Qwen3.Array, as: A

  @dtypes [:bool, :u8, :u16, :u32, :u64, :s8, :s16, :s32, :s64, :f16, :f32, :f64, :bf16]

  defp bytes(:bool, n), do: for(i <- 1..n, into: <<>>, do: <<rem(i, 2)>>)
  defp bytes(dtype, n), do: for(i <- 1..(n * size(dtype)), into: <<>>, do: <<rem(i * 37, 251)>>)

  defp size(dtype) when dtype in [:u8, :s8, :bool], do: 1
  defp size(dtype) when dtype in [:u16, :s16, :f16, :bf16], do: 2
  defp size(dtype) when dtype in [:u32, :s32, :f32], do: 4
  defp size(_), do: 8

  describe "round trips" do
    test "every dtype survives binary -> MLX -> binary unchanged" do
      for dtype <- @dtypes do
        bin = bytes(dtype, 6)
        a = A.from_binary!(bin, [2, 3], dtype)
        assert A.shape(a) == [2, 3]
        assert A.dtype(a) == dtype
        assert A.device(a) == :cpu
        assert A.to_binary!(a) == bin, "#{dtype} changed on the way"
      end
    end

    test "nested lists round-trip with inferred dtype and shape" do
      a = A.from_list!([[1, 2, 3], [4, 5, 6]])
      assert {A.shape(a), A.dtype(a)} == {[2, 3], :s32}
      assert A.to_list!(a) == [[1, 2, 3], [4, 5, 6]]

      b = A.from_list!([0.5, -1.25], dtype: :bf16)
      assert A.dtype(b) == :bf16
      assert A.to_list!(b) == [0.5, -1.25]
    end

    test "a zero-dimensional and an empty array" do
      assert A.from_binary!(<<7::signed-32-native>>, [], :s32) |> A.to_list!() == 7
      assert A.from_binary!(<<>>, [0, 4], :f32) |> A.to_binary!() == <<>>
    end

    test "inspect shows dtype, shape and device" do
      assert inspect(A.from_list!([[1.0, 2.0]])) == "#Qwen3.Array<f32[1][2] cpu>"
    end
  end

  # The binary ops, written here independently of native/mlx/ops.txt (their source).
  @reference_ops ~w(add subtract multiply divide maximum minimum power greater greater_equal
                    less less_equal equal logical_and logical_or)a
  describe "ops through the NIF equal the same ops in Elixir" do
    test "matmul" do
      x = for i <- 0..3, do: for(j <- 0..4, do: :math.sin(i * 5 + j))
      y = for i <- 0..4, do: for(j <- 0..2, do: :math.cos(i * 3 + j) * 2)
      want = for row <- x, do: for(col <- Enum.zip_with(y, & &1), do: dot(row, col))
      {:ok, got} = A.matmul(A.from_list!(x), A.from_list!(y))
      assert_close(A.to_list!(got), want, 1.0e-5)
    end

    test "broadcast add, softmax and sum" do
      m = [[1.0, 2.0, 3.0], [-1.0, 0.0, 4.0]]
      {:ok, s} = A.add(A.from_list!(m), A.from_list!([10.0, 20.0, 30.0]))
      assert_close(A.to_list!(s), [[11.0, 22.0, 33.0], [9.0, 20.0, 34.0]], 0.0)

      {:ok, p} = A.softmax(A.from_list!(m))
      want = for row <- m, do: softmax(row)
      assert_close(A.to_list!(p), want, 1.0e-6)

      {:ok, total} = A.sum(A.from_list!(m), 1)
      assert_close(A.to_list!(total), [6.0, 3.0], 0.0)
    end

    test "every binary op of ops.txt, with broadcasting" do
      assert Enum.sort(A.binary_ops()) == Enum.sort(@reference_ops)
      x = [[1.0, 2.0, 0.0], [-3.0, 2.0, 0.5]]
      y = [2.0, 2.0, 1.0]

      for op <- A.binary_ops() do
        {:ok, got} = apply(A, op, [A.from_list!(x), A.from_list!(y)])
        want = for row <- x, do: Enum.zip_with(row, y, &reference(op, &1, &2))

        case A.to_list!(got) do
          [[b | _] | _] = bools when is_boolean(b) -> assert bools == want, "#{op}"
          floats -> assert_close(floats, want, 1.0e-6)
        end
      end
    end
  end

  describe "bad input" do
    test "is a tagged error and the VM keeps working" do
      assert {:error, %Qwen3.Error{kind: :invalid_argument, message: msg}} =
               A.from_binary(<<1, 2, 3>>, [2], :f32)

      assert msg =~ "bytes"
      assert {:error, %Qwen3.Error{kind: :invalid_argument}} = A.from_binary(<<>>, [-1], :f32)
      assert {:error, %Qwen3.Error{kind: :invalid_argument}} = A.from_binary(<<0::32>>, [1], :f128)

      assert {:error, %Qwen3.Error{kind: :invalid_argument}} =
               A.from_binary(<<0::32>>, [1], :f32, device: :tpu)

      # MLX throws a C++ exception for incompatible shapes: caught, tagged, no crash.
      assert {:error, %Qwen3.Error{kind: :mlx, message: message}} =
               A.matmul(A.from_list!([[1.0, 2.0]]), A.from_list!([[1.0, 2.0]]))

      assert message =~ "matmul"
      assert_raise Qwen3.Error, ~r/\(invalid_argument\)/, fn -> A.from_binary!(<<1>>, [4], :f32) end

      assert A.to_list!(A.from_list!([1, 2])) == [1, 2]
    end

    test "the GPU is reported unavailable on a CPU-only MLX" do
      unless Qwen3.device_available?(:gpu) do
        assert {:error, %Qwen3.Error{kind: :device_unavailable}} =
                 A.from_binary(<<0::32>>, [1], :f32, device: :gpu)
      end
    end
  end

  test "50 processes hammering the worker all get their own correct answer" do
    results =
      1..50
      |> Task.async_stream(
        fn i ->
          for j <- 1..20 do
            a = A.from_list!([i * 1.0, j * 1.0])
            {:ok, b} = A.multiply(a, A.from_list!([2.0, 3.0]))
            {:ok, c} = A.sum(b, 0)
            {i, j, A.to_list!(c)}
          end
        end,
        max_concurrency: 50,
        ordered: false
      )
      |> Enum.flat_map(fn {:ok, rows} -> rows end)

    assert length(results) == 1000
    for {i, j, got} <- results, do: assert(got == i * 2.0 + j * 3.0)
  end

  defp dot(a, b), do: Enum.zip_with(a, b, &(&1 * &2)) |> Enum.sum()

  defp softmax(row) do
    m = Enum.max(row)
    e = Enum.map(row, &:math.exp(&1 - m))
    Enum.map(e, &(&1 / Enum.sum(e)))
  end

  defp reference(:add, a, b), do: a + b
  defp reference(:subtract, a, b), do: a - b
  defp reference(:multiply, a, b), do: a * b
  defp reference(:divide, a, b), do: a / b
  defp reference(:maximum, a, b), do: max(a, b)
  defp reference(:minimum, a, b), do: min(a, b)
  defp reference(:power, a, b), do: :math.pow(a, b)
  defp reference(:greater, a, b), do: a > b
  defp reference(:greater_equal, a, b), do: a >= b
  defp reference(:less, a, b), do: a < b
  defp reference(:less_equal, a, b), do: a <= b
  defp reference(:equal, a, b), do: a == b
  defp reference(:logical_and, a, b), do: a != 0 and b != 0
  defp reference(:logical_or, a, b), do: a != 0 or b != 0

  defp assert_close(got, want, tol) when is_list(got),
    do: Enum.zip_with(got, want, &assert_close(&1, &2, tol))

  defp assert_close(got, want, tol), do: assert(abs(got - want) <= tol, "#{got} vs #{want}")
end
