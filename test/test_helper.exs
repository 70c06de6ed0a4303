# GPU tests need Apple's Metal (or MLX's CUDA build); model tests need a real checkpoint;
# the install test builds the NIF from scratch in a throwaway project (minutes; `make test`
# runs it). Run them with `mix test --include metal` / `--include model` / `--include install`.
ExUnit.start(exclude: [:metal, :model, :install])
