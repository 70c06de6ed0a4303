#!/usr/bin/env bash
# `make test` from a clean clone, N times in a row, on a machine where epmd is not running:
# after each run it stops the epmd that run started (by its process id, and only that one),
# so every run starts without one, as on a fresh CI machine. Downloads and builds are
# reused from the user cache, as CI's cache does.
#   scripts/clean_runs.sh [N]      (default 5; from a checkout, which it clones each time)
set -euo pipefail
runs=${1:-5}
src=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
if pgrep -x epmd >/dev/null; then
  echo "epmd is running (pid $(pgrep -x epmd | paste -sd ' ')): this check needs a machine without one" >&2
  exit 1
fi
for i in $(seq 1 "$runs"); do
  dir=$(mktemp -d)
  git clone -q "$src" "$dir/qwen3"
  start=$(date +%s)
  status=0
  # A build dir, MLX or fixtures named by the caller's shell would mix its builds into the run.
  (cd "$dir/qwen3" && env -u CARGO_TARGET_DIR -u MLX_DIR -u QWEN3_FIXTURES make test) >"$dir/log" 2>&1 || status=$?
  secs=$(($(date +%s) - start))
  epmd=$(pgrep -x epmd || true)
  echo "run $i: make test exit $status in ${secs} s; $(grep -E '[0-9]+ tests?, [0-9]+ failures?' "$dir/log" | tail -n 1); epmd started by the run: pid ${epmd:-none}"
  if [ -n "$epmd" ]; then
    kill "$epmd"
    while kill -0 "$epmd" 2>/dev/null; do sleep 0.2; done
  fi
  if [ "$status" != 0 ]; then
    echo "the log is kept in $dir/log" >&2
    exit 1
  fi
  rm -rf "$dir"
done
