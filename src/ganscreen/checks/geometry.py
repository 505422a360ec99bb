"""Landmark-position regularity: does the face sit where StyleGAN puts every face?

StyleGAN's training data (FFHQ) was aligned so the eyes land at nearly fixed positions of
the square frame, and the generator reproduces that. The template (``ffhq_template.json``)
holds those positions as fractions of the image size, fitted on MTCNN landmarks of GAN
images by ``scripts/fit_template.py``. Deviations are measured as fractions of the image
size (so uniform rescaling changes nothing), and reported in pixels and eye-distance units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ganscreen._assets import load_json
from ganscreen.checks import CheckContext, CheckResult, not_judged, sigmoid

__all__ = [
    "CUT_OFF_MARGIN",
    "FLAG",
    "SECOND_FACE_AREA",
    "STEEPNESS",
    "GeometryCheck",
]

FLAG = "ffhq_alignment"
# A second face at least this large (relative to the primary) makes "the" face ambiguous.
SECOND_FACE_AREA = 0.5
# A face whose box runs this far (fraction of its size) past the border is cut off.
CUT_OFF_MARGIN = 0.05
# Steepness of the score around the on-template threshold, in log-error units.
STEEPNESS = 3.0


class GeometryCheck:
    name = "geometry"

    def __init__(self, template: Mapping[str, Any] | None = None) -> None:
        template = template if template is not None else load_json("ffhq_template.json")
        self.points = np.asarray(template["points"], np.float64)  # (5, 2) fractions of W, H
        self.threshold = float(template["on_template_threshold"])
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
        flags = (FLAG,) if eye_error <= self.threshold else ()
        return CheckResult(score=score, measures=measures, flags=flags)


def _cut_off(box: np.ndarray, width: int, height: int) -> bool:
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = CUT_OFF_MARGIN * (x2 - x1), CUT_OFF_MARGIN * (y2 - y1)
    return x1 < -mx or y1 < -my or x2 > width + mx or y2 > height + my
