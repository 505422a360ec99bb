"""Evidence images: what each check looked at, drawn so a person can see it.

Everything here works from a scan *record* (the JSON object of :class:`ganscreen.report.Report`)
and the image re-read from the record's path, so evidence can be drawn long after the scan
(``ganscreen report``) as well as during it. Each drawing function returns an RGB ``uint8``
array; :class:`EvidenceMaker` puts them together for one record and :func:`write_evidence`
saves them as PNG files for takedown write-ups.

Each check draws its own evidence (``draw`` of :class:`ganscreen.checks.DrawingCheck`),
from the same computation that scores it, so a drawing shows what the check measured, not
a lookalike; this module rebuilds the check's context from the record, collects the
drawings and writes them under the file names the checks' specs give.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ganscreen._records import as_list, as_mapping, largest_face, one_line, write_bytes_atomic
from ganscreen.checks import ALIGNED_SIZE, Check, CheckContext, DrawingCheck, flag_description, registered
from ganscreen.faces import Face, align_face
from ganscreen.images import ImageLoadError, file_stamp, load_recorded

_log = logging.getLogger("ganscreen")

__all__ = [
    "THUMBNAIL_FILE",
    "Evidence",
    "EvidenceMaker",
    "encode",
    "evidence_files",
    "evidence_folder_name",
    "face_from_record",
    "fit",
    "thumbnail",
    "write_evidence",
]

THUMBNAIL_FILE = ("thumbnail.png", "the photo, shrunk")


# --------------------------------------------------------------------------- records


def face_from_record(record: Mapping[str, Any]) -> Face | None:
    """The primary (largest) face of a record, or ``None`` when it holds no usable face."""
    entry = largest_face(record.get("faces"))
    if entry is None:
        return None
    confidence = entry.get("confidence")
    # largest_face vouches for the box and landmarks; the confidence is only shown.
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
        confidence = 0.0
    return Face(box=np.asarray(entry["box"], dtype=np.float32),
                landmarks=np.asarray(entry["landmarks"], dtype=np.float32), confidence=float(confidence))


def evidence_folder_name(path: str) -> str:
    """A safe folder name for one input's evidence: a hash of its path, never the raw name."""
    return hashlib.sha256(os.fsencode(path)).hexdigest()[:16]


# --------------------------------------------------------------------------- drawings


def thumbnail(rgb: np.ndarray, max_side: int = 192) -> np.ndarray:
    return fit(rgb, max_side)


def fit(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """``rgb`` shrunk (never enlarged) so its longer side is at most ``max_side``."""
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def encode(rgb: np.ndarray, fmt: str = "PNG", *, quality: int = 85) -> bytes:
    """An RGB array as PNG or JPEG bytes."""
    import io

    buf = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")
    if fmt == "JPEG":
        image.save(buf, format="JPEG", quality=quality, optimize=True)
    else:
        image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# --------------------------------------------------------------------------- one record


@dataclass(slots=True)
class Evidence:
    """The evidence images for one record; ``notes`` say what could not be drawn and why."""

    images: dict[str, np.ndarray] = field(default_factory=dict)  # "thumbnail" or a check's name
    notes: dict[str, str] = field(default_factory=dict)  # kind (or "image") -> one line
    # A check's name -> the labelled values its drawing adds (see ganscreen.checks.Drawing).
    measures: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    image_available: bool = False


class EvidenceMaker:
    """Draws the evidence of scan records, re-reading each image from its recorded path.

    ``checks`` are the checks whose drawings to make (the scan's own, so the drawings come
    from the very models that scored); without them, every registered check is built on
    first use on ``device``. A check that cannot be built (e.g. altered weights) gets a
    note on every card instead of a drawing.
    """

    def __init__(self, *, checks: Sequence[Check] | None = None, device: str = "cpu") -> None:
        self._checks = list(checks) if checks is not None else None
        self._device = device
        self._build_errors: dict[str, str] = {}

    def checks(self) -> list[Check]:
        if self._checks is None:
            self._checks = []
            for spec in registered():
                try:
                    self._checks.append(spec.build(device=self._device))
                except Exception as exc:  # a missing or altered model file: said on the card
                    self._build_errors[spec.name] = f"the {spec.name} check could not be loaded: {one_line(exc)}"
                    _log.warning("evidence: %s", self._build_errors[spec.name])
        return self._checks

    def build(self, record: Mapping[str, Any]) -> Evidence:
        evidence = Evidence()
        path = record.get("path")
        if not isinstance(path, str):
            evidence.notes["image"] = "the record names no file"
            return evidence
        try:
            # The scan's own reading rule; an error record or changed content is not shown.
            rgb = load_recorded(record).rgb
        except ImageLoadError as exc:
            message = str(exc)
            if record.get("status") != "error" and not message.startswith("not shown"):
                message = f"cannot re-read the image from its recorded path: {message}"
            evidence.notes["image"] = message
            return evidence
        except Exception as exc:  # never let one record end a report
            evidence.notes["image"] = f"cannot re-read the image: {one_line(exc)}"
            _log.warning("evidence for %s: %s", path, evidence.notes["image"], exc_info=True)
            return evidence
        evidence.image_available = True
        evidence.images["thumbnail"] = thumbnail(rgb, 256)
        changed = _changed(record, rgb, path)
        if changed is not None:
            evidence.notes["image"] = changed
            if changed.startswith("the image is now"):
                return evidence  # landmarks would land on the wrong pixels: draw nothing
        if record.get("status") != "ok":
            return evidence
        face = face_from_record(record)
        if face is None:
            evidence.notes["face"] = "the record holds no usable face landmarks"
            return evidence
        self._draw(evidence, rgb, face)
        return evidence

    def _draw(self, evidence: Evidence, rgb: np.ndarray, face: Face) -> None:
        """Every check's drawing on the context the scan gave it (the recorded face)."""
        checks = self.checks()
        evidence.notes.update(self._build_errors)
        try:
            aligned = align_face(rgb, face, size=ALIGNED_SIZE)
        except Exception as exc:  # a record whose landmarks cannot be aligned: said on the card
            evidence.notes["face"] = f"could not align the recorded face: {one_line(exc)}"
            _log.warning("evidence: %s", evidence.notes["face"], exc_info=True)
            return
        ctx = CheckContext(image=rgb, faces=(face,), face=face, aligned=aligned)
        for check in checks:
            if not isinstance(check, DrawingCheck):
                continue
            try:
                drawing = check.draw(ctx)
            except Exception as exc:  # one drawing failing leaves the others (and the card)
                evidence.notes[check.name] = f"could not draw: {one_line(exc)}"
                _log.warning("evidence: the %s drawing failed: %s", check.name, one_line(exc), exc_info=True)
                continue
            evidence.images[check.name] = drawing.image
            if drawing.measures:
                evidence.measures[check.name] = drawing.measures


def _changed(record: Mapping[str, Any], rgb: np.ndarray, path: str) -> str | None:
    """A note when the file on disk is not the one that was scanned, else ``None``."""
    image = record.get("image")
    if isinstance(image, dict):
        size = (image.get("width"), image.get("height"))
        if size != (rgb.shape[1], rgb.shape[0]) and all(isinstance(v, int) for v in size):
            return (f"the image is now {rgb.shape[1]}x{rgb.shape[0]} px, not the {size[0]}x{size[1]} px "
                    "that were scanned; evidence is not drawn")
    file = record.get("file")
    if isinstance(file, dict) and isinstance(file.get("sha256"), str):
        return None  # load_recorded found the very bytes that were scanned
    stamp = file_stamp(path)
    if isinstance(file, dict) and stamp is not None and file and \
            (file.get("size"), file.get("mtime")) != (stamp["size"], stamp["mtime"]):
        return "the file was modified after the scan; evidence is drawn from the current file"
    return None


# --------------------------------------------------------------------------- files


def evidence_files() -> dict[str, tuple[str, str]]:
    """Evidence kind -> (file name, one-line legend): the thumbnail and every registered
    check's drawing."""
    files = {"thumbnail": THUMBNAIL_FILE}
    for spec in registered():
        shown = spec.presentation
        name = shown.file if shown is not None and shown.file else f"{spec.name}.png"
        files[spec.name] = (name, shown.file_legend if shown is not None else "")
    return files


def write_evidence(root: Path, record: Mapping[str, Any], evidence: Evidence) -> Path | None:
    """Write one record's evidence to ``root/<hash of its path>/``: a PNG per drawing, the
    record (``record.json``) and a plain-text legend (``evidence.txt``). Returns the folder."""
    path = record.get("path")
    if not isinstance(path, str):
        return None
    folder = root / evidence_folder_name(path)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    files = evidence_files()
    for kind, image in evidence.images.items():
        if kind not in files:
            continue  # a drawing of a check this version does not register
        name, _legend = files[kind]
        write_bytes_atomic(folder / name, encode(image, "PNG"))
        written.append(kind)
    try:
        record_text = json.dumps(record, ensure_ascii=True, indent=2, allow_nan=False)
    except ValueError:  # a hand-edited record with NaN: keep it readable rather than fail
        record_text = json.dumps(record, ensure_ascii=True, indent=2)
    write_bytes_atomic(folder / "record.json", (record_text + "\n").encode("ascii"))
    write_bytes_atomic(folder / "evidence.txt", _legend_text(record, evidence, written).encode("utf-8"))
    return folder


def _legend_text(record: Mapping[str, Any], evidence: Evidence, written: list[str]) -> str:
    from ganscreen.report import portable_text

    lines = [f"file: {portable_text(str(record.get('path')))}",
             f"status: {record.get('status')}"]
    if record.get("error"):
        lines.append(f"error: {portable_text(str(record.get('error')))}")
    if record.get("score") is not None:
        lines.append(f"score: {record.get('score')} (probability of a GAN-generated face)")
    if record.get("verdict"):
        lines.append(f"verdict: {record.get('verdict')}")
    flags = as_list(record.get("flags"))
    for flag in flags:
        lines.append(f"flag {flag}: {flag_description(str(flag)) or 'unknown flag'}")
    model = as_mapping(record.get("model"))
    if model.get("version"):
        lines.append(f"model: {model.get('version')}")
    lines.append("")
    files = evidence_files()
    for kind in written:
        name, legend = files[kind]
        lines.append(f"{name}: {legend}")
        for label, value in evidence.measures.get(kind, ()):
            lines.append(f"  {label}: {value}")
    for kind, note in evidence.notes.items():
        lines.append(f"note ({kind}): {portable_text(note)}")
    lines.append("record.json: the scan record")
    return "\n".join(lines) + "\n"
