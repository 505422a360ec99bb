"""Fusion: the check scores become one calibrated probability, a verdict and flags.

The fusion model is a logistic regression on each check's score logit (and, per check, an
indicator that it could not judge), fitted by ``scripts/fit_fusion.py`` on the training
collection. Its thresholds come from the ROC of a held-out split: ``gan`` above the score
that keeps the false-positive rate at the documented operating point, ``real`` below the
score that still catches the documented share of GAN faces, ``uncertain`` in between.

A linear fusion caps what one check can say: a face exactly on the StyleGAN template
(geometry 0.999) would be pulled under the gan threshold by a CNN that sees little. So when a
*floor* check's own probability (its score's logit through a logistic calibration fitted on
the same population) reaches the gan threshold, it is the least the fused score can be: a
face that check alone calls GAN-generated is called so by the verdict too. The floors are in ``fusion.json`` (``floors``).
A *flag floor* (``flag_floors``) does the same for a flag whose own rule was set at the gan
threshold's operating point: a face carrying it scores at least the gan threshold. The
geometry check's ``ffhq_recrop`` (a crop of a StyleGAN/FFHQ-aligned frame, flagged on 1 % of
ordinary real photos) is one: it is what is left of the alignment once a GAN face is re-cropped.

A floor says *that* a face is at least at the gan threshold, not how far above it: every
face on the StyleGAN template, generated or lifted from FFHQ, has geometry near 1. With
``rank_lifted_by`` (a check's name) a lifted face scores ``gan + (1 - gan) * score`` of that
check instead (``"linear"``: the linear fusion's probability), so among the faces a floor
lifts, that evidence orders them; the set of faces at or above the gan threshold, and so every
verdict, is the same as without it. It is off in the shipped fusion: ordered by the CNN, the
lifted faces gained against aligned dataset photos but lost at 1 % FPR against ordinary photos
near the template, which how exactly a face sits on it separates better (model card, stop 26).

A *one-sided* check (``one_sided``, absent from the shipped fusion) gives evidence in one
direction only: its logit counts when it says GAN and is 0 — the same as a check that could
not judge — when it says real. Geometry is the case in point: a face off the StyleGAN template
is what ordinary photos and re-cropped GAN faces both look like, so counted two-sided a
re-crop makes a GAN face look more real than a tight photo geometry cannot judge at all. The
model card (Fusion) says what it gained and cost when fitted, and why it is not shipped.

Two rules sit on top of the threshold, both in ``fusion.json``:

* ``never_real``: flags that forbid a ``real`` verdict. A face on the StyleGAN/FFHQ landmark
  template is generated, or it is a photo lifted from a public face dataset; either way an
  analyst must look at it, so it is ``uncertain`` (with that reason) when the score alone
  would clear it.
* every verdict carries a one-line ``reason``: the score against the threshold it crossed
  and the checks that moved it most.

And two about what there is to judge: an image without a face gets no score and no verdict
("no face found: nothing to judge"); a face that no check could judge is ``uncertain``, never
cleared.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ganscreen._assets import load_json
from ganscreen.checks import CheckResult, sigmoid

if TYPE_CHECKING:
    from ganscreen.report import VerdictLabel

__all__ = [
    "LINEAR",
    "LOGIT_CLIP",
    "NO_FACE_REASON",
    "Fusion",
    "Verdict",
    "features",
    "logit",
]

LINEAR = "linear"  # rank_lifted_by: the linear fusion itself, not one check
LOGIT_CLIP = 6.0  # |logit| cap so one saturated check cannot dominate
NO_FACE_REASON = "no face found: nothing to judge"


@dataclass(frozen=True, slots=True)
class Verdict:
    score: float | None
    verdict: VerdictLabel | None  # None only when there was no face to judge
    flags: tuple[str, ...]
    reason: str | None = None  # one line: why this verdict


def logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return max(-LOGIT_CLIP, min(LOGIT_CLIP, math.log(p / (1 - p))))


def features(results: Mapping[str, CheckResult], checks: Sequence[str],
             one_sided: Collection[str] = ()) -> dict[str, float]:
    """The fusion model's inputs: each check's score logit, 0 (no evidence) when it could
    not judge. Missing checks carry no weight of their own: in the training collection
    "could not judge" mostly means "tightly cropped real photo", a shortcut not to learn.
    A check in ``one_sided`` counts only as GAN evidence: its negative logits are 0."""
    out: dict[str, float] = {}
    for name in checks:
        result = results.get(name)
        score = None if result is None else result.score
        value = 0.0 if score is None else logit(score)
        out[f"{name}_logit"] = max(value, 0.0) if name in one_sided else value
    return out


class Fusion:
    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        params = params if params is not None else load_json("fusion.json")
        self.version = str(params["version"])
        self.checks = tuple(params["checks"])
        self.weights: Mapping[str, float] = params["weights"]
        self.bias = float(params["bias"])
        self.gan_threshold = float(params["thresholds"]["gan"])
        self.real_threshold = float(params["thresholds"]["real"])
        self.operating_point: Mapping[str, Any] = params.get("operating_point", {})
        self.never_real: Mapping[str, str] = params.get("never_real", {})
        self.floors: Mapping[str, Mapping[str, float]] = params.get("floors", {})
        self.flag_floors: Mapping[str, Mapping[str, Any]] = params.get("flag_floors", {})
        self.one_sided = frozenset(params.get("one_sided", ()))
        self.rank_lifted_by: str | None = params.get("rank_lifted_by")

    def probability(self, results: Mapping[str, CheckResult]) -> float | None:
        return self._score(results)[0] if _judged(results) else None

    def _score(self, results: Mapping[str, CheckResult]) -> tuple[float, dict[str, float]]:
        """The fused score of judged results, and the floors that lift it."""
        x = features(results, self.checks, self.one_sided)
        linear = sigmoid(self.bias + sum(w * x[k] for k, w in self.weights.items()))
        # A floor lifts only a face its check alone would call gan: below the gan threshold
        # the linear fusion ranks faces (a floor check's weak evidence is already in it).
        lifting = {n: p for n, p in self.floor_probabilities(results).items() if p >= self.gan_threshold}
        flags = {f for r in results.values() for f in r.flags}
        lifting.update({f: max(float(floor["probability"]), self.gan_threshold)
                        for f, floor in self.flag_floors.items() if f in flags})
        if lifting and self.rank_lifted_by is not None:
            ranker = results.get(self.rank_lifted_by)
            by = linear if self.rank_lifted_by == LINEAR else None if ranker is None else ranker.score
            if by is not None:
                ranked = self.gan_threshold + (1 - self.gan_threshold) * float(by)
                return ranked, dict.fromkeys(lifting, ranked)
        return max([linear, *lifting.values()]), lifting

    def floor_probabilities(self, results: Mapping[str, CheckResult]) -> dict[str, float]:
        """Each floor check's own calibrated probability (checks that could not judge set none)."""
        out: dict[str, float] = {}
        for name, floor in self.floors.items():
            result = results.get(name)
            if result is not None and result.score is not None:
                out[name] = sigmoid(float(floor["bias"]) + float(floor["weight"]) * logit(result.score))
        return out

    def verdict_for(self, score: float | None) -> VerdictLabel | None:
        if score is None:
            return None
        if score >= self.gan_threshold:
            return "gan"
        if score <= self.real_threshold:
            return "real"
        return "uncertain"

    def contributions(self, results: Mapping[str, CheckResult]) -> dict[str, float]:
        """Each weighted check's share of the fused logit (0 when it could not judge)."""
        x = features(results, self.checks, self.one_sided)
        return {name: self.weights.get(f"{name}_logit", 0.0) * x[f"{name}_logit"] for name in self.checks}

    def decide(self, results: Mapping[str, CheckResult], *, face_found: bool = True) -> Verdict:
        """The verdict on one image from its checks' results (``face_found``: whether the
        image had a face at all; without one there is nothing to judge)."""
        flags = tuple(dict.fromkeys(f for r in results.values() for f in r.flags))
        if not face_found:
            return Verdict(score=None, verdict=None, flags=flags, reason=NO_FACE_REASON)
        if not _judged(results):  # a face no check could judge
            return Verdict(score=None, verdict="uncertain", flags=flags, reason="no check could judge this face")
        score, lifting = self._score(results)
        verdict = self.verdict_for(score)
        blocking = [self.never_real[f] for f in flags if f in self.never_real]
        if verdict == "real" and blocking:
            return Verdict(score=score, verdict="uncertain", flags=flags, reason=blocking[0])
        return Verdict(score=score, verdict=verdict, flags=flags, reason=self._reason(score, verdict, results, lifting))

    def _reason(self, score: float, verdict: VerdictLabel | None, results: Mapping[str, CheckResult],
                lifting: Mapping[str, float]) -> str:
        shares = self.contributions(results)
        if verdict == "gan":
            head = f"score {score:.2f} at or above the gan threshold {self.gan_threshold:.2f}"
            drivers = sorted((n for n in shares if shares[n] > 0), key=lambda n: -shares[n])
        elif verdict == "real":
            head = f"score {score:.2f} at or below the real threshold {self.real_threshold:.2f}"
            drivers = sorted((n for n in shares if shares[n] < 0), key=lambda n: shares[n])
        else:
            head = f"score {score:.2f} between the real ({self.real_threshold:.2f}) and gan " \
                   f"({self.gan_threshold:.2f}) thresholds"
            drivers = sorted((n for n in shares if shares[n] != 0), key=lambda n: -abs(shares[n]))
        floor = max(lifting, key=lifting.__getitem__, default=None)
        if floor is not None and lifting[floor] >= score - 1e-12:  # the floor, not the sum, set the score
            ranked = self._ranked_by(results, shares)
            if floor in self.flag_floors:
                return head + f" ({floor} alone puts it there: {self.flag_floors[floor]['why']}{ranked})"
            why = next((self.never_real[f] for f in results[floor].flags if f in self.never_real), None)
            return head + f" ({floor} {results[floor].score:.2f} alone puts it there" + \
                (f": {why}" if why else "") + ranked + ")"
        said = [f"{n} {results[n].score:.2f}" for n in drivers[:2] if results.get(n) and results[n].score is not None]
        return head + (f" (most weight: {', '.join(said)})" if said else "")


    def _ranked_by(self, results: Mapping[str, CheckResult], shares: Mapping[str, float]) -> str:
        """The reason's note on what placed a lifted face above the threshold ("" if nothing)."""
        if self.rank_lifted_by == LINEAR:
            linear = sigmoid(self.bias + sum(shares.values()))
            return f"; the linear fusion's {linear:.2f} places it above the threshold"
        ranker = results.get(self.rank_lifted_by or "")
        if ranker is None or ranker.score is None:
            return ""
        return f"; {self.rank_lifted_by} {ranker.score:.2f} places it above the threshold"


def _judged(results: Mapping[str, CheckResult]) -> bool:
    """Whether any check could judge the face (else there is no score)."""
    return any(r.score is not None for r in results.values())
