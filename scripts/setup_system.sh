#!/usr/bin/env bash
# Installs the system packages: Erlang/Elixir from Debian, OpenBLAS for MLX's CPU matmuls.
set -euo pipefail
. "$(dirname "$0")/env.sh"

if [ "$(uname -s)" = Darwin ]; then
  command -v elixir >/dev/null || { echo "install Elixir first (e.g. brew install elixir)" >&2; exit 1; }
  exit 0
fi

wanted=(elixir erlang-dev libopenblas0-pthread)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
