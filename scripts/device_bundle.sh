#!/usr/bin/env bash
# Packs what scripts/device_check.sh needs on a GPU machine that reaches no registry: the
# parity, rows and sampler test binaries and the bench's device_side example (built here
# against the CPU SDK), the tiny fixtures, and the MLX 0.32.4 CUDA-13 wheels plus mlx-lm
# for that machine's python (3.12). The CUDA wheel is split into parts of at most PART_MB,
# since one transfer to that machine carries 64 MiB.
#   scripts/device_bundle.sh BUNDLE_DIR      (run inside `make` or after `source scripts/env.sh`)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
export MLX_DIR=${MLX_DIR:-$(qwen3_mlx)}
out=$(realpath -m "$1")
part_mb=${PART_MB:-44}
rm -rf "$out" && mkdir -p "$out"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cargo test --release -p qwen3 --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("parity", "rows", "sampler", "device_side"):
        print(m["target"]["name"], m["executable"])' |
  while read -r name exe; do cp "$exe" "$stage/$name"; done
strip "$stage"/*
tar -cJf "$out/bin.tar.xz" -C "$stage" parity rows sampler device_side

fixtures=${QWEN3_FIXTURES:?set QWEN3_FIXTURES (scripts/setup_fixtures.sh prints it)}
mkdir "$stage/fixtures"
cp "$fixtures"/variants.* "$stage/fixtures/"
for v in $(cat "$fixtures/variants.txt"); do cp -r "$fixtures/$v" "$stage/fixtures/"; done
tar -cJf "$out/fixtures.tar.xz" -C "$stage" fixtures

mlx_version=$(qwen3_mlx --version)
wheels="$QWEN3_CACHE/wheels/device"
mkdir -p "$wheels"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_35_x86_64 -d "$wheels" "mlx==$mlx_version" "mlx-cuda-13==$mlx_version" \
  "mlx-lm==$MLX_LM_VERSION"
cuda_wheel=$(basename "$wheels"/mlx_cuda_13-"$mlx_version"-*.whl)
echo "$cuda_wheel" >"$out/mlx_cuda.name"
split -b "${part_mb}M" -d "$wheels/$cuda_wheel" "$out/mlx_cuda.part"
cp "$wheels"/mlx-"$mlx_version"-cp312-*.whl "$wheels"/mlx_lm-"$MLX_LM_VERSION"-*.whl "$out/"
ls -la "$out" >&2
