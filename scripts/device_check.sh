#!/usr/bin/env bash
# The GPU check, run on a Linux machine with an NVIDIA GPU and no registry: the parity suite
# on the GPU (against mlx-lm's golden data from the CPU and from the same GPU), and this
# project's prefill/decode beside mlx-lm's on the 0.6B-shaped bench checkpoints, both on
# MLX 0.32.4's CUDA build. scripts/device_bundle.sh (run where cargo and pip work) packs
# what it needs into BUNDLE; the machine needs python3 with numpy, transformers and the
# NVIDIA CUDA 13 runtime wheels (cuBLAS, cuDNN, NVRTC …) that mlx-cuda-13 requires.
#   scripts/device_check.sh BUNDLE OUT_DIR
# A GPU's first use of each MLX kernel compiles it (NVRTC), which made a full run of every
# fixture take minutes: PARITY_ONLY, CHECKPOINTS and STEP_S (each step's limit) bound it.
set -uo pipefail
parity_only=${PARITY_ONLY:-}
checkpoints=${CHECKPOINTS:-tiny-bf16 0.6b-bf16 0.6b-8bit 0.6b-4bit}
step_s=${STEP_S:-600}
stages=" ${STAGES:-parity gpu-golden tests speed} "
want() { [[ $stages == *" $1 "* ]]; }
bundle=$(realpath "$1")
out=$(realpath -m "$2")
mkdir -p "$out"
log() { echo "==> $*" >&2; }
cd "$(dirname "$0")/.."

log "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2

# 1. MLX's CUDA build and mlx-lm into the machine's python (beside the NVIDIA wheels that
#    libmlx.so finds through its RPATH).
wheels=$(mktemp -d)
cat "$bundle"/mlx_cuda.part* >"$wheels/$(cat "$bundle/mlx_cuda.name")"
cp "$bundle"/*.whl "$wheels"/
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir "$wheels"/*.whl || exit 1
site=$(python3 -c 'import mlx.core, os; print(os.path.dirname(os.path.dirname(mlx.core.__file__)))')
export LD_LIBRARY_PATH="$site/mlx/lib:$(ls -d "$site"/nvidia/*/lib | paste -sd:)"
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
python3 -c 'import mlx.core as mx; print("mlx", mx.__version__, mx.default_device(), mx.ones(4).sum().item())' >&2 ||
  exit 1

# 2. Our test binaries and bench side, built against the CPU SDK of the same version: on
#    this machine LD_LIBRARY_PATH puts the CUDA build's libmlx.so first (same headers, ABI).
bin=$(mktemp -d)
tar -xJf "$bundle/bin.tar.xz" -C "$bin"
fixtures=$(mktemp -d)
tar -xJf "$bundle/fixtures.tar.xz" -C "$fixtures"
export QWEN3_FIXTURES=$fixtures/fixtures QWEN3_TEST_DEVICE=gpu QWEN3_PARITY_ONLY=$parity_only
[ -n "$parity_only" ] || unset QWEN3_PARITY_ONLY

want parity && log "parity on the GPU against mlx-lm's golden data from the CPU" &&
  timeout "$step_s" "$bin/parity" --nocapture --test-threads=1 2>&1 | tee "$out/parity-vs-cpu-golden.txt"
if want gpu-golden; then
  log "mlx-lm golden data on this GPU"
  cp -r "$fixtures/fixtures" "$fixtures/gpu"
  timeout "$step_s" python3 scripts/golden_on_device.py "$fixtures/gpu" 2>&1 | tee "$out/golden-gpu.txt"
  log "parity on the GPU against mlx-lm on the same GPU"
  QWEN3_FIXTURES=$fixtures/gpu timeout "$step_s" "$bin/parity" --nocapture --test-threads=1 2>&1 |
    tee "$out/parity-vs-gpu-golden.txt"
fi
for t in rows sampler; do
  want tests || break
  log "$t tests on the GPU"
  timeout "$step_s" "$bin/$t" --test-threads=1 2>&1 | tail -n 30 | tee "$out/$t.txt"
done

# 3. Speed: the same checkpoints, prompts and measurements on both sides, alternating which
#    side runs first.
want speed || { log "done"; exit 0; }
ckpts=$(mktemp -d)
log "building the bench checkpoints"
timeout "$step_s" python3 bench/checkpoints.py "$ckpts" $checkpoints 2>&1 | tail -n 5 >&2
i=0
for name in $checkpoints; do
  ours() { timeout "$step_s" "$bin/device_side" "$ckpts/$name" --device gpu --prompt-lens 128,512 --decode 128; }
  theirs() { timeout "$step_s" python3 bench/mlx_lm_side.py "$ckpts/$name" --prompt-lens 128,512 --decode 128 --budget 30; }
  for side in $([ $((i % 2)) = 0 ] && echo "ours theirs" || echo "theirs ours"); do
    log "$name: $side"
    json=$($side) && echo "{\"checkpoint\": \"$name\", \"side\": \"$side\", \"result\": $json}" |
      tee -a "$out/speed.jsonl"
  done
  i=$((i + 1))
done
log "done"
