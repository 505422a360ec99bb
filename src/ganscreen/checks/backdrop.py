"""Backdrop distortion: smeared, blob-like, incoherent or mirrored background texture.

StyleGAN backgrounds are painted by the same generator as the face: walls and shelves lose
their straight lines and become blobs, and FFHQ's reflect-padding taught it to mirror
content across invisible axes near the borders. Everything is measured on the image scaled
to a fixed size (so resolution does not matter), outside a generous ellipse around the
face and hair, above the shoulders.

Measures:
- ``coherence``: mean structure-tensor coherence of the textured background pixels; real
  scenes have straight, oriented edges (near 1), smeared GAN texture is isotropic (low).
- ``smear``: background high-frequency energy relative to the face's; low means the
  background is smoothed far more than the face.
- ``mirror``: best normalised correlation between a strip and its mirror image across an
  axis near a border (reflect-padding ghosts).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from ganscreen._assets import load_json
from ganscreen.checks import (
    CheckContext,
    CheckResult,
    CheckSpec,
    Drawing,
    Flag,
    Presentation,
    logistic_score,
    not_judged,
)
from ganscreen.checks._drawing import colormap

__all__ = [
    "FLAG",
    "MIN_BACKGROUND",
    "MIN_TEXTURED",
    "MIRROR_SPAN",
    "MIRROR_STRIP",
    "SPEC",
    "WORK_SIDE",
    "BackdropCheck",
    "masks",
    "measure",
    "mirror_score",
    "structure_tensor",
]

FLAG = "backdrop_distortion"
WORK_SIDE = 256  # the image's longer side during analysis
MIN_BACKGROUND = 0.10  # fraction of the image that must be background to judge
# Fraction of the background that must have texture above the noise floor to judge. A plain
# wall or a soft blur has no structure to distort; on the fit sources every backdrop flag fell
# on such a backdrop (textured fraction < 0.2: 10 % of GAN faces and 33 % of ordinary reals
# flagged, against none of either above it), so below it the check says it cannot judge.
MIN_TEXTURED = 0.20
MIRROR_STRIP = 12  # pixels on each side of a candidate mirror axis
MIRROR_SPAN = 0.30  # candidate axes lie within this fraction of the side from a border


class BackdropCheck:
    name = "backdrop"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        params = params if params is not None else load_json("checks.json")["backdrop"]
        self.model = params["model"]
        self.flag_threshold = float(params["flag_threshold"])

    def run(self, ctx: CheckContext) -> CheckResult:
        if ctx.face is None:
            return not_judged("no face")
        small, grey, background, face_region = _working_view(ctx)
        fraction = float(background.mean())
        if fraction < MIN_BACKGROUND:
            return not_judged("too little background around the face", background_fraction=fraction)
        measures = {"background_fraction": fraction, **measure(grey, background, face_region)}
        if measures["textured_fraction"] < MIN_TEXTURED:
            return not_judged("backdrop too plain to show distortion (a flat wall or a soft blur)", **measures)
        score = logistic_score(measures, self.model)
        flags = (FLAG,) if score >= self.flag_threshold else ()
        return CheckResult(score=score, measures=measures, flags=flags)

    def draw(self, ctx: CheckContext) -> Drawing:
        """The background :meth:`run` measures, with its distortion map.

        Face, hair and shoulders (outside the background mask) are dimmed and greyed; on the
        textured part of the background, colour shows the structure-tensor *incoherence*
        (1 - coherence): dark purple where edges run straight and oriented (as in real
        rooms), yellow where texture is isotropic, smeared or blob-like. Background too flat
        to have texture is left uncoloured.
        """
        if ctx.face is None:
            raise ValueError("no face to draw")
        small, grey, background, _face_region = _working_view(ctx)
        coherence, trace = structure_tensor(grey)
        textured = background & (trace > _noise_floor(trace, background))
        heat = colormap(np.clip(1.0 - coherence, 0, 1), cv2.COLORMAP_PLASMA)
        out = small.astype(np.float32)
        dimmed = 0.35 * np.repeat(grey[:, :, None], 3, axis=2)
        out[~background] = dimmed[~background]
        alpha = 0.65
        out[textured] = (1 - alpha) * out[textured] + alpha * heat[textured].astype(np.float32)
        image = np.clip(out, 0, 255).astype(np.uint8)
        contours, _ = cv2.findContours(background.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(image, contours, -1, (255, 255, 255), 1, cv2.LINE_AA)
        return Drawing(image=image)


def _working_view(ctx: CheckContext) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The image at ``WORK_SIDE`` (RGB and grey) and its background and face masks."""
    assert ctx.face is not None
    height, width = ctx.image.shape[:2]
    scale = WORK_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(ctx.image, size, interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    background, face_region = masks(grey.shape, ctx.face.box.astype(np.float64) * scale)
    return small, grey, background, face_region


def _noise_floor(trace: np.ndarray, background: np.ndarray) -> float:
    """Texture energy below which background counts as flat: the median of the
    background's, and never under sensor/JPEG noise."""
    return max(100.0, float(np.median(trace[background]))) if background.any() else 100.0


def masks(shape: tuple[int, ...], box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Background (outside face, hair and shoulders) and face masks for a face box."""
    h, w = shape[:2]
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    bw, bh = x2 - x1, y2 - y1
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # Face, hair and neck: an ellipse well beyond the box, raised to take in the hair.
    head = ((xx - cx) / (0.8 * bw)) ** 2 + ((yy - (cy - 0.15 * bh)) / (0.95 * bh)) ** 2 <= 1
    shoulders = yy > y2 + 0.1 * bh
    background = ~head & ~shoulders
    face = ((xx - cx) / (0.45 * bw)) ** 2 + ((yy - cy) / (0.45 * bh)) ** 2 <= 1
    return background, face


def structure_tensor(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coherence ``(l1 - l2) / (l1 + l2)`` and trace of the structure tensor of the lightly
    smoothed image (so sensor and JPEG noise do not count as texture), integrated over a
    few pixels."""
    smooth = cv2.GaussianBlur(grey, (0, 0), 1.0)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    jxx = cv2.GaussianBlur(gx * gx, (0, 0), 3.0)
    jyy = cv2.GaussianBlur(gy * gy, (0, 0), 3.0)
    jxy = cv2.GaussianBlur(gx * gy, (0, 0), 3.0)
    trace = jxx + jyy
    coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (trace + 1e-6)
    return coherence, trace


def measure(grey: np.ndarray, background: np.ndarray, face: np.ndarray) -> dict[str, float]:
    coherence, trace = structure_tensor(grey)
    # Textured = the more structured half of the background, and above a noise floor.
    textured = background & (trace > _noise_floor(trace, background))
    lap = np.abs(cv2.Laplacian(grey, cv2.CV_32F, ksize=3))
    face_hf = float(lap[face].mean()) if face.any() else 0.0
    bg_hf = float(lap[background].mean())
    return {
        "coherence": float(coherence[textured].mean()) if textured.sum() >= 50 else 1.0,
        "textured_fraction": float(textured.sum() / max(background.sum(), 1)),
        "smear": float(np.log((bg_hf + 0.5) / (face_hf + 0.5))),
        "mirror": mirror_score(grey),
    }


def mirror_score(grey: np.ndarray) -> float:
    """Best correlation of a strip with its mirror across an axis near any border.

    Each row's mean over the window is removed first, so structure running along the axis
    (a wall edge, a gradient) is not mistaken for a reflection across it.
    """
    best = 0.0
    smooth = cv2.GaussianBlur(grey, (0, 0), 1.0).astype(np.float64)
    k = MIRROR_STRIP
    for img in (np.ascontiguousarray(smooth.T), smooth):  # vertical axes, then horizontal ones
        n = img.shape[0]
        span = max(k + 1, int(MIRROR_SPAN * n))
        axes = np.array([*range(k, span), *range(n - span, n - k)])
        axes = axes[(axes >= k) & (axes <= n - k)]
        if axes.size:
            best = max(best, _mirror_correlations(img, axes, k))
    return best


def _mirror_correlations(img: np.ndarray, axes: np.ndarray, k: int) -> float:
    """Best correlation over ``axes`` of ``img[a-k:a]`` mirrored with ``img[a:a+k]`` (axes
    run along the first dimension), each line across the axis less its window mean, skipping sides with a standard deviation under 4.

    Computed for every axis at once from window sums, with l = x - m the centred pixels:
    sum(l_left * l_right) = P - k m², sum(l²) = Q - 2 m S + k m², where S, Q are a side's
    sum and sum of squares, P the sum of mirrored products and m the window's row mean.
    """
    lines = img.shape[1]
    # window[a] = sum of img[a : a + k] (box filters: numpy's cumsum down columns is slow)
    window = cv2.boxFilter(img, -1, (1, k), anchor=(0, 0), normalize=False, borderType=cv2.BORDER_CONSTANT)
    window_sq = cv2.boxFilter(img * img, -1, (1, k), anchor=(0, 0), normalize=False,
                              borderType=cv2.BORDER_CONSTANT)
    s_left, s_right = window[axes - k], window[axes]
    q_left, q_right = window_sq[axes - k], window_sq[axes]
    products = np.zeros_like(s_left)
    for i in range(k):
        products += img[axes - 1 - i] * img[axes + i]
    m = (s_left + s_right) / (2 * k)
    km2 = k * m * m
    cross = (products - km2).sum(axis=1)
    sq_left = (q_left - 2 * m * s_left + km2).sum(axis=1)
    sq_right = (q_right - 2 * m * s_right + km2).sum(axis=1)
    count = lines * k
    var_left = sq_left / count - ((s_left - k * m).sum(axis=1) / count) ** 2
    var_right = sq_right / count - ((s_right - k * m).sum(axis=1) / count) ** 2
    ok = (var_left >= 16.0) & (var_right >= 16.0)
    if not ok.any():
        return 0.0
    return float((cross[ok] / np.sqrt(sq_left[ok] * sq_right[ok])).max())


SPEC = CheckSpec(
    name="backdrop",
    build=lambda device="cpu": BackdropCheck(),
    flags=(Flag(
        FLAG,
        description="smeared, blob-like or mirrored background texture; fires on up to 0 % of ordinary "
                    "real photos (plain backdrops are not judged; near chance on unseen sources: weak evidence)",
        words="smeared backdrop",
        campaign="have a smeared or blob-like background",
    ),),
    csv_columns=("score", "coherence", "smear", "mirror"),
    presentation=Presentation(
        title="Backdrop: smeared or blob-like background?",
        labels={
            "coherence": "texture coherence (low = smeared, blob-like)",
            "smear": "background sharpness vs face (log; low = smoothed)",
            "mirror": "best mirror correlation near a border",
            "background_fraction": "background share of the image",
            "textured_fraction": "textured share of the background",
        },
        legend="The background the check measures (face, hair and shoulders dimmed). Colour on "
               "textured background: incoherence of the texture, from dark purple (straight, "
               "oriented edges) to yellow (isotropic, smeared or blob-like).",
        file="backdrop.png",
        file_legend="background region (face, hair and shoulders dimmed); colour = texture "
                    "incoherence (yellow = smeared or blob-like)",
        embed_side=256,
    ),
)
