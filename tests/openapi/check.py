"""Checks herd's OpenAPI document and live answers against it.

Usage: check.py DOC.json SAMPLES.json

DOC is what GET /openapi.json served. SAMPLES is a list of
{"method", "path" (the route template), "status", "body"} taken from real answers.
The document must be valid OpenAPI 3.1, and each body must match the schema the
document gives for that route, method and status. Exits non-zero with every
mismatch listed.
"""

import json
import sys

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate


def main() -> int:
    doc = json.load(open(sys.argv[1]))
    samples = json.load(open(sys.argv[2]))
    validate(doc)
    problems = []
    for s in samples:
        where = f"{s['method'].upper()} {s['path']} -> {s['status']}"
        operation = doc["paths"].get(s["path"], {}).get(s["method"])
        if operation is None:
            problems.append(f"{where}: route not in the document")
            continue
        response = operation["responses"].get(str(s["status"]))
        if response is None:
            problems.append(f"{where}: status not documented")
            continue
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            problems.append(f"{where}: no JSON schema documented")
            continue
        # The document's components beside the schema, so its $refs resolve.
        rooted = dict(schema, components=doc.get("components", {}))
        for error in Draft202012Validator(rooted).iter_errors(s["body"]):
            path = "/".join(str(p) for p in error.absolute_path)
            problems.append(f"{where}: at /{path}: {error.message}")
    for p in problems:
        print(p)
    print(f"{len(samples)} answers checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
