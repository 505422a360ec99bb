"""Mirror-canonical orientation: a photo and its mirror image get the same verdict.

Face detection is not exactly mirror-symmetric (MTCNN's landmarks move by a pixel or so
when a photo is flipped), and nor are some measures, so a score near a threshold could
differ between a photo and its mirror copy, which is the cheapest edit an operator makes.
Every image is therefore screened in one of its two mirror orientations, chosen from the
pixels by a rule that picks the same pixels for the photo and for its mirror: the
orientation whose brightness leans right (the column-weighted sum of all samples is
positive), ties broken by comparing the two orientations' bytes. Face coordinates are
mapped back to the photo as given before they are reported.
"""

from __future__ import annotations

import numpy as np

from ganscreen.faces import Face

__all__ = ["mirror_face", "needs_mirror"]

# Landmark order (faces.Landmark): left eye, right eye, nose, mouth left, mouth right.
_MIRRORED_LANDMARKS = [1, 0, 2, 4, 3]


def _lean(rgb: np.ndarray) -> int:
    """Σ (2x − (W−1)) · column_sum(x), exact in integers: its sign flips with the image."""
    columns = rgb.sum(axis=(0, 2), dtype=np.int64)
    width = columns.shape[0]
    weights = 2 * np.arange(width, dtype=np.int64) - (width - 1)
    return int(columns @ weights)


def needs_mirror(rgb: np.ndarray) -> bool:
    """Whether ``rgb`` (H x W x C uint8) must be flipped left-right to be screened.

    Exactly one of an image and its mirror needs it, unless the two are identical."""
    lean = _lean(rgb)
    if lean != 0:
        return lean < 0
    return rgb[:, ::-1].tobytes() < rgb.tobytes()  # tobytes is C order for any view


def mirror_face(face: Face, width: int) -> Face:
    """``face`` found in the flipped image, in the coordinates of the unflipped one."""
    x1, y1, x2, y2 = (float(v) for v in face.box)
    box = np.array([width - x2, y1, width - x1, y2], np.float32)
    points = face.landmarks[_MIRRORED_LANDMARKS].astype(np.float32).copy()
    points[:, 0] = width - points[:, 0]
    return Face(box=box, landmarks=points, confidence=face.confidence)
