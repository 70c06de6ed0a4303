# GPU tests need Apple's Metal (or MLX's CUDA build); model tests need a real checkpoint.
# Run them with `mix test --include metal` / `--include model`.
ExUnit.start(exclude: [:metal, :model])
