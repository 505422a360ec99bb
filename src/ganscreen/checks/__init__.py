"""The checks: each looks at one kind of evidence and returns a :class:`CheckResult`.

A check is any object with a ``name`` and a ``run(context) -> CheckResult`` method; the
pipeline runs every check in :func:`ganscreen.pipeline.default_checks` order (checks that
hold a model also split their work, see :class:`BatchedCheck`) and fusion combines their
scores.
Adding a check means writing one module and appending it here; the others are untouched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ganscreen.faces import AlignedFace, Face

__all__ = [
    "BatchedCheck",
    "Check",
    "CheckContext",
    "CheckResult",
    "logistic_score",
    "not_judged",
    "sigmoid",
]

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


class Check(Protocol):
    name: str

    def run(self, ctx: CheckContext) -> CheckResult: ...


class BatchedCheck(Check, Protocol):
    """A check with a model: per-image preparation, then one batched call for many images.

    The pipeline calls ``prepare`` in worker threads (so it must be thread-safe and should
    leave torch alone) and ``run_prepared`` on the thread that owns the models. ``prepare``
    may return a finished :class:`CheckResult` (e.g. no face), which ``run_prepared``
    passes through.
    """

    def prepare(self, ctx: CheckContext) -> object: ...

    def run_prepared(self, prepared: Sequence[object]) -> list[CheckResult]: ...


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
