"""JSON from an untrusted bundle, parsed strictly: UTF-8 only, no NaN/Infinity, no duplicate keys.

A duplicate key is how two readers of one file can be made to see different values (Python keeps
the last, other parsers the first), so it is refused rather than resolved.
"""

from __future__ import annotations

import json
from typing import Any


class MalformedJson(ValueError):
    """The bytes are not one strict JSON document."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise MalformedJson(f"duplicate key {key[:80]!r}")
        seen[key] = value
    return seen


def _no_constant(name: str) -> Any:
    raise MalformedJson(f"{name} is not JSON")


def loads(data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedJson(f"not UTF-8: {error}") from error
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except MalformedJson:
        raise
    except json.JSONDecodeError as error:
        raise MalformedJson(str(error)) from error
    except RecursionError as error:
        raise MalformedJson("nested too deeply") from error


def dumps(document: Any) -> bytes:
    """How the bundle writes JSON: stable key order, no NaN, UTF-8."""
    return (
        json.dumps(document, indent=1, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"
    ).encode("utf-8")
