"""The per-image report and its serialisations (JSON Lines and CSV).

One :class:`Report` per input file, whatever happened to it; ``to_record()`` gives the JSON
record documented in DESIGN.md, and the writers stream records to a file object, flushing
each so an interrupted scan keeps every finished result.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from ganscreen.checks import CheckResult
from ganscreen.faces import Face

FLAG_DESCRIPTIONS = {
    "ffhq_alignment": "eyes sit on the FFHQ/StyleGAN alignment template (a generated face, "
                      "or a photo lifted from FFHQ-style datasets)",
    "glasses_asymmetry": "eyeglasses whose left and right halves disagree",
    "backdrop_distortion": "smeared, blob-like or mirrored background texture",
    "cnn_artifacts": "the face classifier finds GAN texture (at its 1 % false-positive point)",
}
STATUSES = ("ok", "no_face", "error")
VERDICTS = ("gan", "uncertain", "real")


@dataclass(slots=True)
class ImageInfo:
    width: int
    height: int
    format: str | None

    def to_record(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "format": self.format}


@dataclass(slots=True)
class Report:
    """The result of screening one input."""

    path: str | None
    status: str  # "ok", "no_face" or "error"
    error: str | None = None
    score: float | None = None
    verdict: str | None = None
    flags: tuple[str, ...] = ()
    image: ImageInfo | None = None
    faces: tuple[Face, ...] = ()
    checks: Mapping[str, CheckResult] = field(default_factory=dict)
    model: Mapping[str, str] = field(default_factory=dict)
    file: Mapping[str, int | float] | None = None  # size and mtime, for --resume

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
            "flags": list(self.flags),
            "image": None if self.image is None else self.image.to_record(),
            "faces": [f.to_record() for f in self.faces],
            "checks": {name: r.to_record() for name, r in self.checks.items()},
            "model": dict(self.model),
            "file": None if self.file is None else dict(self.file),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_record(), ensure_ascii=False, allow_nan=False)


# --------------------------------------------------------------------------- writers

CSV_FIXED = ["path", "status", "error", "score", "verdict", "flags", "width", "height",
             "format", "n_faces", "face_confidence", "model_version"]


def csv_row(record: Mapping[str, Any], check_columns: list[str]) -> dict[str, Any]:
    image = record.get("image") or {}
    faces = record.get("faces") or []
    row: dict[str, Any] = {
        "path": record["path"],
        "status": record["status"],
        "error": record["error"] or "",
        "score": "" if record["score"] is None else record["score"],
        "verdict": record["verdict"] or "",
        "flags": ";".join(record["flags"]),
        "width": image.get("width", ""),
        "height": image.get("height", ""),
        "format": image.get("format") or "",
        "n_faces": len(faces),
        "face_confidence": faces[0]["confidence"] if faces else "",
        "model_version": (record.get("model") or {}).get("version", ""),
    }
    checks = record.get("checks") or {}
    for column in check_columns:
        name, _, key = column.partition(".")
        value = (checks.get(name) or {}).get(key)
        row[column] = "" if value is None or (isinstance(value, float) and math.isnan(value)) else value
    return row


class RecordWriter:
    """Streams records as JSON Lines or CSV, flushing after each one."""

    def __init__(self, stream: IO[str], fmt: str, *, check_columns: list[str] | None = None,
                 write_header: bool = True) -> None:
        if fmt not in ("jsonl", "csv"):
            raise ValueError(f"unknown format {fmt!r}")
        self.stream = stream
        self.fmt = fmt
        self._csv: csv.DictWriter[str] | None = None
        if fmt == "csv":
            self._csv = csv.DictWriter(stream, fieldnames=CSV_FIXED + (check_columns or []),
                                       extrasaction="ignore")
            if write_header:
                self._csv.writeheader()
        self._check_columns = check_columns or []

    def write(self, report: Report) -> None:
        if self._csv is not None:
            self._csv.writerow(csv_row(report.to_record(), self._check_columns))
        else:
            self.stream.write(report.to_json() + "\n")
        self.stream.flush()
