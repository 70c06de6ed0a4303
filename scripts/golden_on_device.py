"""Rewrites the golden data of a copy of the test fixtures with mlx-lm running on the GPU,
so that `QWEN3_TEST_DEVICE=gpu cargo test --test parity` compares both sides on one device.

python scripts/golden_on_device.py FIXTURES_COPY    (the copy is changed in place)
"""

import json
import os
import sys
from pathlib import Path

import mlx.core as mx

sys.path.insert(0, str(Path(__file__).parent))
from make_fixtures import golden  # noqa: E402


def main():
    root = Path(sys.argv[1])
    mx.set_default_device(mx.gpu)
    print(f"mlx-lm golden data on {mx.default_device()}", file=sys.stderr)
    only = os.environ.get("QWEN3_PARITY_ONLY")
    for variant in json.loads((root / "variants.json").read_text()):
        if only and variant not in only.split(","):
            continue
        meta_path = root / variant / "golden" / "meta.json"
        meta = json.loads(meta_path.read_text())
        meta["golden"] = {c: golden(root / variant, c) for c in meta["golden"]}
        meta_path.write_text(json.dumps(meta, indent=2))
        print(variant, {c: g["greedy"][:8] for c, g in meta["golden"].items()}, file=sys.stderr)


if __name__ == "__main__":
    main()
