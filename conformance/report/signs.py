"""How a verdict looks: an icon and a word beside every colour, so colour is never the only
signal."""

from __future__ import annotations

from dataclasses import dataclass

from conformance.results.records import NOT_PASSED, PASSED

# A pass whose margin exceeds this is shown as a near miss: visible before it becomes a failure.
NEAR_MISS_MARGIN = 0.5


@dataclass(frozen=True)
class Sign:
    css: str  # class name: the colour
    icon: str  # a distinct shape per kind
    word: str  # the verdict's word in the legend and drill-down
    meaning: str  # the legend's sentence
    tag: str = ""  # a narrower word for matrix cells with no margin to show (defaults to word)

    @property
    def cell_word(self) -> str:
        return self.tag or self.word


PASS = Sign("pass", "\u2713", "pass", "passed: margin (worst error / tolerance) at most 0.5")
NEAR = Sign("near", "\u25d0", "near", "passed, but a near miss: margin above 0.5")
FAIL = Sign(
    "fail",
    "\u2717",
    "fail",
    "failed on the runtime's account: values outside tolerance, or a failed property",
)
ERROR = Sign(
    "fail", "!", "error", "the runtime raised an error loading or running the artifact", "err"
)
CRASH = Sign("fail", "\u2620", "crash", "the runtime's process crashed")
TIMEOUT = Sign("fail", "\u25f7", "timeout", "the runtime did not answer in time", "t/o")
EXPORTER = Sign(
    "exporter",
    "\u25c7",
    "exporter",
    "exporter finding recorded in the pack: never counted against the runtime",
    "exp",
)
SKIP = Sign("skip", "\u2013", "skip", "skipped (see the reason in the drill-down)")
LEGEND = (PASS, NEAR, FAIL, ERROR, CRASH, TIMEOUT, EXPORTER, SKIP)

_RUNTIME_FAILURES = {"failed": FAIL, "error": ERROR, "crashed": CRASH, "timed-out": TIMEOUT}


def sign_of(verdict: str, attributed_to: str | None, margin: float | None) -> Sign:
    if verdict == PASSED:
        return NEAR if margin is not None and margin > NEAR_MISS_MARGIN else PASS
    if verdict in NOT_PASSED:
        return EXPORTER if attributed_to == "exporter" else _RUNTIME_FAILURES[verdict]
    return SKIP


def short_margin(margin: float | None) -> str:
    """Fits a narrow matrix cell: 2 decimals where they matter (near 1) without the leading zero,
    magnitudes elsewhere."""
    if margin is None:
        return ""
    if margin < 0.01:
        return "<.01"
    if margin < 10:
        text = f"{margin:.2f}"
        return text[1:] if text.startswith("0.") else text
    if margin < 1000:
        return f"{margin:.0f}"
    return f"{margin:.0e}".replace("e+0", "e").replace("e+", "e")


def number(value: float | None, digits: int = 3) -> str:
    """Three significant digits; an em dash where there is no value (not comparable, not
    measured)."""
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if 1e3 <= abs(value) < 1e9:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"
