"""The checks: each looks at one kind of evidence and returns a :class:`CheckResult`.

A check is one module here that declares everything about itself in a :class:`CheckSpec`
named ``SPEC``: how to build it, the flags it raises (with their plain words), its CSV
columns, how the HTML report and the evidence files present it. The check object has a
``name`` and ``run(context) -> CheckResult``; one that holds a model also batches
(:class:`BatchedCheck`), and one that can show where its evidence lies draws it
(:class:`DrawingCheck`). The pipeline, CLI, reports, evidence, campaign and the fusion fit
iterate :func:`registered`, so adding a check is one new module plus its name in
:data:`SHIPPED` (or a :func:`register` call, for a check that lives elsewhere).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ganscreen.faces import AlignedFace, Face

__all__ = [
    "ALIGNED_SIZE",
    "SHIPPED",
    "BatchedCheck",
    "Check",
    "CheckContext",
    "CheckResult",
    "CheckSpec",
    "Drawing",
    "DrawingCheck",
    "Flag",
    "Presentation",
    "build_checks",
    "csv_columns",
    "flag_description",
    "flags",
    "logistic_score",
    "not_judged",
    "register",
    "registered",
    "sigmoid",
    "spec_for",
    "unregister",
]

# The shipped checks, in report order: each names a module of this package that defines
# ``SPEC``. Registering a check is adding its module's name here.
SHIPPED = ("geometry", "glasses", "backdrop", "cnn")
# Side of the landmark-aligned face crop every check shares (see CheckContext.aligned).
ALIGNED_SIZE = 256


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a check may look at: the image, all faces, the primary face and its crop."""

    image: np.ndarray  # H x W x 3 uint8, full resolution
    faces: tuple[Face, ...]
    face: Face | None
    aligned: AlignedFace | None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A check's verdict on one image.

    ``score`` is in [0, 1] (higher means more GAN-like) or ``None`` when the check cannot
    judge this image, in which case ``reason`` says why. ``measures`` are the raw
    quantities behind the score, recorded so that fusion can be refitted from a scan.
    """

    score: float | None
    measures: Mapping[str, float | bool | None] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    reason: str | None = None

    def to_record(self) -> dict[str, object]:
        record: dict[str, object] = {"score": _round(self.score)}
        record.update({k: _round(v) if isinstance(v, float) else v for k, v in self.measures.items()})
        if self.reason is not None:
            record["reason"] = self.reason
        return record


@runtime_checkable
class Check(Protocol):
    name: str

    def run(self, ctx: CheckContext) -> CheckResult: ...


@runtime_checkable
class BatchedCheck(Check, Protocol):
    """A check with a model: per-image preparation, then one batched call for many images.

    The pipeline calls ``prepare`` in worker threads (so it must be thread-safe and should
    leave torch alone) and ``run_prepared`` on the thread that owns the models. ``prepare``
    may return a finished :class:`CheckResult` (e.g. no face), which ``run_prepared``
    passes through.
    """

    def prepare(self, ctx: CheckContext) -> object: ...

    def run_prepared(self, prepared: Sequence[object]) -> list[CheckResult]: ...


@dataclass(frozen=True, slots=True)
class Drawing:
    """Where a check found its evidence on one photo, drawn for a person: an RGB ``uint8``
    image and the labelled values that go with it (shown beside the image)."""

    image: np.ndarray
    measures: tuple[tuple[str, str], ...] = ()


@runtime_checkable
class DrawingCheck(Check, Protocol):
    """A check that can draw its evidence, from the same computation that scores it.

    ``draw`` is called long after a scan as well (``ganscreen report``), on the image
    re-read from the record and a context rebuilt from the record's faces.
    """

    def draw(self, ctx: CheckContext) -> Drawing: ...


@dataclass(frozen=True, slots=True)
class Flag:
    """One artifact a check names, from the stable flag vocabulary."""

    name: str
    description: str  # plain words, with how often it fires on ordinary real photos
    words: str  # a few words for the terminal table
    campaign: str  # completes "photos that ...", for the campaign report's tests


@dataclass(frozen=True, slots=True)
class Presentation:
    """How the HTML report and the evidence files show a check."""

    title: str  # the card's heading for this check
    labels: Mapping[str, str] = field(default_factory=dict)  # measure -> plain label, in order
    legend: str = ""  # what the drawing shows (HTML)
    file: str | None = None  # evidence file name for the drawing, e.g. "geometry.png"
    file_legend: str = ""  # what the drawing shows (one line, evidence.txt)
    embed_side: int = 256  # longer side of the drawing embedded in the HTML report
    aid: bool = False  # an explanation aid, not proof (said on the card)


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """Everything the rest of ganscreen needs to know about one check."""

    name: str
    build: Callable[..., Check]  # build(device=...) -> the check, its models loaded
    flags: tuple[Flag, ...] = ()
    csv_columns: tuple[str, ...] = ("score",)  # measures written to CSV as "<name>.<measure>"
    presentation: Presentation | None = None

    def flag_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.flags)


_extra: dict[str, CheckSpec] = {}


def register(spec: CheckSpec) -> CheckSpec:
    """Add a check that is not shipped with ganscreen (it runs after the shipped ones)."""
    if spec.name in SHIPPED or spec.name in _extra:
        raise ValueError(f"a check named {spec.name!r} is already registered")
    _extra[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a check added by :func:`register`."""
    _extra.pop(name, None)


def registered() -> tuple[CheckSpec, ...]:
    """Every registered check's spec, in report order (shipped first)."""
    shipped = tuple(_shipped(name) for name in SHIPPED)
    return shipped + tuple(_extra.values())


def spec_for(name: str) -> CheckSpec | None:
    return next((s for s in registered() if s.name == name), None)


def flags() -> dict[str, Flag]:
    """Every flag of every registered check, by name, in report order."""
    return {f.name: f for s in registered() for f in s.flags}


def flag_description(name: str) -> str | None:
    flag = flags().get(name)
    return None if flag is None else flag.description


def csv_columns() -> list[str]:
    """The per-check CSV columns of every registered check, as ``<check>.<measure>``."""
    return [f"{s.name}.{column}" for s in registered() for column in s.csv_columns]


def build_checks(device: Any = "cpu") -> list[Check]:
    """A fresh instance of every registered check, in report order."""
    return [s.build(device=device) for s in registered()]


def _shipped(name: str) -> CheckSpec:
    spec = importlib.import_module(f"{__name__}.{name}").SPEC
    if not isinstance(spec, CheckSpec) or spec.name != name:
        raise TypeError(f"ganscreen.checks.{name}.SPEC is not the CheckSpec of {name!r}")
    return spec


def not_judged(reason: str, **measures: float | bool | None) -> CheckResult:
    return CheckResult(score=None, measures=measures, reason=reason)


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def logistic_score(features: Mapping[str, float], params: Mapping[str, object]) -> float:
    """``sigmoid(bias + sum(w_i * (x_i - mean_i) / scale_i))`` with fitted parameters."""
    z = float(params["bias"])  # type: ignore[arg-type]
    weights: Mapping[str, float] = params["weights"]  # type: ignore[assignment]
    means: Mapping[str, float] = params["mean"]  # type: ignore[assignment]
    scales: Mapping[str, float] = params["scale"]  # type: ignore[assignment]
    for name, w in weights.items():
        z += w * (features[name] - means[name]) / scales[name]
    return sigmoid(z)


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), 5)
