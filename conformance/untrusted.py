"""Reading and printing what the suite did not write itself: bundles, results files, model metadata.

Two rules, one place:

- ``printable`` turns any string into one that cannot act on a terminal: every control character
  (C0 including newline and carriage return, DEL, C1), the ANSI escape character, Unicode format
  characters (bidi overrides and isolates, zero-width joiners) and line/paragraph separators are
  written as visible escapes (``\\x1b``, ``\\n``, ``\\u202e``). A check id that carries
  ``"\\rVERIFIED"`` prints as ``\\rVERIFIED`` on the line where it belongs, so it can neither hide
  nor forge a line.
- ``loads_strict_json`` parses one JSON document and refuses what two readers could read
  differently or what would poison arithmetic later: NaN, Infinity, numbers that overflow to
  infinity (``1e999``), integers beyond 64 bits, duplicate keys, nesting deeper than
  ``max_depth``, input larger than ``max_bytes``, bytes that are not UTF-8.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any

import numpy as np

MAX_DEPTH = 64
MAX_INT = 2**63  # |integers| beyond this are refused (no field of ours needs more)
ELLIPSIS = "…"

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_ASCII_SAFE = re.compile(r"[ -~]*")  # printable ASCII: the common case, nothing to escape


class UntrustedInputError(ValueError):
    """Untrusted input that is not what it must be; the message names what is wrong."""


class TooLargeError(UntrustedInputError):
    """Untrusted input past a size limit (bytes or values): refused before it is parsed."""


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def printable(text: object, limit: int | None = None) -> str:
    """``text`` (any object, through ``str``) safe to print on a terminal, cut to ``limit``
    characters with an ellipsis (the cut never splits an escape)."""
    raw = text if isinstance(text, str) else str(text)
    if limit is not None:
        raw = raw[: limit + 1]  # an escape never shortens a character, so the rest cannot fit
    pieces: list[str] | str = (
        raw if _ASCII_SAFE.fullmatch(raw) else [_escape(c) if _unsafe(c) else c for c in raw]
    )
    joined = pieces if isinstance(pieces, str) else "".join(pieces)
    if limit is None or len(joined) <= limit:
        return joined
    keep, kept, out = max(limit - len(ELLIPSIS), 0), 0, []
    for piece in pieces:
        if kept + len(piece) > keep:
            break
        out.append(piece)
        kept += len(piece)
    return "".join(out) + ELLIPSIS


_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # a backslash and the character it escapes
_STRING = re.compile(rb'"[^"]*"')  # once escapes are gone, a string runs to the next quote


def json_shape(data: bytes) -> tuple[int, int]:
    """How deeply arrays and objects nest in JSON text, and roughly how many values it holds
    (commas and openings outside strings), in linear time at C speed: measured before the
    (recursive) parser sees a depth bomb or a flood of tiny values."""
    skeleton = _STRING.sub(b"", _ESCAPE.sub(b"", data))
    codes = np.frombuffer(skeleton, dtype=np.uint8)
    opens = (codes == ord("[")) | (codes == ord("{"))
    closes = (codes == ord("]")) | (codes == ord("}"))
    steps = opens.astype(np.int32) - closes.astype(np.int32)
    depth = int(np.cumsum(steps).max()) if steps.size else 0
    return max(depth, 0), int(opens.sum()) + int(np.count_nonzero(codes == ord(","))) + 1


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise UntrustedInputError(f"duplicate key {printable(key, 80)!r}")
        seen[key] = value
    return seen


def _no_constant(name: str) -> Any:
    raise UntrustedInputError(f"{name} is not a JSON number (non-finite numbers are refused)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UntrustedInputError(
            f"number {printable(text, 40)} overflows to infinity (non-finite numbers are refused)"
        )
    return value


def _bounded_int(text: str) -> int:
    if len(text) > 20:
        raise UntrustedInputError(f"integer {printable(text, 40)} is out of range (|n| < 2**63)")
    value = int(text)
    if abs(value) >= MAX_INT:
        raise UntrustedInputError(f"integer {printable(text, 40)} is out of range (|n| < 2**63)")
    return value


def loads_strict_json(
    data: bytes | str,
    *,
    max_bytes: int,
    max_depth: int = MAX_DEPTH,
    max_values: int | None = None,
) -> Any:
    """One strict JSON document from untrusted bytes (or text); raises UntrustedInputError.

    ``max_values`` bounds how many values (numbers, strings, arrays, ...) it may hold: parsing
    and validating cost per value, so this bounds what reading it costs."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise TooLargeError(f"{len(raw)} bytes, larger than the {max_bytes} byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UntrustedInputError(f"not UTF-8: {error}") from error
    depth, values = json_shape(raw)
    if depth > max_depth:
        raise UntrustedInputError(f"nested {depth} deep, deeper than the limit of {max_depth}")
    if max_values is not None and values > max_values:
        raise TooLargeError(f"about {values} values, more than the limit of {max_values}")
    try:
        document = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except UntrustedInputError:
        raise
    except json.JSONDecodeError as error:
        raise UntrustedInputError(str(error)) from error
    except RecursionError as error:
        raise UntrustedInputError("nested too deeply") from error
    except ValueError as error:  # e.g. an integer longer than Python converts
        raise UntrustedInputError(str(error)) from error
    return document
