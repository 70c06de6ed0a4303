#!/usr/bin/env bash
# Tiny random checkpoints + mlx-lm golden outputs (scripts/make_fixtures.py), rebuilt only
# when the generator changes. Prints the fixture directory.
set -euo pipefail
. "$(dirname "$0")/env.sh"

hash="$( (cat "$(dirname "$0")"/make_*fixtures.py "$(dirname "$0")/env.sh"; qwen3_mlx --version) | sha256sum | cut -c1-12)"
dir="${QWEN3_FIXTURES:-$QWEN3_CACHE/fixtures-$hash}"
if [ ! -f "$dir/.complete" ]; then
  echo "==> building test checkpoints and mlx-lm golden data in $dir" >&2
  rm -rf "$dir"
  "$QWEN3_ORACLE_VENV/bin/python" "$(dirname "$0")/make_fixtures.py" "$dir" "$QWEN3_TOKENIZER_DIR" >&2
  touch "$dir/.complete"
fi
echo "$dir"
