"""Progress of a long loop (checks, benchmarks) for the terminal and for CI logs.

On a terminal it is one bar redrawn in place. Piped into a file or a CI log, a redrawn bar
is either invisible or thousands of lines, so there it is a plain line every ``interval_s``
seconds (and one at the end): a 2-minute run shows that it is alive and how far it got.
The caller passes the function that prints (the CLI passes click.echo); the run session
itself never prints.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

from conformance.untrusted import printable

INTERVAL_S = 5.0
BAR_WIDTH = 24


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """``advance(detail)`` once per finished item, ``close()`` at the end (or use ``with``).

    ``tty`` None: a bar when ``stream`` is a terminal. The bar is drawn on ``stream`` (the
    terminal click.echo writes to); the lines of the non-terminal form go through ``echo``.
    """

    def __init__(
        self,
        total: int,
        label: str,
        echo: Callable[[str], None],
        *,
        tty: bool | None = None,
        stream: TextIO | None = None,
        interval_s: float = INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.label, self.done = max(0, total), label, 0
        self._echo, self._clock, self._interval_s = echo, clock, interval_s
        self._stream = stream if stream is not None else sys.stdout
        self._tty = self._stream.isatty() if tty is None else tty
        self._started = self._last_line = clock()
        self._detail = ""
        self._closed = False
        self._drawn = 0  # characters of the bar on the terminal line

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def advance(self, detail: str = "", count: int = 1) -> None:
        self.done = min(self.total, self.done + count) if self.total else self.done + count
        self._detail = printable(detail, 120)
        if self._tty:
            self._draw()
            return
        now = self._clock()
        if now - self._last_line >= self._interval_s:
            self._last_line = now
            self._echo(self._line())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._tty:
            self._draw(final=True)
            self._stream.write("\n")
            self._stream.flush()
        else:
            self._echo(self._line(final=True))

    def _line(self, final: bool = False) -> str:
        elapsed = self._clock() - self._started
        head = f"{self.label}: {self.done}/{self.total}"
        if final:
            return f"{head} done in {_duration(elapsed)}"
        eta = ""
        if 0 < self.done < self.total:
            eta = f", about {_duration(elapsed / self.done * (self.total - self.done))} left"
        return f"{head} ({_duration(elapsed)}{eta})" + (f" {self._detail}" if self._detail else "")

    def _draw(self, final: bool = False) -> None:
        filled = BAR_WIDTH * self.done // self.total if self.total else BAR_WIDTH
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        elapsed = _duration(self._clock() - self._started)
        text = f"{self.label} [{bar}] {self.done}/{self.total} {elapsed}"
        if self._detail and not final:
            text += f"  {self._detail}"
        width = shutil.get_terminal_size((100, 24)).columns - 1
        text = text[:width]
        self._stream.write("\r" + text.ljust(self._drawn))
        self._stream.flush()
        self._drawn = len(text)
