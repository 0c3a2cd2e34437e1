"""JSON in and out of a bundle. Reading goes through ``conformance.untrusted.loads_strict_json``
(UTF-8 only; no NaN, Infinity or overflowing numbers such as ``1e999``; no duplicate keys; bounded
depth and size), so a bundle's members, a results file and a system description are all read by
the same strict rules.

A duplicate key is how two readers of one file can be made to see different values (Python keeps
the last, other parsers the first), so it is refused rather than resolved.
"""

from __future__ import annotations

import json
from typing import Any

from conformance.untrusted import UntrustedInputError, loads_strict_json

MalformedJson = UntrustedInputError  # the name this package has always caught
MAX_MEMBER_JSON_BYTES = 64 << 20  # no member is larger (safe_zip.Limits.max_member_bytes)


def loads(data: bytes | str, max_bytes: int = MAX_MEMBER_JSON_BYTES) -> Any:
    return loads_strict_json(data, max_bytes=max_bytes)


def dumps(document: Any) -> bytes:
    """How the bundle writes JSON: stable key order, no NaN, UTF-8."""
    return (
        json.dumps(document, indent=1, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"
    ).encode("utf-8")
