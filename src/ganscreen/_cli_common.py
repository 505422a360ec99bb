"""What every ``ganscreen`` command shares: exit codes, the one error path (one line on
standard error, exit 2; ``--debug`` adds the traceback), size parsing and standard output."""

from __future__ import annotations

import codecs
import functools
import logging
import sys
import traceback
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ganscreen._records import one_line

log = logging.getLogger("ganscreen")

if TYPE_CHECKING:
    from ganscreen._records import RecordsRead


EXIT_CLEAN, EXIT_FLAGGED, EXIT_USAGE = 0, 1, 2
F = TypeVar("F")


class _State:
    debug = False  # ganscreen --debug: tracebacks after the one-line message


def _one_error_path(command: F) -> F:
    """Every failure a command does not handle itself (an unreadable or unwritable file, a
    model file that fails its checksum, anything unforeseen) ends as one line on standard
    error and exit 2; the traceback only with ``ganscreen --debug``."""

    @functools.wraps(command)  # type: ignore[arg-type]
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)  # type: ignore[operator]
        except (typer.Exit, typer.Abort, typer.BadParameter, KeyboardInterrupt, SystemExit):
            raise  # click reports usage errors itself (exit 2)
        except Exception as exc:  # the one error path: one line on stderr, exit 2
            log.debug("command failed", exc_info=True)
            if _State.debug:
                traceback.print_exc()
            err = Console(stderr=True, soft_wrap=True)
            _fail(err, _describe(exc))

    return guarded  # type: ignore[return-value]


def _describe(exc: BaseException) -> str:
    from ganscreen._output import OutputError

    if isinstance(exc, OutputError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    text = one_line(exc, limit=None)  # the only line printed: nothing to cut it short for
    return text if type(exc).__name__ in ("AssetError", "ValueError") else f"{type(exc).__name__}: {text}"


def _parse_bytes(text: str | None) -> int | None:
    """``--max-memory``: a number of bytes with an optional K, M, G or T suffix (powers of 1024)."""
    if text is None:
        return None
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = 1
    if value and value[-1] in "KMGT":
        scale = 1024 ** ("KMGT".index(value[-1]) + 1)
        value = value[:-1]
    try:
        number = float(value)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a size such as 4G or 512M", param_hint="--max-memory") from None
    if number <= 0:
        raise typer.BadParameter("must be above zero", param_hint="--max-memory")
    return int(number * scale)


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _stdout() -> IO[str]:
    _utf8_stdout()
    return sys.stdout


def _make_folder(folder: Path, err: Console) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(err, f"cannot create {folder}: {exc.strerror or exc}")


def _suffixes() -> list[str]:
    from ganscreen.images import IMAGE_SUFFIXES

    return sorted(IMAGE_SUFFIXES)


def _fail(err: Console, message: str, code: int = EXIT_USAGE) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def _utf8_stdout() -> None:
    # JSON Lines are UTF-8 by definition; a Latin-1 or ASCII locale must not make a file
    # named "写真.jpg" crash the scan. (Test runners may swap in streams without reconfigure.)
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None and not _is_utf8(getattr(sys.stdout, "encoding", None)):
        reconfigure(encoding="utf-8")


def _is_utf8(encoding: str | None) -> bool:
    try:
        return encoding is not None and codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def _progress_bar(label: str, err: Console, *, enabled: bool, transient: bool = False) -> Progress:
    """The one progress bar of every command: label, bar, done/total, time left, on stderr."""
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err, disable=not enabled, transient=transient)


def _load_records(path: Path, err: Console, *, purpose: str) -> RecordsRead:
    """A scan's records by the one reading rule: a file that cannot be read or is not a
    scan ends the command (one line, exit 2), a torn last line is left out with a note."""
    from ganscreen._records import RecordsError, read_records

    try:
        loaded = read_records(path)
    except OSError as exc:
        _fail(err, f"cannot read {path}: {exc.strerror or exc}")
    except RecordsError as exc:
        _fail(err, f"cannot {purpose} {path}: {exc.detail}")
    if loaded.note:
        err.print(escape(f"note: {loaded.note}"), highlight=False)
    return loaded
