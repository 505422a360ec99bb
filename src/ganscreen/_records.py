"""Scan records: reading JSON Lines back, and the small rules every reader and writer shares.

One rule for a records file that is read back (``ganscreen report``, ``campaign --from-scan``,
``scan --resume``, the scripts), from what a scan leaves behind:

- The writers put each record, newline included, in one ``write`` call, so a scan that is
  killed, runs out of disk or is interrupted leaves at most one incomplete record: the
  last line, without its newline. A JSON object cut anywhere before its closing brace is
  never valid JSON, so **a final line without a newline that starts a JSON object and does
  not parse is a torn write**: it is dropped and reported (:attr:`RecordsRead.torn`), never
  an error.
- A final line without a newline that *does* parse is a whole record (a hand-edited file,
  or a write cut between the brace and the newline) and is kept.
- Blank lines (only whitespace) are skipped wherever they are.
- **Anything else that is not a ganscreen record is an error** naming the file and the
  line (:class:`RecordsError`): a damaged line in the middle is not a torn write, and
  guessing past it could hide lost records.
- Lines end at ``\\n`` only (``\\r\\n`` too): a U+2028 in a file name written with
  ``ensure_ascii=False`` is text, not a line break. The text is UTF-8; a byte-order mark
  is accepted at the start of the file only (editors add one), nowhere else.

:func:`outcome`, :func:`largest_face` and :func:`one_line` are the single spellings of
rules that the report, the HTML page, the evidence and the campaign all apply to records;
:func:`write_bytes_atomic` and :func:`write_text_atomic` replace a whole file through
:func:`ganscreen._output.replace_file`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Literal, TextIO, cast

__all__ = [
    "ONE_LINE_LIMIT",
    "OUTCOMES",
    "STATUSES",
    "VERDICTS",
    "RecordsError",
    "RecordsRead",
    "Status",
    "TornLine",
    "VerdictLabel",
    "as_list",
    "as_mapping",
    "is_record",
    "largest_face",
    "one_line",
    "outcome",
    "parse_records",
    "read_records",
    "write_bytes_atomic",
    "write_text_atomic",
]

Status = Literal["ok", "no_face", "error"]
VerdictLabel = Literal["gan", "real", "uncertain"]
STATUSES: Final[tuple[Status, ...]] = ("ok", "no_face", "error")
VERDICTS: Final[tuple[VerdictLabel, ...]] = ("gan", "uncertain", "real")  # from most to least suspicious
OUTCOMES: Final = ("gan", "uncertain", "real", "no_face", "error")
# Error text stored in a record or shown on a card: enough for any real message, short
# enough that one pathological exception (a whole array in its repr) cannot bloat a file.
ONE_LINE_LIMIT: Final = 300
_BOM: Final = b"\xef\xbb\xbf"


class RecordsError(ValueError):
    """A records file that is not ganscreen JSON Lines; the message is one line.

    ``str()`` is ``"<file>: line <n> <problem>"``; :attr:`detail` is the part after the
    file name, for callers whose message already names the file.
    """

    def __init__(self, source: str, line: int, problem: str, hint: str = "") -> None:
        self.source = source
        self.line = line
        self.problem = problem  # "is not JSON" or "is not a ganscreen record"
        self.detail = f"line {line} {problem}{hint}"
        super().__init__(f"{source}: {self.detail}")


@dataclass(frozen=True, slots=True)
class TornLine:
    """The torn write left at the end of a records file."""

    line: int  # its line number
    size: int  # its length in bytes


@dataclass(frozen=True, slots=True)
class RecordsRead:
    """The records of a JSON Lines file and what was left out of them."""

    source: str
    records: list[dict[str, Any]]
    lines: list[int]  # the line number of each record
    spans: list[tuple[int, int]]  # where each record's line starts and ends in the file (bytes)
    torn: TornLine | None = None
    # Bytes up to the end of the last line that ends in a newline: where a writer can
    # append without gluing its first record onto an unterminated last line.
    terminated_bytes: int = 0

    @property
    def torn_bytes(self) -> int:
        return 0 if self.torn is None else self.torn.size

    @property
    def note(self) -> str | None:
        """One line for standard error when something was left out, else ``None``."""
        if self.torn is None:
            return None
        return (f"{self.source} ends in a torn line (line {self.torn.line}, {self.torn.size} bytes: "
                "an interrupted write), left out")


def is_record(value: object) -> bool:
    """Whether a parsed line is a ganscreen record: an object with a path and a known status."""
    return (isinstance(value, dict) and isinstance(value.get("path"), str)
            and value.get("status") in STATUSES)


def parse_records(data: bytes, source: str, *,
                  accept: Callable[[object], bool] = is_record) -> RecordsRead:
    """The records in ``data`` under the module's rule (``source`` names it in messages).

    ``accept`` says which parsed lines are records; the default takes ganscreen records.
    Raises :class:`RecordsError`.
    """
    records: list[dict[str, Any]] = []
    numbers: list[int] = []
    spans: list[tuple[int, int]] = []
    torn: TornLine | None = None
    start = len(_BOM) if data.startswith(_BOM) else 0
    terminated = 0
    number = 0
    size = len(data)
    while start < size:
        number += 1
        end = data.find(b"\n", start)
        last = end < 0
        stop = size if last else end + 1
        line = data[start:stop]
        span = (start, stop)
        start = stop
        if not last:
            terminated = stop
        if not line.strip():
            continue
        try:
            value = json.loads(line.decode("utf-8"))
        except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
            if last and line.lstrip().startswith(b"{"):
                torn = TornLine(line=number, size=len(line))
                break
            hint = (": expected the JSON Lines output of ganscreen scan (a CSV scan lacks the "
                    "landmarks)") if not records else ""
            raise RecordsError(source, number, "is not JSON", hint) from None
        if not accept(value):
            raise RecordsError(source, number, "is not a ganscreen record")
        records.append(cast(dict[str, Any], value))
        numbers.append(number)
        spans.append(span)
    return RecordsRead(source=source, records=records, lines=numbers, spans=spans, torn=torn,
                       terminated_bytes=terminated)


def read_records(path: Path, *, accept: Callable[[object], bool] = is_record) -> RecordsRead:
    """The records of the JSON Lines file ``path`` (see :func:`parse_records`).

    Refuses FIFOs and devices without blocking (:func:`ganscreen._output.open_records`).
    Raises ``OSError`` when the file cannot be read, :class:`RecordsError` when it is not
    ganscreen JSON Lines.
    """
    from ganscreen._output import open_records

    with open_records(path) as fh:
        data = fh.read()
    return parse_records(data, str(path), accept=accept)


def outcome(status: object, verdict: object) -> str:
    """What became of one input: its verdict when it was judged (``gan``, ``uncertain``,
    ``real``), else its status (``no_face``, ``error``; an unknown status as it stands)."""
    if status == "ok" and verdict in VERDICTS:
        return str(verdict)
    return str(status)


def _finite_numbers(value: object, count: int) -> list[float] | None:
    if not isinstance(value, (list, tuple)) or len(value) != count:
        return None
    numbers: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
            return None
        numbers.append(float(item))
    return numbers


def _face_area(face: object) -> float | None:
    """The box area of a usable record face (a 4-number box and five finite landmark
    pairs), else ``None``: a face the drawings or hashes could not place is not a face."""
    if not isinstance(face, Mapping):
        return None
    box = _finite_numbers(face.get("box"), 4)
    landmarks = face.get("landmarks")
    if box is None or not isinstance(landmarks, (list, tuple)) or len(landmarks) != 5:
        return None
    if any(_finite_numbers(point, 2) is None for point in landmarks):
        return None
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)


def largest_face(faces: object) -> Mapping[str, Any] | None:
    """The usable face with the largest box in a record's ``faces`` list (the first of equals),
    or ``None``; the face every check judged (``faces.primary_face`` at scan time)."""
    if not isinstance(faces, (list, tuple)):
        return None
    best: Mapping[str, Any] | None = None
    best_area = -1.0
    for face in faces:
        area = _face_area(face)
        if area is not None and area > best_area:
            best, best_area = cast(Mapping[str, Any], face), area
    return best


def one_line(message: object, *, limit: int | None = ONE_LINE_LIMIT) -> str:
    """``message`` as one line: every run of whitespace (newlines too) one space, cut to
    ``limit`` characters with ``...`` (``None``: not cut). An exception without text is
    named by its type, so ``analysis failed: KeyError`` never reads ``analysis failed: ``."""
    text = " ".join(str(message).split())
    if not text and isinstance(message, BaseException):
        text = type(message).__name__
    if limit is not None and len(text) > limit:
        text = text[:max(limit - 3, 0)] + "..."
    return text


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` whole (a reader sees the old file or the new one; on a
    failure the old one stays). ``path`` is replaced as given: a symbolic link there is
    replaced, not followed (pass :func:`ganscreen._output.output_target` for ``-o``)."""
    from ganscreen._output import replace_file

    def write(fh: IO[str]) -> None:
        # replace_file opens text; nothing is buffered in the text layer yet, so the bytes
        # can go straight to the binary file under it.
        cast(TextIO, fh).buffer.write(data)

    replace_file(path, write)


def write_text_atomic(path: Path, text: str, *, newline: str | None = "",
                      errors: str = "strict") -> None:
    """Replace ``path`` with ``text`` in UTF-8, whole (as :func:`write_bytes_atomic`);
    ``newline`` and ``errors`` as for :func:`open` (``""``: line endings as in ``text``)."""
    from ganscreen._output import replace_file

    replace_file(path, lambda fh: fh.write(text), newline=newline, errors=errors)


def as_mapping(value: object) -> Mapping[str, Any]:
    """A record's field as a mapping: records are read from files anyone can edit, so a
    field that should be an object and is not reads as empty."""
    return cast(Mapping[str, Any], value) if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    """A record's field as a list (empty when it is not one), for the same reason."""
    return value if isinstance(value, list) else []
