#!/usr/bin/env bash
# The llama.cpp side of `make bench`: llama.cpp's prebuilt CPU build as node-llama-cpp ships
# it on npm (no compiler run), and the gguf package (PyPI) that writes its checkpoints, in
# the oracle venv. Prints the folder whose node_modules holds node-llama-cpp.
set -euo pipefail
. "$(dirname "$0")/env.sh"

NODE_LLAMA_CPP_VERSION="3.22.1"
GGUF_VERSION="0.19.0"
dir="$QWEN3_CACHE/llama-cpp-$NODE_LLAMA_CPP_VERSION"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) prebuilt="@node-llama-cpp/linux-x64" ;;
  Linux-aarch64) prebuilt="@node-llama-cpp/linux-arm64" ;;
  Darwin-arm64) prebuilt="@node-llama-cpp/mac-arm64-metal" ;;
  *) echo "no prebuilt llama.cpp for $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac

if [ ! -f "$dir/.done" ]; then
  echo "==> installing node-llama-cpp $NODE_LLAMA_CPP_VERSION with $prebuilt" >&2
  rm -rf "$dir" && mkdir -p "$dir"
  # Only this platform's prebuilt binary (the optional CUDA/Vulkan ones are ~600 MB), and no
  # install script: it would look for a binary to download or build.
  (cd "$dir" && echo '{"private": true, "type": "module"}' > package.json &&
    NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --silent --ignore-scripts --omit=optional \
      "node-llama-cpp@$NODE_LLAMA_CPP_VERSION" "$prebuilt@$NODE_LLAMA_CPP_VERSION" >&2)
  touch "$dir/.done"
fi

"$QWEN3_ORACLE_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('gguf') != sys.argv[1])" \
  "$GGUF_VERSION" 2>/dev/null || "$QWEN3_ORACLE_VENV/bin/pip" install -q "gguf==$GGUF_VERSION" >&2

echo "$dir"
