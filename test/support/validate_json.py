"""Checks generated texts against their JSON Schemas with the `jsonschema` package (pinned in
the oracle venv): reads [{"schema": ..., "text": ...}] on stdin, writes one entry per text,
null when it parses and validates, else what is wrong.
"""

import json
import sys

import jsonschema

results = []
for case in json.load(sys.stdin):
    try:
        jsonschema.validate(json.loads(case["text"]), case["schema"])
        results.append(None)
    except (ValueError, jsonschema.ValidationError) as e:
        results.append(f"{type(e).__name__}: {str(e)[:200]}")
print(json.dumps(results))
