"""The per-image report and its serialisations (JSON Lines and CSV).

One :class:`Report` per input file, whatever happened to it; ``to_record()`` gives the JSON
record documented in DESIGN.md, and the writers stream records to a file object, flushing
each so an interrupted scan keeps every finished result. :func:`read_output` reads such a
file back for ``scan --resume``: the records it holds and where its complete part ends.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ganscreen._records import STATUSES as STATUSES  # re-exported: the rules live in _records
from ganscreen._records import VERDICTS as VERDICTS
from ganscreen._records import RecordsError, outcome, parse_records
from ganscreen._records import Status as Status
from ganscreen._records import VerdictLabel as VerdictLabel
from ganscreen.checks import CheckResult
from ganscreen.faces import Face

__all__ = [
    "CSV_FIXED",
    "STATUSES",
    "VERDICTS",
    "ExistingOutput",
    "ImageInfo",
    "RecordWriter",
    "RecordedFile",
    "Report",
    "ResumeError",
    "Status",
    "VerdictLabel",
    "csv_fieldnames",
    "csv_row",
    "neutralise_cell",
    "portable_text",
    "read_output",
    "restore_cell",
]



@dataclass(frozen=True, slots=True)
class ImageInfo:
    width: int
    height: int
    format: str | None

    def to_record(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "format": self.format}


@dataclass(frozen=True, slots=True)
class Report:
    """The result of screening one input, built complete (``dataclasses.replace`` makes a
    changed copy)."""

    path: str | None
    status: Status
    error: str | None = None
    score: float | None = None
    verdict: VerdictLabel | None = None
    reason: str | None = None  # one line: why this verdict (the error for an error record)
    flags: tuple[str, ...] = ()
    image: ImageInfo | None = None
    faces: tuple[Face, ...] = ()
    checks: Mapping[str, CheckResult] = field(default_factory=dict)
    model: Mapping[str, str] = field(default_factory=dict)
    file: Mapping[str, int | float | str] | None = None  # size, mtime and sha256, for --resume
    robustness: Mapping[str, Any] | None = None  # variants' scores when asked for

    @property
    def is_error(self) -> bool:
        return self.status == "error"

    def to_record(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "error": self.error,
            "score": None if self.score is None else round(float(self.score), 5),
            "verdict": self.verdict,
            "reason": self.reason if self.reason is not None or self.status != "error" else self.error,
            "flags": list(self.flags),
            "image": None if self.image is None else self.image.to_record(),
            "faces": [f.to_record() for f in self.faces],
            "checks": {name: r.to_record() for name, r in self.checks.items()},
            "robustness": None if self.robustness is None else dict(self.robustness),
            "model": dict(self.model),
            "file": None if self.file is None else dict(self.file),
        }

    def to_json(self) -> str:
        record = self.to_record()
        text = json.dumps(record, ensure_ascii=False, allow_nan=False)
        if not _utf8_encodable(text):
            # A file name that is not UTF-8 reaches us holding lone surrogates, which no UTF-8
            # stream can write. JSON's \uXXXX escapes keep the line valid and the path exact.
            text = json.dumps(record, ensure_ascii=True, allow_nan=False)
        return text


def portable_text(text: str) -> str:
    """``text`` as it can be written to UTF-8: lone surrogates spelled as ``\\udcXX``.

    POSIX file names are bytes; Python hands a name that is not UTF-8 over as a str with
    lone surrogates. CSV has no escape syntax, so those become visible backslash escapes.
    Idempotent, so a path read back from a CSV maps to the same text as the original.
    """
    if _utf8_encodable(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _utf8_encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --------------------------------------------------------------------------- writers

# file_size, file_mtime and file_sha256 let `scan --resume` recognise files already screened.
CSV_FIXED = ["path", "status", "error", "score", "verdict", "reason", "flags", "unstable", "width", "height",
             "format", "n_faces", "face_confidence", "model_version", "file_size", "file_mtime",
             "file_sha256"]
# A spreadsheet runs a cell that starts with = + - @ (or tab, CR) as a formula: such text
# cells get a leading ' (the OWASP rule). Text that already starts with ' before one of
# them gets one more, so reading back (strip one ') gives the exact text.
_FORMULA = re.compile(r"'*[=+\-@\t\r]")


def neutralise_cell(text: str) -> str:
    """``text`` made safe to open in a spreadsheet (see :func:`restore_cell`)."""
    return "'" + text if _FORMULA.match(text) else text


def restore_cell(text: str) -> str:
    """The text :func:`neutralise_cell` was given."""
    return text[1:] if text.startswith("'") and _FORMULA.match(text, 1) else text


def csv_fieldnames(check_columns: list[str]) -> list[str]:
    return CSV_FIXED + check_columns


def csv_row(record: Mapping[str, Any], check_columns: list[str]) -> dict[str, Any]:
    image = record.get("image") or {}
    faces = record.get("faces") or []
    file = record.get("file") or {}
    row: dict[str, Any] = {
        "path": "" if record["path"] is None else portable_text(record["path"]),
        "status": record["status"],
        "error": portable_text(record["error"] or ""),
        "score": "" if record["score"] is None else record["score"],
        "verdict": record["verdict"] or "",
        "reason": portable_text(record.get("reason") or ""),
        "flags": ";".join(record["flags"]),
        "unstable": "" if not record.get("robustness") else str(record["robustness"]["unstable"]).lower(),
        "width": image.get("width", ""),
        "height": image.get("height", ""),
        "format": image.get("format") or "",
        "n_faces": len(faces),
        "face_confidence": faces[0]["confidence"] if faces else "",
        "model_version": (record.get("model") or {}).get("version", ""),
        "file_size": file.get("size", ""),
        "file_mtime": file.get("mtime", ""),
        "file_sha256": file.get("sha256", ""),
    }
    checks = record.get("checks") or {}
    for column in check_columns:
        name, _, key = column.partition(".")
        value = (checks.get(name) or {}).get(key)
        row[column] = "" if value is None or (isinstance(value, float) and math.isnan(value)) else value
    return {k: neutralise_cell(v) if isinstance(v, str) else v for k, v in row.items()}


class RecordWriter:
    """Streams records as JSON Lines or CSV, flushing after each one.

    ``count`` is the number of records written (and flushed) so far.
    """

    def __init__(self, stream: IO[str], fmt: str, *, check_columns: list[str] | None = None,
                 write_header: bool = True) -> None:
        if fmt not in ("jsonl", "csv"):
            raise ValueError(f"unknown format {fmt!r}")
        self.stream = stream
        self.fmt = fmt
        self.count = 0
        self._csv: csv.DictWriter[str] | None = None
        if fmt == "csv":
            self._csv = csv.DictWriter(stream, fieldnames=csv_fieldnames(check_columns or []),
                                       extrasaction="ignore")
            if write_header:
                self._csv.writeheader()
                self.stream.flush()
        self._check_columns = check_columns or []

    def format(self, report: Report) -> str:
        """The text of one record (one JSON line, or one CSV row with its line ending)."""
        if self._csv is None:
            return report.to_json() + "\n"
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=csv_fieldnames(self._check_columns),
                       extrasaction="ignore").writerow(csv_row(report.to_record(), self._check_columns))
        return buf.getvalue()

    def header(self) -> str:
        """The CSV header row ('' for JSON Lines)."""
        if self._csv is None:
            return ""
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=csv_fieldnames(self._check_columns)).writeheader()
        return buf.getvalue()

    def write(self, report: Report) -> str:
        """Write and flush one record; returns its text."""
        text = self.format(report)
        # One write call per record, so a killed process leaves at most one torn last line
        # (which read_output recognises and `scan --resume` cuts off).
        self.stream.write(text)
        self.stream.flush()
        self.count += 1
        return text


# --------------------------------------------------------------------------- reading back


class ResumeError(ValueError):
    """An existing output file cannot be resumed; the message is one line."""


@dataclass(frozen=True, slots=True)
class RecordedFile:
    """What ``scan --resume`` needs from one record already in the output."""

    path: str  # as portable_text() spells it, so JSON and CSV paths compare alike
    size: int | None
    mtime: float | None
    outcome: str  # the verdict of an ok record, else the status (no_face, error, ...)
    model_version: str | None
    sha256: str | None = None
    text: str = ""  # the record exactly as it stands in the file (with its line ending)

    @property
    def key(self) -> tuple[str, int | None, float | None, str | None]:
        return (self.path, self.size, self.mtime, self.sha256)


@dataclass(frozen=True, slots=True)
class ExistingOutput:
    """An output file read back: its complete records and how much of it they fill."""

    records: list[RecordedFile]
    complete_bytes: int  # the header and complete records; anything after is a torn write
    total_bytes: int

    @property
    def torn_bytes(self) -> int:
        return self.total_bytes - self.complete_bytes


def read_output(path: Path, fmt: str, *, check_columns: list[str]) -> ExistingOutput:
    """Read the records of an output file written by :class:`RecordWriter`.

    JSON Lines follow the one reading rule of :mod:`ganscreen._records`; since the scan then
    appends, ``complete_bytes`` also ends before a last record that lacks its newline (that
    file is screened again rather than glued to the next record). A CSV row or header cut
    short at the end of the file is a torn write likewise. Anything else that is not a
    record raises :class:`ResumeError`, since appending to a file we do not understand could
    corrupt it. Raises ``OSError`` when the file cannot be read.
    """
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown format {fmt!r}")
    data = path.read_bytes()
    if fmt == "jsonl":
        records, complete = _read_jsonl(data, str(path))
    else:
        records, complete = _read_csv(io.BytesIO(data), csv_fieldnames(check_columns), len(data), data)
    return ExistingOutput(records=records, complete_bytes=complete, total_bytes=len(data))


def _read_jsonl(data: bytes, source: str) -> tuple[list[RecordedFile], int]:
    try:
        read = parse_records(data, source)
    except RecordsError as exc:
        hint = "; is this a JSON Lines scan output?" if exc.problem == "is not JSON" else ""
        raise ResumeError(f"line {exc.line} {exc.problem}{hint}") from None
    complete = read.terminated_bytes
    records = [_recorded(record, data[start:end].decode("utf-8"))
               for record, (start, end) in zip(read.records, read.spans, strict=True) if end <= complete]
    return records, complete


def _recorded(record: Mapping[str, Any], text: str) -> RecordedFile:
    file: Mapping[str, Any] = record["file"] if isinstance(record.get("file"), dict) else {}
    model: Mapping[str, Any] = record["model"] if isinstance(record.get("model"), dict) else {}
    return RecordedFile(
        path=portable_text(record["path"]),
        size=file.get("size"),
        mtime=file.get("mtime"),
        outcome=outcome(record["status"], record.get("verdict")),
        model_version=model.get("version"),
        sha256=file.get("sha256") if isinstance(file.get("sha256"), str) else None,
        text=text,
    )


class _LineCursor:
    """Feeds csv.reader one physical line at a time while tracking the byte offset.

    csv.reader pulls exactly the lines a row needs (no read-ahead), so after each row
    ``offset`` is where that row ends in the file.
    """

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self.offset = 0
        self.ended_with_newline = True

    def __iter__(self) -> Iterator[str]:
        for raw in self._fh:
            self.offset += len(raw)
            self.ended_with_newline = raw.endswith(b"\n")
            yield raw.decode("utf-8")


def _read_csv(fh: IO[bytes], fieldnames: list[str], total: int,
              data: bytes) -> tuple[list[RecordedFile], int]:
    cursor = _LineCursor(fh)
    # strict: a quoted field cut off at the end of the file raises instead of passing as a row.
    rows = csv.reader(cursor, strict=True)
    records: list[RecordedFile] = []
    complete = 0
    number = 0
    while True:
        number += 1
        try:
            row = next(rows)
        except StopIteration:
            break
        except (csv.Error, UnicodeDecodeError):
            if cursor.offset >= total:
                break  # a row cut short in a quoted field or a multi-byte character
            raise ResumeError(f"row {number} is not valid CSV") from None
        torn = not cursor.ended_with_newline or len(row) != len(fieldnames)
        if torn and cursor.offset >= total:
            break  # the torn last row (or header)
        if number == 1:
            if row != fieldnames:
                raise ResumeError(_header_mismatch(row, fieldnames))
        elif torn:
            raise ResumeError(f"row {number} does not have the {len(fieldnames)} columns of a ganscreen CSV")
        else:
            record = _from_csv_row(dict(zip(fieldnames, row, strict=True)), number)
            records.append(RecordedFile(record.path, record.size, record.mtime, record.outcome,
                                        record.model_version, record.sha256,
                                        data[complete:cursor.offset].decode("utf-8")))
        complete = cursor.offset
    return records, complete


def _header_mismatch(header: list[str], fieldnames: list[str]) -> str:
    """Why a CSV cannot be resumed by this version: the columns it has that this version's
    checks do not write, and those it lacks (checks added or removed between versions)."""
    extra = [c for c in header if c not in fieldnames]
    missing = [c for c in fieldnames if c not in header]
    if set(CSV_FIXED) - set(header):
        return "its first row is not the CSV header of a ganscreen scan; scan to a new file instead"
    if not extra and not missing:
        return ("its columns are those of this ganscreen version in another order; "
                "scan to a new file instead")
    parts = []
    if extra:
        parts.append("columns this version does not write: " + ", ".join(extra))
    if missing:
        parts.append("columns it lacks: " + ", ".join(missing))
    return ("it was written with other checks than this version's (" + "; ".join(parts) + "), so "
            "appending would mix two layouts; scan to a new file instead")


def _from_csv_row(row: dict[str, str], number: int) -> RecordedFile:
    if row["status"] not in STATUSES:
        raise ResumeError(f"row {number} is not a ganscreen record")
    try:
        size = int(row["file_size"]) if row["file_size"] else None
        mtime = float(row["file_mtime"]) if row["file_mtime"] else None
    except ValueError:
        raise ResumeError(f"row {number} has an unreadable file_size or file_mtime") from None
    return RecordedFile(path=portable_text(restore_cell(row["path"])), size=size, mtime=mtime,
                        outcome=outcome(row["status"], row["verdict"] or None),
                        model_version=restore_cell(row["model_version"]) or None,
                        sha256=row["file_sha256"] or None)
