"""Landmark-position regularity: does the face sit where StyleGAN puts every face?

StyleGAN's training data (FFHQ) was aligned so the eyes land at nearly fixed positions of
the square frame, and the generator reproduces that. The template (``ffhq_template.json``)
holds those positions as fractions of the image size, fitted on MTCNN landmarks of GAN
images by ``scripts/fit_template.py``. Deviations are measured as fractions of the image
size (so uniform rescaling changes nothing), and reported in pixels and eye-distance units.

A re-crop (keep part of each side at some offset, resize) moves the eyes off the template
but keeps the face an axis-aligned scaling of a template face: per axis, the landmarks'
fractions ``n`` satisfy ``template = keep · n + offset``. The check fits ``keep`` and
``offset`` per axis (least squares, each landmark weighted by the template's spread), and
calls the face a re-crop of a StyleGAN frame (flag ``ffhq_recrop``) when the fitted window
keeps 60–125 % of each side (over 100 %: the faces' own proportions), leaves the original
frame by little, and the fit's residual (in template spreads) is small: the eyes level, the
nose and mouth where StyleGAN puts them relative to the eyes. The threshold is set on
ordinary real photos (``checks.json``). The score stays the template's alone.
"""

from __future__ import annotations

import math
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
    not_judged,
    sigmoid,
)
from ganscreen.checks._drawing import BOX, DETECTED, LINK, TEMPLATE, point

__all__ = [
    "CUT_OFF_MARGIN",
    "DRAWING_SIDE",
    "FLAG",
    "RECROP_FLAG",
    "RECROP_KEEP",
    "RECROP_MAX_OUTSIDE",
    "SECOND_FACE_AREA",
    "SPEC",
    "STEEPNESS",
    "GeometryCheck",
    "recrop_fit",
    "recrop_window",
]

FLAG = "ffhq_alignment"
RECROP_FLAG = "ffhq_recrop"
# Defaults of checks.json's geometry rule: a re-crop window keeps this share of each side
# (over 1: a face's own proportions differ from the template's) ...
RECROP_KEEP = (0.6, 1.25)
# ... and leaves the original frame by at most this much (fractions of its side, summed).
RECROP_MAX_OUTSIDE = 0.15
# A second face at least this large (relative to the primary) makes "the" face ambiguous.
SECOND_FACE_AREA = 0.5
# A face whose box runs this far (fraction of its size) past the border is cut off.
CUT_OFF_MARGIN = 0.05
# Steepness of the score around the on-template threshold, in log-error units.
STEEPNESS = 3.0


class GeometryCheck:
    name = "geometry"

    def __init__(self, template: Mapping[str, Any] | None = None,
                 params: Mapping[str, Any] | None = None) -> None:
        template = template if template is not None else load_json("ffhq_template.json")
        params = params if params is not None else load_json("checks.json").get("geometry", {})
        self.points = np.asarray(template["points"], np.float64)  # (5, 2) fractions of W, H
        # (5, 2) the GAN faces' spread around the template: the re-crop fit's weights
        self.spread = np.asarray(template.get("std", np.ones((5, 2))), np.float64)
        self.threshold = float(template["on_template_threshold"])
        self.recrop_threshold = float(params.get("recrop_threshold", 0.0))  # 0: never flags
        low, high = params.get("recrop_keep", RECROP_KEEP)
        self.recrop_keep = (float(low), float(high))
        self.recrop_max_outside = float(params.get("recrop_max_outside", RECROP_MAX_OUTSIDE))
        self.version = str(template["version"])

    def run(self, ctx: CheckContext) -> CheckResult:
        face = ctx.face
        if face is None:
            return not_judged("no face")
        height, width = ctx.image.shape[:2]
        if _cut_off(face.box, width, height):
            return not_judged("face cut off by the image border")
        if len(ctx.faces) > 1 and ctx.faces[1].area >= SECOND_FACE_AREA * face.area:
            return not_judged("several faces of similar size")

        size = np.array([width, height], np.float64)
        norm = face.landmarks.astype(np.float64) / size
        deviation = np.linalg.norm(norm - self.points, axis=1)  # per landmark, fraction of side
        deviation_px = np.linalg.norm(face.landmarks - self.points * size, axis=1)
        template_eye_px = float(np.linalg.norm((self.points[1] - self.points[0]) * size))
        eye_error = float(deviation[:2].max())
        score = sigmoid(STEEPNESS * (math.log(self.threshold) - math.log(max(eye_error, 1e-6))))
        measures = {
            "eye_error": eye_error,
            "eye_error_px": float(deviation_px[:2].max()),
            "eye_error_eyes": float(deviation_px[:2].max() / template_eye_px),
            "landmark_error_eyes": float(deviation_px.mean() / template_eye_px),
            "eye_distance_ratio": face.eye_distance / template_eye_px,
            "square": abs(width - height) <= 0.02 * max(width, height),
        }
        crop_error, keep, outside = recrop_fit(norm, self.points, self.spread)
        measures.update({"recrop_error": crop_error, "recrop_keep_x": keep[0], "recrop_keep_y": keep[1],
                         "recrop_outside": outside})
        if eye_error <= self.threshold:
            flags: tuple[str, ...] = (FLAG,)
        elif self._recrop(crop_error, keep, outside):
            flags = (RECROP_FLAG,)
        else:
            flags = ()
        return CheckResult(score=score, measures=measures, flags=flags)

    def _recrop(self, error: float, keep: tuple[float, float], outside: float) -> bool:
        low, high = self.recrop_keep
        return (error <= self.recrop_threshold and all(low <= k <= high for k in keep)
                and outside <= self.recrop_max_outside)

    def draw(self, ctx: CheckContext) -> Drawing:
        """The whole photo with the detected landmarks (cyan dots), the template points
        (magenta crosses), the on-template zone around each template eye (magenta
        ellipses: an eye inside its zone is on the template) and a yellow line from each
        detected eye to its template eye.

        The template is a set of fractions of the image's width and height, so it is drawn
        on the whole frame: that is where a StyleGAN face would have its eyes.
        """
        if ctx.face is None:
            raise ValueError("no face to draw")
        rgb, face = ctx.image, ctx.face
        h, w = rgb.shape[:2]
        scale = min(1.0, DRAWING_SIDE / max(h, w))
        # Draw on a canvas at least 384 px wide so marks stay visible on small photos.
        scale = max(scale, min(4.0, 384 / max(h, w)))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        canvas = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        canvas = np.ascontiguousarray(canvas)
        side = max(size)
        thick = max(1, round(side / 300))
        radius = max(3, round(side / 110))
        cw, ch = size
        points = self.points[:5] * np.array([cw, ch], np.float64)
        landmarks = face.landmarks.astype(np.float64) * scale
        x1, y1, x2, y2 = (face.box.astype(np.float64) * scale).tolist()
        cv2.rectangle(canvas, point((x1, y1)), point((x2, y2)), BOX, 1, cv2.LINE_AA)
        for eye in points[:2]:
            axes = (max(1, round(self.threshold * cw)), max(1, round(self.threshold * ch)))
            cv2.ellipse(canvas, point(eye), axes, 0, 0, 360, TEMPLATE, 1, cv2.LINE_AA)
        for detected, template in zip(landmarks[:2], points[:2], strict=True):
            cv2.line(canvas, point(detected), point(template), LINK, thick, cv2.LINE_AA)
        for template in points:
            cv2.drawMarker(canvas, point(template), TEMPLATE, cv2.MARKER_CROSS, 3 * radius, thick + 1,
                           cv2.LINE_AA)
        for landmark in landmarks:
            cv2.circle(canvas, point(landmark), radius + 1, (0, 0, 0), -1, cv2.LINE_AA)
            cv2.circle(canvas, point(landmark), radius, DETECTED, -1, cv2.LINE_AA)
        return Drawing(image=canvas, measures=(("on the template at or below (fraction)",
                                                f"{self.threshold:.4f}"),))


DRAWING_SIDE = 512  # longer side of the evidence drawing


def recrop_fit(norm: np.ndarray, points: np.ndarray, spread: np.ndarray) -> tuple[float, tuple[float, float], float]:
    """:func:`recrop_window` without the offsets: residual, kept shares, outside."""
    error, keep, _offset, outside = recrop_window(norm, points, spread)
    return error, keep, outside


def recrop_window(norm: np.ndarray, points: np.ndarray, spread: np.ndarray
                  ) -> tuple[float, tuple[float, float], tuple[float, float], float]:
    """Fit ``points ≈ keep · norm + offset`` per axis (weights 1 / spread): the residual's
    root mean square in spreads, the kept share of each side, the window's offsets, and how
    far the fitted window ``[offset, offset + keep]`` leaves the original frame (summed over
    its four edges)."""
    residuals, keeps, offsets, outside = [], [], [], 0.0
    for axis in (0, 1):
        weight = 1.0 / spread[:, axis]
        design = np.stack([norm[:, axis], np.ones(len(norm))], axis=1) * weight[:, None]
        (keep, offset), *_ = np.linalg.lstsq(design, points[:, axis] * weight, rcond=None)
        residuals.append((keep * norm[:, axis] + offset - points[:, axis]) * weight)
        keeps.append(float(keep))
        offsets.append(float(offset))
        outside += max(0.0, -offset) + max(0.0, offset + keep - 1.0)
    error = float(np.sqrt(np.mean(np.concatenate(residuals) ** 2)))
    return error, (keeps[0], keeps[1]), (offsets[0], offsets[1]), float(outside)


def _cut_off(box: np.ndarray, width: int, height: int) -> bool:
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = CUT_OFF_MARGIN * (x2 - x1), CUT_OFF_MARGIN * (y2 - y1)
    return x1 < -mx or y1 < -my or x2 > width + mx or y2 > height + my


SPEC = CheckSpec(
    name="geometry",
    build=lambda device="cpu": GeometryCheck(),
    flags=(Flag(
        FLAG,
        description="eyes sit on the FFHQ/StyleGAN alignment template (a generated face, or a photo "
                    "lifted from FFHQ-style datasets); fires on up to 4 % of ordinary real photos",
        words="FFHQ-aligned eyes",
        campaign="sit on the StyleGAN (FFHQ) alignment template",
    ), Flag(
        RECROP_FLAG,
        description="the face is a crop of a StyleGAN/FFHQ-aligned frame: eyes level and features "
                    "where StyleGAN puts them after an axis-aligned crop and resize (a re-cropped "
                    "generated face, or a crop of a dataset photo); fires on up to 0.6 % of ordinary real photos",
        words="re-cropped FFHQ frame",
        campaign="are crops of a StyleGAN (FFHQ) aligned frame",
    )),
    csv_columns=("score", "eye_error", "eye_error_px", "eye_error_eyes", "recrop_error"),
    presentation=Presentation(
        title="Geometry: eyes on the StyleGAN template?",
        labels={
            "eye_error_px": "eye deviation from the template (px)",
            "eye_error": "eye deviation (fraction of the image side)",
            "eye_error_eyes": "eye deviation (eye distances)",
            "landmark_error_eyes": "mean landmark deviation (eye distances)",
            "eye_distance_ratio": "eye distance / template's",
            "square": "square image",
            "recrop_error": "fit to the template after a re-crop (template spreads)",
            "recrop_keep_x": "re-crop: kept share of the width",
            "recrop_keep_y": "re-crop: kept share of the height",
            "recrop_outside": "re-crop window outside the frame (fraction)",
        },
        legend="Cyan dots: detected landmarks. Magenta crosses: where StyleGAN (FFHQ) puts them, "
               "as fractions of the frame. Magenta ellipses: the on-template zone of each eye. "
               "Yellow: each detected eye to its template eye.",
        file="geometry.png",
        file_legend="cyan dots: detected landmarks; magenta crosses: StyleGAN (FFHQ) template points; "
                    "magenta ellipses: on-template zone of each eye; yellow lines: each detected eye "
                    "to its template eye",
        embed_side=288,
    ),
)
