"""The informative part of a runtime's message, and the cause that identical findings share.

A runtime's error can run to thousands of characters: a compiler's command line, MLIR types,
temp paths. Cutting it at a fixed length keeps the noise and loses the point (IREE's
``failed to legalize operation 'torch.operator' that was explicitly marked ille…`` lost the
operator's name). The report shows a summary built from the parts that carry information: the
first line, the first diagnostic (``error: ...``) without its location, and the operator it
names; the drill-down keeps the whole message.
"""

from __future__ import annotations

import re

SUMMARY_CHARS = 320  # what a table cell shows
FULL_CHARS = 20_000  # what the drill-down shows of one message (the results file keeps it all)

_DIAGNOSTIC = re.compile(r"(?:^|\s)(?:error|Error|ERROR): (?P<text>.+)")
_LOCATION = re.compile(r"^\S+:\d+:\d+:\s*")  # "/tmp/x/model.mlir:31:13: "
_MLIR_TYPE = re.compile(r"!torch\.\w+<[^<>]*>")  # "!torch.vtensor<[?,32],f32>"
_OPERATOR = re.compile(r'torch\.operator\s*"(?P<a>[\w.]+)"|name = "(?P<b>onnx\.[\w.]+)"')
_TEMP_PATH = re.compile(r"/tmp/[\w./-]+|/var/folders/[\w./-]+")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w])")


def one_line(text: str) -> str:
    return " ".join(text.split())


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def operators(message: str) -> list[str]:
    """Operator names a compiler's diagnostic quotes (``torch.operator "onnx.Loop"``), in order."""
    found: list[str] = []
    for match in _OPERATOR.finditer(message):
        name = match.group("a") or match.group("b")
        if name not in found:
            found.append(name)
    return found


def diagnostic(message: str) -> str | None:
    """The first ``error: ...`` line after the first line, without its file location and with
    MLIR type signatures elided."""
    for line in message.splitlines()[1:]:
        match = _DIAGNOSTIC.search(_LOCATION.sub("", line.strip()))
        if match:
            text = _MLIR_TYPE.sub("\u2026", match.group("text"))
            return "error: " + text.split(": %", 1)[0].split(' loc("', 1)[0].strip()
    return None


def informative(message: str, limit: int = SUMMARY_CHARS) -> str:
    """A one-line summary of ``message`` of at most ``limit`` characters that keeps what
    identifies the problem; a short message is returned whole (on one line)."""
    flat = one_line(message)
    if len(flat) <= limit:
        return flat
    lines = message.splitlines() or [message]
    head = one_line(lines[0])
    found = diagnostic(message)
    names = operators(message)
    if not found and not names:
        return _cut(flat, limit)
    parts = [_cut(head, limit // 3)]
    if found:
        parts.append(found)
    if names:
        parts.append("operator " + ", ".join(names[:3]))
    return _cut(" \u2014 ".join(parts), limit)


def cause(message: str) -> str:
    """What identical findings share: the summary with temp paths and numbers blanked, so the
    same failure on another data set (another margin, another batch size) groups with it."""
    return _NUMBER.sub("#", _TEMP_PATH.sub("<tmp>", informative(message)))
