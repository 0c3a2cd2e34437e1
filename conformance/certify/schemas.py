"""The JSON Schemas a bundle's members must satisfy (spec/schemas/), as lists of readable errors."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema

from conformance.spec import SPEC_DIR

RESULTS = "results.schema.json"
MANIFEST = "bundle-manifest.schema.json"
SYSTEM = "system.schema.json"
OPS_SECTION = "ops-section"  # the results' ops section, whose schema lives with the ops spec
OP_TABLE = "op-table.schema.json"  # ops.json of a bundle
PATHS = {OPS_SECTION: SPEC_DIR / "ops" / "ops-section.schema.json"}
ERRORS_SHOWN = 5


@cache
def validator(name: str, pointer: str = "") -> jsonschema.Draft202012Validator:
    path = PATHS.get(name, SPEC_DIR / "schemas" / name)
    schema = json.loads(path.read_text(encoding="utf-8"))
    if pointer:  # one definition of the schema, e.g. "$defs/attested"
        schema = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/{pointer}"}
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def errors(name: str, instance: Any, pointer: str = "") -> list[str]:
    """Every way ``instance`` breaks the schema (the first few, each with where it is)."""
    found = sorted(
        validator(name, pointer).iter_errors(instance), key=lambda e: list(e.absolute_path)
    )
    messages = [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message[:300]}"
        for e in found[:ERRORS_SHOWN]
    ]
    if len(found) > ERRORS_SHOWN:
        messages.append(f"and {len(found) - ERRORS_SHOWN} more")
    return messages
