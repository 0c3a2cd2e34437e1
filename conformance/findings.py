"""The part of a runtime's message that says what failed, for one line of a table.

A runtime's message is often long and its useful part is not at the start: IREE's compiler
error opens with the tool invocation boilerplate and names the failing operator in the middle
of an MLIR dump; tract's cause chain ends in the reason; ORT names the node first and the shapes
last. Cutting such a message at a fixed width loses exactly what a user needs. The whole message
stays in the results; these functions choose what a terminal line, an HTML cell or a Markdown
row shows of it, and which findings are the same one seen on several data sets.
"""

from __future__ import annotations

import re

WIDTH = 240
ELLIPSIS = " … "
# Lines after which IREE's compiler message is only the command line and advice.
_BOILERPLATE = ("Invoked with:", "Need more information?")
# An MLIR / compiler diagnostic: "<file>:<line>:<col>: error: <text>".
_DIAGNOSTIC = re.compile(
    r"^(?P<path>\S+?):(?P<line>\d+):(?P<col>\d+): (?P<kind>error|warning): (?P<text>.*)$"
)
# The ONNX operator an IREE diagnostic is about: `torch.operator "onnx.Loop"(...)` in the
# source line it quotes, or `<{name = "onnx.Loop"}>` in the op it prints.
_OPERATOR = re.compile(r'(?:torch\.operator\s*"|name = ")(?P<op>[A-Za-z_][\w.]*)"')
# Where the diagnostic's own text turns into a dump of the operation (": %114:7 = ...").
_OP_DUMP = re.compile(r":\s+%[\w#:]+\s*=|\s+%[\w#:]+\s*=\s*\"")
_ERROR_CLASS = re.compile(r"^(.*?\b\w*(?:Error|Exception))\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?", re.IGNORECASE)
_TEMP_PATH = re.compile(r"(?:/tmp|/var/folders)/\S+")


def one_line(problem: str, width: int = WIDTH) -> str:
    """A message on one line, whitespace collapsed, cut at ``width`` with an ellipsis."""
    text = " ".join(problem.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def fit(text: str, width: int = WIDTH) -> str:
    """Head and tail of a one-line text: a message's start says where, its end often why."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    room = max(width - len(ELLIPSIS), 2)
    head = text[: room * 3 // 5]
    tail = text[len(text) - (room - len(head)) :]
    # Cut between words where a word boundary is near.
    if " " in head[-20:]:
        head = head[: head.rindex(" ")]
    if " " in tail[:20]:
        tail = tail[tail.index(" ") + 1 :]
    return head.rstrip() + ELLIPSIS + tail.lstrip()


def _meaningful_lines(message: str) -> list[str]:
    kept = []
    for line in message.splitlines():
        stripped = line.strip()
        if stripped.startswith(_BOILERPLATE):
            break
        if stripped and not set(stripped) <= {"^", "~"}:  # caret lines point into a dump
            kept.append(stripped)
    return kept


def _diagnostic_summary(lines: list[str]) -> str | None:
    """'<headline>: error: <text> [<onnx op>] (<file>:<line>:<col>)' for a compiler message."""
    found = [(i, m) for i, line in enumerate(lines) if (m := _DIAGNOSTIC.match(line))]
    if not found:
        return None
    index, match = found[0]
    text = _OP_DUMP.split(match["text"], maxsplit=1)[0].rstrip(" :")
    operator = _OPERATOR.search(" ".join(lines[index : index + 3]))
    if index > 0 and text in lines[0]:
        # The adapter's own first line already says it (and where the input is kept).
        if operator and operator["op"] not in lines[0]:
            return f"{lines[0]} [{operator['op']}]"
        return lines[0]
    location = f"{match['path'].rsplit('/', 1)[-1]}:{match['line']}:{match['col']}"
    headline = ""
    if index > 0:  # "load failed: CompilerToolError: Error invoking IREE compiler tool ..."
        named = _ERROR_CLASS.match(lines[0])
        headline = f"{named[1] if named else lines[0]}: "
    summary = f"{headline}{match['kind']}: {text}"
    if operator:
        summary += f" [{operator['op']}]"
    summary += f" ({location})"
    if len(found) > 1:
        summary += f" (+{len(found) - 1} more diagnostics)"
    return summary


def informative_part(message: str, width: int = WIDTH) -> str:
    """What a one-line view of ``message`` should show, at most ``width`` characters.

    A compiler diagnostic (IREE) becomes its error line with the ONNX operator it names and
    the location; anything else is its meaningful lines joined, shown as head … tail when too
    long (the tail of tract's or ORT's message holds the cause). The result is plain text: the
    caller still escapes it for its medium (``untrusted.printable``, HTML escaping).
    """
    lines = _meaningful_lines(message)
    if not lines:
        return ""
    summary = _diagnostic_summary(lines)
    return fit(summary if summary is not None else " ".join(lines), width)


def group_key(message: str) -> str:
    """Findings whose messages differ only in numbers (shapes, indices, error figures) or temp
    paths are the same finding seen on several data sets."""
    text = _TEMP_PATH.sub("<tmp>", informative_part(message, 10_000))
    return _NUMBER.sub("#", text)
