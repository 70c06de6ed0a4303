#!/usr/bin/env bash
# The numerical oracle: mlx-lm on the same MLX version as the NIF, in its own venv.
set -euo pipefail
. "$(dirname "$0")/env.sh"

MLX_VERSION="$(qwen3_mlx --version)"
stamp="$QWEN3_ORACLE_VENV/.qwen3-$MLX_VERSION-$MLX_LM_VERSION-$TRANSFORMERS_VERSION-$JINJA2_VERSION"
if [ ! -f "$stamp" ]; then
  echo "==> building the mlx-lm oracle venv"
  rm -rf "$QWEN3_ORACLE_VENV"
  python3 -m venv "$QWEN3_ORACLE_VENV"
  extra=cpu; [ "$(uname -s)" = Darwin ] && extra=metal
  "$QWEN3_ORACLE_VENV/bin/pip" install -q "mlx[$extra]==$MLX_VERSION" "mlx-lm==$MLX_LM_VERSION" \
    "transformers==$TRANSFORMERS_VERSION" "jinja2==$JINJA2_VERSION"
  touch "$stamp"
fi
# The real OpenAI client (the HTTP server's tests) and a JSON Schema validator (the
# constrained-decoding tests), added to an existing venv as it is. Pinned here, not in
# env.sh: they do not change the fixtures, whose hash covers env.sh.
OPENAI_VERSION="3.57.0"
JSONSCHEMA_VERSION="4.26.0"
for pkg in "openai==$OPENAI_VERSION" "jsonschema==$JSONSCHEMA_VERSION"; do
  "$QWEN3_ORACLE_VENV/bin/python" -c "import importlib.metadata as m, sys; n, v = sys.argv[1].split('=='); sys.exit(m.version(n) != v)" "$pkg" 2>/dev/null ||
    "$QWEN3_ORACLE_VENV/bin/pip" install -q "$pkg"
done
# Same BLAS as ours, so side-by-side timings compare the models, not the BLAS.
libs="$("$QWEN3_ORACLE_VENV/bin/python" -c 'import mlx, os; print(os.path.join(os.path.dirname(mlx.__path__[0]), "mlx_cpu.libs"))' 2>/dev/null || true)"
[ -z "$libs" ] || qwen3_mlx --point-blas "$libs" >/dev/null
