"""The HTML report's view model: one card per record, a figure per check, every string
still raw (the template escapes it). Private: :mod:`ganscreen.html_report` re-exports it."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ganscreen._records import OUTCOMES, as_list, as_mapping, outcome
from ganscreen._records import RecordsError as RecordsError  # re-exported for callers
from ganscreen._records import read_records as read_records
from ganscreen.checks import flag_description, registered
from ganscreen.evidence import (
    Evidence,
    fit,
)
from ganscreen.report import portable_text

OUTCOME_LABELS = {"gan": "GAN", "uncertain": "uncertain", "real": "real", "no_face": "no face",
                  "error": "error"}
# Embedded sizes (longer side, px): small enough that a few hundred cards stay a few MB each.
THUMB_SIDE = 192
JPEG_QUALITY = 82


# --------------------------------------------------------------------------- view model


@dataclass(slots=True)
class Figure:
    key: str
    title: str
    score: str | None
    flagged: bool
    image: str | None  # data: URI
    width: int = 0
    height: int = 0
    legend: str = ""
    measures: list[tuple[str, str]] = field(default_factory=list)
    extra: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    aid: bool = False  # an explanation aid, not proof


@dataclass(slots=True)
class Card:
    index: int
    name: str
    path: str
    status: str
    outcome: str
    outcome_label: str
    score: float | None
    score_text: str
    flags: list[tuple[str, str]]
    message: str | None
    thumb: str | None
    thumb_width: int
    thumb_height: int
    figures: list[Figure]
    notes: list[str]
    evidence_folder: str | None
    robustness: str | None

    @property
    def data_score(self) -> str:
        return "" if self.score is None else f"{self.score:.5f}"

    @property
    def data_flags(self) -> str:
        return " ".join(flag for flag, _ in self.flags)


def build_card(index: int, record: Mapping[str, Any], evidence: Evidence | None,
               evidence_folder: str | None = None) -> Card:
    """The card of one record (every string still raw: the template escapes it)."""
    path = _text(record.get("path"))
    status = str(record.get("status"))
    shown = outcome(status, record.get("verdict"))
    if shown not in OUTCOMES:
        shown = "error"
    score = _number(record.get("score"))
    flags_raw = as_list(record.get("flags"))
    flags = [(_text(f), flag_description(str(f)) or "a flag this version does not describe")
             for f in flags_raw]
    notes: list[str] = []
    message: str | None = None
    if status == "error":
        message = _text(record.get("error") or "unknown error")
    elif status == "no_face":
        message = "No face found: the checks had nothing to judge."
    thumb, tw, th = None, 0, 0
    figures: list[Figure] = []
    if evidence is not None:
        if "thumbnail" in evidence.images:
            thumb, tw, th = _embed(fit(evidence.images["thumbnail"], THUMB_SIDE))
        image_note = evidence.notes.get("image")
        if image_note and not (status == "error" and image_note == message):
            notes.append(_text(image_note))
        if "face" in evidence.notes:
            notes.append(_text(evidence.notes["face"]))
        if status == "ok":
            figures = _figures(record, evidence)
    robustness = _robustness(record.get("robustness"))
    return Card(
        index=index, name=_basename(path), path=path, status=status, outcome=shown,
        outcome_label=OUTCOME_LABELS[shown], score=score,
        score_text="no score" if score is None else f"{score:.3f}",
        flags=flags, message=message, thumb=thumb, thumb_width=tw, thumb_height=th,
        figures=figures, notes=notes, evidence_folder=evidence_folder, robustness=robustness,
    )


def _figures(record: Mapping[str, Any], evidence: Evidence) -> list[Figure]:
    """A figure per check: the registered ones in report order, then any other the record
    holds (a check of another version), each as its spec presents it."""
    checks = as_mapping(record.get("checks"))
    flags = set(record.get("flags") or []) if isinstance(record.get("flags"), list) else set()
    specs = {s.name: s for s in registered()}
    names = [n for n in specs if n in checks or n in evidence.images]
    names += [n for n in checks if n not in specs]
    figures = []
    for name in names:
        spec = specs.get(name)
        shown = spec.presentation if spec is not None else None
        result = as_mapping(checks.get(name))
        score = _number(result.get("score"))
        figure = Figure(key=_text(name), title=shown.title if shown is not None else _text(name),
                        score=None if score is None else f"{score:.3f}",
                        flagged=spec is not None and any(f in flags for f in spec.flag_names()), image=None,
                        legend=shown.legend if shown is not None else "",
                        aid=shown is not None and shown.aid)
        if name in evidence.images:
            figure.image, figure.width, figure.height = _embed(
                fit(evidence.images[name], shown.embed_side if shown is not None else 256))
        if result.get("reason"):
            figure.notes.append("not judged: " + _text(result.get("reason")))
        if name in evidence.notes:
            figure.notes.append(_text(evidence.notes[name]))
        labels = shown.labels if shown is not None else {}
        for key, label in labels.items():
            if key in result:
                figure.measures.append((label, _value(result[key])))
        figure.measures += [(_text(label), _text(value)) for label, value in evidence.measures.get(name, ())]
        figure.extra = [(_text(k), _value(v)) for k, v in result.items()
                        if k not in labels and k not in ("score", "reason")]
        figures.append(figure)
    return figures


def _robustness(value: object) -> str | None:
    if not isinstance(value, dict):
        return None
    variants = as_list(value.get("variants"))
    parts = []
    for v in variants:
        if isinstance(v, dict):
            score = _number(v.get("score"))
            parts.append(f"{_value(v.get('longer_side'))} px, JPEG {_value(v.get('jpeg_quality'))}: "
                         f"{'no score' if score is None else f'{score:.3f}'} {_text(v.get('verdict'))}")
    head = "unstable: the verdict flips" if value.get("unstable") else "stable"
    return f"{head} under platform processing" + (f" ({'; '.join(parts)})" if parts else "")


def _embed(rgb: np.ndarray) -> tuple[str, int, int]:
    from ganscreen.evidence import encode

    data = base64.b64encode(encode(rgb, "JPEG", quality=JPEG_QUALITY)).decode("ascii")
    return f"data:image/jpeg;base64,{data}", int(rgb.shape[1]), int(rgb.shape[0])


def _text(value: object) -> str:
    """Input text as it can be written to UTF-8 (escaping is the template's job)."""
    return portable_text("" if value is None else str(value))


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1] or path


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "n/a"
    if isinstance(value, int):
        return str(value)
    return _text(value)
