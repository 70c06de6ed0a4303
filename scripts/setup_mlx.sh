#!/usr/bin/env bash
# Unpacks the MLX C++ SDK shipped inside the official wheel. On Linux the wheel's bundled
# reference BLAS/LAPACK are pointed at OpenBLAS (float32 GEMM ~75x faster, see DESIGN.md).
set -euo pipefail
. "$(dirname "$0")/env.sh"

if [ "$MLX_DIR" != "$MLX_WHEEL_ROOT/mlx" ]; then # the user brought their own MLX
  [ -f "$MLX_DIR/include/mlx/mlx.h" ] || { echo "MLX_DIR=$MLX_DIR has no include/mlx/mlx.h" >&2; exit 1; }
  exit 0
fi
[ "$MLX_WHEEL" != unsupported ] || { echo "no MLX wheel for $(uname -sm); set MLX_DIR" >&2; exit 1; }

if [ ! -f "$MLX_WHEEL_ROOT/.complete" ]; then
  echo "==> fetching $MLX_WHEEL==$MLX_VERSION"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "$MLX_WHEEL==$MLX_VERSION"
  rm -rf "$MLX_WHEEL_ROOT" && mkdir -p "$MLX_WHEEL_ROOT"
  python3 -m zipfile -e "$tmp"/*.whl "$MLX_WHEEL_ROOT"
  touch "$MLX_WHEEL_ROOT/.complete"
fi
point_blas_at_openblas "$MLX_WHEEL_ROOT/mlx_cpu.libs"
