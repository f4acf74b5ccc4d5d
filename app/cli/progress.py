"""Progress of a long command: a bar with the rate and the time left on a terminal, else a plain line every
so many events (for logs and CI, where a bar redrawn with \\r would be noise)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

BAR_WIDTH = 28
# A terminal is redrawn at most this often.
REDRAW_SECONDS = 0.2
DEFAULT_EVERY = 100_000


def clock_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class Progress:
    """`update(events, done, total)`: events so far, and how far through the input (bytes done of total)."""

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    every: int = DEFAULT_EVERY
    tty: bool | None = None
    started: float = field(default_factory=time.monotonic)
    _drawn_at: float = 0.0
    _next_line: int = 0
    _drawn: bool = False

    def __post_init__(self) -> None:
        if self.tty is None:
            self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._next_line = self.every

    def update(self, events: int, done: int, total: int, where: str = "") -> None:
        now = time.monotonic()
        elapsed = max(now - self.started, 1e-9)
        rate = events / elapsed
        if self.tty:
            if now - self._drawn_at < REDRAW_SECONDS:
                return
            self._drawn_at = now
            share = min(1.0, done / total) if total else 0.0
            filled = int(share * BAR_WIDTH)
            left = elapsed * (1 - share) / share if share > 0 else float("nan")
            left_text = clock_text(left) if share > 0 else "-:--:--"
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            figures = f"{share * 100:5.1f}% {events:,} events {rate:,.0f}/s {left_text} left"
            # \x1b[K clears what a longer line before left on the terminal.
            self.stream.write(f"\r[{bar}] {figures} {where}\x1b[K")
            self.stream.flush()
            self._drawn = True
            return
        while events >= self._next_line:
            self.stream.write(f"{events:,} events, {rate:,.0f}/s, {clock_text(elapsed)} elapsed {where}\n")
            self.stream.flush()
            self._next_line += self.every

    def note(self, text: str) -> None:
        """A line of its own, below the bar."""
        self.close()
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
