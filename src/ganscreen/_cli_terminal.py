"""What a person at a terminal sees (the table of files and flagged names) and how signals
stop a scan between records, never in the middle of one."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from ganscreen.report import RecordWriter, Report


# --------------------------------------------------------------------------- table




def _print_table(outcomes: list[tuple[str, Report | None, str]]) -> None:
    """For a person at a terminal: one row per file, then the flagged files by name."""
    from rich.table import Table

    out = Console(soft_wrap=False, highlight=False)
    grid = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column, justify in (("file", "left"), ("verdict", "left"), ("score", "right"), ("flags", "left")):
        grid.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    flagged = []
    for path, report, outcome in outcomes:
        if report is None:
            grid.add_row(escape(path), escape(outcome), "", "recorded before")
            continue
        score = "" if report.score is None else f"{report.score:.2f}"
        words = ", ".join(_flag_words(f) for f in report.flags)
        note = words if report.status != "error" else (report.error or "")
        style = {"gan": "bold red", "uncertain": "yellow", "error": "dim"}.get(outcome, "")
        grid.add_row(escape(path), f"[{style}]{escape(outcome)}[/]" if style else escape(outcome),
                     score, escape(note))
        if outcome in ("gan", "uncertain"):
            flagged.append(f"{path} ({outcome})")
    out.print(grid)
    if flagged:
        out.print(escape(f"flagged ({len(flagged)}): " + ", ".join(flagged)), soft_wrap=True)
    else:
        out.print("flagged: none")


# --------------------------------------------------------------------------- signals


class ScanInterrupted(KeyboardInterrupt):
    """Raised in the main thread by SIGINT or SIGTERM.

    A KeyboardInterrupt, not an Exception, so the pipeline's per-file ``except Exception``
    guards (one bad file must not end a scan) cannot swallow it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _StopOnSignals:
    """Turns SIGINT and SIGTERM into :class:`ScanInterrupted`, never in the middle of a record.

    Python's default SIGTERM ends the process at once; raising instead lets the scan close
    its output the same way for both signals. While a record is being written the signal
    is held and raised right after, so the file only ever holds complete records.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.writer: RecordWriter | None = None
        self._held: int | None = None
        self._writing = False
        self._previous: dict[int, object] = {}

    @property
    def written(self) -> int:
        return self.writer.count if self.writer is not None else 0

    def __enter__(self) -> _StopOnSignals:
        # signal.signal only works in the main thread; elsewhere keep the defaults.
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, _frame: object) -> None:
        if self._writing:
            self._held = signum
            return
        raise ScanInterrupted(signum)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self._writing = True
        try:
            yield
        finally:
            self._writing = False
        if self._held is not None:
            raise ScanInterrupted(self._held)


def _interrupted_message(signum: int, written: int, output: Path | None) -> str:
    name = signal.Signals(signum).name
    if output is None:
        return f"interrupted by {name}: {written} complete records written"
    return (f"interrupted by {name}: {written} complete records written to {output}; "
            "run the same command with --resume to finish")


def _flag_words(flag: str) -> str:
    from ganscreen.checks import flags

    known = flags().get(flag)
    return known.words if known is not None else flag
