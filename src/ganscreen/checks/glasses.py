"""Eyeglasses: are there any, and do the two halves of the frame agree?

GAN faces often wear glasses whose left and right halves differ (rim thickness, hinge,
temple arm, lens outline). The check works on the landmark-aligned face, where the midline
is the vertical line x = size / 2, so mirroring the right half onto the left compares the
frame with itself. Faces are not perfectly symmetric either (pose, light), so the same
comparison on a band without glasses (the cheeks and mouth) is the baseline.

Regions are fractions of the aligned square; the canonical eyes sit at (0.373, 0.471) and
(0.627, 0.471), the nose tip at y = 0.624.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from ganscreen._assets import load_json
from ganscreen.checks import (
    ALIGNED_SIZE,
    CheckContext,
    CheckResult,
    CheckSpec,
    Drawing,
    Flag,
    Presentation,
    logistic_score,
    not_judged,
)
from ganscreen.checks._drawing import colormap, side_by_side, zoom

__all__ = [
    "ALIGNED_SIZE",
    "BRIDGE",
    "CHEEKS",
    "CONTROL_BAND",
    "DRAWING_ZOOM",
    "EYE",
    "EYE_BAND",
    "FLAG",
    "LENS",
    "MAX_SHIFT",
    "MIN_COVERAGE",
    "RIMS",
    "SIDE_CHEEK",
    "SPEC",
    "TEMPLE",
    "GlassesCheck",
    "halves",
    "measure",
]

FLAG = "glasses_asymmetry"
DRAWING_ZOOM = 2  # the eye band is small (about 185 x 61 px): enlarge it
# Regions as (x0, y0, x1, y1) fractions of the aligned square.
BRIDGE = (0.455, 0.40, 0.545, 0.50)  # between the eyes, where the frame's bridge sits
RIMS = (0.25, 0.52, 0.75, 0.58)  # under the eyes, where the lower rims run
CHEEKS = (0.30, 0.62, 0.70, 0.70)  # plain skin: the texture baseline
EYE_BAND = (0.14, 0.36, 0.86, 0.60)  # the whole frame, both lenses and temples
CONTROL_BAND = (0.20, 0.62, 0.80, 0.86)  # cheeks and mouth: the symmetry baseline
# Per-side regions, given for the image's left side and mirrored for the right.
LENS = (0.22, 0.36, 0.47, 0.60)  # around the left eye: rim, lens outline, hinge
EYE = (0.373, 0.471, 0.09, 0.05)  # the eye itself (centre x, y, radii): excluded from LENS
TEMPLE = (0.12, 0.42, 0.22, 0.52)  # beyond the lens: the temple arm
SIDE_CHEEK = (0.28, 0.62, 0.45, 0.72)  # skin below the lens: light and pose baseline
MAX_SHIFT = 3  # pixels of misalignment tolerated when comparing halves
MIN_COVERAGE = 0.6  # share of the eye band that must lie inside the photo, on both sides


class GlassesCheck:
    name = "glasses"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        params = params if params is not None else load_json("checks.json")["glasses"]
        self.presence = params["presence"]
        self.asymmetry = params["asymmetry"]
        self.presence_threshold = float(params["presence_threshold"])
        self.flag_threshold = float(params["flag_threshold"])

    def run(self, ctx: CheckContext) -> CheckResult:
        aligned = ctx.aligned
        if aligned is None:
            return not_judged("no face")
        # Pixels the crop invented beyond the photo's border are excluded, with a margin so
        # the border itself does not read as an edge.
        valid = cv2.erode(aligned.valid.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        if _symmetric(_region(valid, EYE_BAND)).mean() < MIN_COVERAGE:
            return not_judged("eye region runs outside the image")
        grey = cv2.cvtColor(aligned.image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        measures = measure(grey, valid)
        if not all(np.isfinite(v) for v in measures.values()):
            return not_judged("too little of the face inside the image to compare its halves")
        p_present = logistic_score(measures, self.presence)
        present = p_present >= self.presence_threshold
        p_asym = logistic_score(measures, self.asymmetry)
        score = p_present * p_asym
        flags = (FLAG,) if present and score >= self.flag_threshold else ()
        return CheckResult(
            score=score,
            measures={"present": bool(present), "presence": p_present, **measures},
            flags=flags,
        )

    def draw(self, ctx: CheckContext) -> Drawing:
        """The eye band of the aligned face as :meth:`run` compares it: its left half, its
        right half mirrored onto the left, and the difference of their edge strength
        (bright = edges on one side only), side by side."""
        if ctx.aligned is None:
            raise ValueError("no face to draw")
        band = _region(ctx.aligned.image, EYE_BAND)
        left, right = halves(band)
        _gx, _gy, magnitude = _edges(cv2.cvtColor(band, cv2.COLOR_RGB2GRAY).astype(np.float32))
        mag_left, mag_right = halves(cv2.GaussianBlur(magnitude, (0, 0), 1.0))
        difference = np.abs(mag_left - mag_right)
        top = float(np.percentile(np.maximum(mag_left, mag_right), 99)) or 1.0
        diff_rgb = colormap(np.clip(difference / top, 0, 1), cv2.COLORMAP_INFERNO)
        panels = [zoom(p, DRAWING_ZOOM) for p in (left, np.ascontiguousarray(right), diff_rgb)]
        return Drawing(image=side_by_side(panels))


def measure(grey: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float]:
    """Edge statistics of an aligned grey face (float32, square); ``valid`` masks pixels."""
    if valid is None:
        valid = np.ones(grey.shape, bool)
    gx, gy, magnitude = _edges(grey)
    texture = _masked_mean(magnitude, valid, CHEEKS) + 1.0
    band = _region(magnitude, EYE_BAND)
    band_valid = _symmetric(_region(valid, EYE_BAND))
    control_valid = _symmetric(_region(valid, CONTROL_BAND))
    eye_asym = _mirror_dissimilarity(band, band_valid)
    control_asym = _mirror_dissimilarity(_region(magnitude, CONTROL_BAND), control_valid)
    sides = _side_measures(grey, magnitude, gx, gy, valid)
    return {
        **sides,
        "bridge_edge": _masked_row_max(np.abs(gy), valid, BRIDGE) / texture,
        "rim_edge": _masked_row_max(np.abs(gy), valid, RIMS) / texture,
        "band_edge": _masked_mean(magnitude, valid, EYE_BAND) / texture,
        "asymmetry": eye_asym,
        "control_asymmetry": control_asym,
        "asymmetry_excess": eye_asym - control_asym,
    }


def _edges(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sobel gradients and their magnitude: the edge strength every comparison uses."""
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return gx, gy, cv2.magnitude(gx, gy)


def _side_measures(grey: np.ndarray, magnitude: np.ndarray, gx: np.ndarray, gy: np.ndarray,
                   valid: np.ndarray) -> dict[str, float]:
    """Compare the frame around the left eye with the mirrored frame around the right eye:
    thin dark or light line energy (rims), temple-arm edges, and edge orientations."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    lines = cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, kernel) + cv2.morphologyEx(
        grey, cv2.MORPH_TOPHAT, kernel)
    size = grey.shape[0]
    yy, xx = np.mgrid[0:size, 0:size] / size
    cx, cy, rx, ry = EYE
    not_eye = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 > 1
    not_eye &= ((xx - (1 - cx)) / rx) ** 2 + ((yy - cy) / ry) ** 2 > 1
    mask = valid & not_eye
    angle = np.arctan2(gy, gx)

    def both(array: np.ndarray, frac: tuple[float, float, float, float]) -> tuple[float, float]:
        return _masked_mean(array, mask, frac), _masked_mean(array, mask, _mirror(frac))

    lens_l, lens_r = both(lines, LENS)
    temple_l, temple_r = both(np.abs(gy), TEMPLE)
    cheek_l, cheek_r = both(magnitude, SIDE_CHEEK)
    hist_l = _orientation_histogram(angle, magnitude, mask, LENS, mirrored=False)
    hist_r = _orientation_histogram(angle, magnitude, mask, _mirror(LENS), mirrored=True)
    return {
        "lens_asymmetry": abs(np.log((lens_l + 1) / (lens_r + 1))),
        "temple_asymmetry": abs(np.log((temple_l + 1) / (temple_r + 1))),
        "orientation_asymmetry": float(np.abs(hist_l - hist_r).sum()),
        "light_asymmetry": abs(np.log((cheek_l + 1) / (cheek_r + 1))),
    }


def _mirror(frac: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = frac
    return (1 - x1, y0, 1 - x0, y1)


def _orientation_histogram(angle: np.ndarray, magnitude: np.ndarray, mask: np.ndarray,
                           frac: tuple[float, float, float, float], *, mirrored: bool) -> np.ndarray:
    """Magnitude-weighted histogram of edge orientations (mod 180°), mirrored if asked."""
    theta = np.mod(_region(angle, frac), np.pi)
    if mirrored:
        theta = np.mod(np.pi - theta, np.pi)
    weights = _region(magnitude, frac) * _region(mask, frac)
    hist, _ = np.histogram(theta, bins=8, range=(0, np.pi), weights=weights)
    total = hist.sum()
    return hist / total if total > 0 else hist


def halves(band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The left half and the mirrored right half of a band centred on the midline."""
    half = band.shape[1] // 2
    return band[:, :half], band[:, -half:][:, ::-1]


def _symmetric(valid: np.ndarray) -> np.ndarray:
    """Pixels valid on both sides of the midline."""
    both: np.ndarray = valid & valid[:, ::-1]
    return both


def _mirror_dissimilarity(band: np.ndarray, valid: np.ndarray) -> float:
    """1 - best normalised correlation of the left half with the mirrored right half, over
    shifts of up to ``MAX_SHIFT`` pixels (each correlation over the valid pixels only, both
    sides less their mean there)."""
    left, right = halves(cv2.GaussianBlur(band, (0, 0), 1.0))
    mask, _ = halves(valid)
    s = MAX_SHIFT
    core, core_mask = left[s:-s, s:-s], mask[s:-s, s:-s]
    if core_mask.sum() < 50:
        return float("nan")
    # Every shift at once: matchTemplate's masked TM_CCOEFF_NORMED is exactly that correlation.
    scores = cv2.matchTemplate(np.ascontiguousarray(right), np.ascontiguousarray(core), cv2.TM_CCOEFF_NORMED,
                               mask=core_mask.astype(np.float32))
    scores = np.where(np.isfinite(scores), scores, 0.0)  # a flat window: no correlation
    return 1.0 - float(min(scores.max(), 1.0))


def _masked_mean(array: np.ndarray, valid: np.ndarray, frac: tuple[float, float, float, float]) -> float:
    values = _region(array, frac)[_region(valid, frac)]
    return float(values.mean()) if values.size else 0.0


def _masked_row_max(array: np.ndarray, valid: np.ndarray, frac: tuple[float, float, float, float]) -> float:
    """The strongest row (a horizontal frame line) of a region, by its valid pixels' mean."""
    region, mask = _region(array, frac), _region(valid, frac)
    counts = mask.sum(axis=1)
    rows = (region * mask).sum(axis=1) / np.maximum(counts, 1)
    rows = rows[counts >= 0.5 * mask.shape[1]]
    return float(rows.max()) if rows.size else 0.0


def _region(array: np.ndarray, frac: tuple[float, float, float, float]) -> np.ndarray:
    h, w = array.shape[:2]
    x0, y0, x1, y1 = frac
    return array[round(y0 * h): round(y1 * h), round(x0 * w): round(x1 * w)]


SPEC = CheckSpec(
    name="glasses",
    build=lambda device="cpu": GlassesCheck(),
    flags=(Flag(
        FLAG,
        description="eyeglasses whose left and right halves disagree; fires on up to 0 % of ordinary real "
                    "photos (and rarely on GAN faces: weak evidence)",
        words="mismatched glasses",
        campaign="wear glasses whose two halves disagree",
    ),),
    csv_columns=("score", "present", "presence", "asymmetry"),
    presentation=Presentation(
        title="Glasses: do the two halves agree?",
        labels={
            "present": "eyeglasses found",
            "presence": "glasses probability",
            "asymmetry": "eye-band asymmetry (1 - mirror correlation)",
            "control_asymmetry": "same, cheeks and mouth (baseline)",
            "asymmetry_excess": "asymmetry above the baseline",
            "lens_asymmetry": "lens-rim asymmetry",
            "temple_asymmetry": "temple-arm asymmetry",
            "orientation_asymmetry": "edge-orientation asymmetry",
            "light_asymmetry": "lighting asymmetry (baseline)",
        },
        legend="Eye band of the landmark-aligned face: left half | right half mirrored | "
               "difference of their edge strength (bright = an edge on one side only).",
        file="glasses.png",
        file_legend="eye band of the aligned face: left half | right half mirrored | difference of "
                    "edge strength (bright = edges on one side only)",
        embed_side=384,
    ),
)
