"""``scan --resume``: reading the existing output back, deciding which records stand, and
leaving the file with exactly one record per input."""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import IO, TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from ganscreen.images import InputFile
    from ganscreen.report import ExistingOutput, RecordedFile

from ganscreen._cli_common import _fail, _utf8_stdout


def _settle(target: Path, header: str, texts: list[str | None], err: Console) -> None:
    """After a resume: rewrite the output (atomically) so it holds one record per input, in
    input order, when it holds anything else (stale records, records out of order)."""
    from ganscreen._output import replace_file

    if any(t is None for t in texts):
        return  # cannot happen after a complete scan; never drop what is there
    text = header + "".join(t for t in texts if t is not None)
    try:
        if target.read_bytes() == text.encode("utf-8"):
            return
        replace_file(target, lambda fh: fh.write(text))
    except OSError as exc:
        _fail(err, f"cannot write {target}: {exc.strerror or exc}")


# --------------------------------------------------------------------------- output file


def _read_existing(output: Path, fmt: str, columns: list[str], err: Console) -> ExistingOutput | None:
    """The records already in ``output`` for --resume; ``None`` when there is no such file."""
    from ganscreen.report import ResumeError, read_output

    try:
        return read_output(output, fmt, check_columns=columns)
    except FileNotFoundError:
        return None  # nothing to resume: a fresh scan, so --resume is safe in scripts
    except OSError as exc:
        _fail(err, f"cannot read {output}: {exc.strerror or exc}")
    except ResumeError as exc:
        _fail(err, f"cannot resume {output}: {exc}")


def _open_output(output: Path | None, existing: ExistingOutput | None, err: Console) -> IO[str]:
    """Standard output, a fresh file, or (resuming) the file cut back to its complete records."""
    if output is None:
        _utf8_stdout()
        return sys.stdout
    try:
        if existing is None:
            return open(output, "w", encoding="utf-8", newline="")  # noqa: SIM115
        if existing.torn_bytes:
            os.truncate(output, existing.complete_bytes)
        return open(output, "a", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        _fail(err, f"cannot write {output}: {exc.strerror or exc}")


# --------------------------------------------------------------------------- resume


def _plan_resume(inputs: list[InputFile], existing: ExistingOutput, *, version: str, force: bool,
                 output: Path, err: Console) -> list[RecordedFile | None]:
    """For each input, the record it keeps (``None``: screen it).

    A record is kept only when its path, size, modification time and content SHA-256 equal
    the file's now, and it was made by this model version. Each record is used once (the
    same file given twice gets two records, as in a fresh scan). Records of files that are
    gone are dropped; records of files that exist but are not among the inputs (the output
    of another scan) or made by another version stop the resume, unless ``force``.
    """
    from ganscreen.images import input_stamp
    from ganscreen.report import portable_text

    names = [portable_text(str(item.path)) for item in inputs]
    left: defaultdict[str, list[RecordedFile]] = defaultdict(list)
    for record in existing.records:
        left[record.path].append(record)
    wanted = set(names)
    strangers = [p for p in left if p not in wanted and os.path.lexists(p)]
    gone = sum(len(left[p]) for p in left if p not in wanted and p not in strangers)
    other = [r for r in existing.records if r.path in wanted and r.model_version not in (None, version)]
    if strangers and not force:
        _fail(err, f"cannot resume {output}: it holds records of {len(strangers)} files that are not "
                   f"among these inputs (such as {strangers[0]}): it was made from other inputs. "
                   "Give the same paths, scan to a new file, or add --force to drop those records")
    if other and not force:
        _fail(err, f"cannot resume {output}: {len(other)} of its records were made by model version "
                   f"{other[0].model_version}, not {version}. Scan to a new file, or add --force to "
                   "screen those files again")
    kept: list[RecordedFile | None] = []
    for item, name in zip(inputs, names, strict=True):
        candidates = left.get(name)
        keep: RecordedFile | None = None
        if candidates:
            stamp = input_stamp(item) or {}
            key = (name, stamp.get("size"), stamp.get("mtime"), stamp.get("sha256"))
            match = next((c for c in candidates if c.key == key and c.model_version in (None, version)), None)
            if match is not None:
                candidates.remove(match)
                keep = match
        kept.append(keep)
    reused = sum(r is not None for r in kept)
    line = f"resuming {output}: {reused} records kept"
    dropped = len(existing.records) - reused - gone - sum(len(left[p]) for p in strangers) - len(other)
    if dropped > 0:
        line += f", {dropped} records of changed files to be replaced"
    if other:
        line += f", {len(other)} records of another model version to be replaced (--force)"
    if gone:
        line += f", {gone} records of files that are gone dropped"
    if strangers:
        line += f", records of {len(strangers)} files that are not inputs dropped (--force)"
    if existing.torn_bytes:
        line += f", a torn last line ({existing.torn_bytes} bytes) removed"
    err.print(escape(line), highlight=False)
    return kept
