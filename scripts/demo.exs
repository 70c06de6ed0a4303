# The smallest real thing until the model lands: MLX on the worker, through the NIF.
alias Qwen3.Array, as: A

x = A.from_list!([[1.0, 2.0], [3.0, 4.0]])
{:ok, y} = A.matmul(x, x)
IO.puts("MLX on #{A.device(y)}: [[1,2],[3,4]]^2 = #{inspect(A.to_list!(y))}")
IO.puts("memory: #{inspect(Qwen3.Memory.stats!())}")
