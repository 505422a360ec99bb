"""Face detection (MTCNN, five landmarks) and landmark alignment.

Landmark order follows facenet-pytorch: the eye on the image's left, the eye on the image's
right, the nose tip, the left and the right mouth corner, each ``(x, y)`` in pixels of the
original image.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np
import torch
from PIL import Image

__all__ = [
    "CANONICAL_LANDMARKS",
    "CUDA_BUCKET",
    "DETECT_MAX_SIDE",
    "MIN_CONFIDENCE",
    "MIN_FACE_FRACTION",
    "MIN_FACE_PIXELS",
    "AlignedFace",
    "Face",
    "FaceDetector",
    "Landmark",
    "align_face",
    "ffhq_align",
    "ffhq_quad",
    "primary_face",
    "resolve_device",
    "similarity_transform",
    "to_pil",
]

# Profile photos rarely need more than this many pixels to find the face; larger images are
# downscaled for detection only and landmarks mapped back to full resolution.
DETECT_MAX_SIDE = 1024
# A face is "confident" above this MTCNN probability; weaker boxes are ignored entirely.
MIN_CONFIDENCE = 0.90
# Smallest face worth screening, as a fraction of the detection image's shorter side.
MIN_FACE_FRACTION = 0.06
# Faces smaller than this many pixels are not screened (MTCNN's floor is 12).
MIN_FACE_PIXELS = 20
# On CUDA, detection images are padded up to multiples of this many pixels so that photos
# of similar sizes share one MTCNN batch.
CUDA_BUCKET = 64


class Landmark(IntEnum):
    LEFT_EYE = 0
    RIGHT_EYE = 1
    NOSE = 2
    MOUTH_LEFT = 3
    MOUTH_RIGHT = 4


@dataclass(frozen=True, slots=True)
class Face:
    """One detected face in original-image pixels (float32)."""

    box: np.ndarray  # (4,) x1, y1, x2, y2
    landmarks: np.ndarray  # (5, 2) x, y in Landmark order
    confidence: float

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.landmarks[Landmark.RIGHT_EYE] - self.landmarks[Landmark.LEFT_EYE]))

    def to_record(self) -> dict[str, object]:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "confidence": round(self.confidence, 5),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
        }


def primary_face(faces: Sequence[Face]) -> Face | None:
    """The largest confident face, or ``None``."""
    return max(faces, key=lambda f: f.area, default=None)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Map ``auto``/``None`` to CUDA when available, else CPU; validate explicit choices."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was requested but no CUDA device is available")
    return dev


class FaceDetector:
    """facenet-pytorch's MTCNN with batching over same-sized images.

    MTCNN's pretrained weights ship inside the facenet-pytorch wheel, so nothing downloads.
    """

    def __init__(self, *, device: str | torch.device | None = "cpu",
                 max_side: int = DETECT_MAX_SIDE, min_confidence: float = MIN_CONFIDENCE,
                 bucket: int | None | str = "auto") -> None:
        """``bucket``: batch images of similar size together by padding them (black, at
        the bottom and right) up to a multiple of this many pixels; ``None`` batches only
        images of exactly the same size. ``"auto"``: 64 on CUDA, where a batch costs about
        what one image costs, and ``None`` on the CPU, where batching gains little and
        padding would only add work."""
        from facenet_pytorch import MTCNN

        from ganscreen._assets import verify_mtcnn

        verify_mtcnn()  # before torch.load reads them: altered weights would find no faces
        self.device = resolve_device(device)
        self.max_side = max_side
        self.min_confidence = min_confidence
        if bucket == "auto":
            bucket = CUDA_BUCKET if self.device.type == "cuda" else None
        if bucket is not None and (not isinstance(bucket, int) or bucket < 1):
            raise ValueError("bucket must be a positive number of pixels, None or 'auto'")
        self.bucket: int | None = bucket
        self._mtcnn = MTCNN(keep_all=True, device=self.device, post_process=False)
        self._mtcnn.eval()

    def detect(self, image: np.ndarray) -> list[Face]:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Detect faces in RGB uint8 arrays; returns one list of faces per image.

        Images are downscaled to ``max_side`` and grouped by size so each group runs as
        one MTCNN batch.
        """
        return self.detect_prepared([self.prepare(img) for img in images])

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """The image as detection sees it (at most ``max_side`` pixels) and its scale.

        Thread-safe and separate from :meth:`detect_prepared` so that a pipeline can shrink
        images in worker threads while the model runs.
        """
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(image), scale

    def detect_prepared(self, prepared: Sequence[tuple[np.ndarray, float]]) -> list[list[Face]]:
        """Faces in images made by :meth:`prepare`, in original-image pixels."""
        results: list[list[Face]] = [[] for _ in prepared]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (small, _scale) in enumerate(prepared):
            if min(small.shape[:2]) >= MIN_FACE_PIXELS:  # smaller images cannot hold a face
                groups.setdefault(self._bucket(small.shape[:2]), []).append(i)
        for (h, w), members in groups.items():
            batch = np.zeros((len(members), h, w, 3), np.uint8)
            for j, i in enumerate(members):
                small = prepared[i][0]
                batch[j, : small.shape[0], : small.shape[1]] = small
            # From the (padded) group size, so an image's result never depends on its batch.
            min_face = max(MIN_FACE_PIXELS, int(MIN_FACE_FRACTION * min(h, w)))
            for j, (boxes, points) in enumerate(zip(*self._run_mtcnn(batch, min_face), strict=True)):
                results[members[j]] = self._faces(boxes, points, prepared[members[j]][1])
        return results

    def _bucket(self, shape: tuple[int, ...]) -> tuple[int, int]:
        h, w = int(shape[0]), int(shape[1])
        if self.bucket is None:
            return h, w
        b = self.bucket
        return -(-h // b) * b, -(-w // b) * b

    def _run_mtcnn(self, batch: np.ndarray, min_face: int) -> tuple[Sequence[np.ndarray], Sequence[np.ndarray]]:
        """MTCNN's three stages on a batch of same-sized images: per image, an (n, 5) array
        of boxes with probabilities and an (n, 5, 2) array of landmarks.

        facenet-pytorch's ``detect_face`` is called directly, with the minimum face size as
        an argument: ``MTCNN.detect`` reads it from the module, which threads would share.
        """
        from facenet_pytorch.models.utils.detect_face import detect_face

        m = self._mtcnn
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return detect_face(batch, min_face, m.pnet, m.rnet, m.onet, m.thresholds, m.factor, self.device)

    def _faces(self, boxes: object, points: object, scale: float) -> list[Face]:
        found = np.asarray(boxes, dtype=np.float32).reshape(-1, 5)
        if len(found) == 0:
            return []
        boxes_a = found[:, :4] / scale
        probs_a = found[:, 4]
        points_a = np.asarray(points, dtype=np.float32).reshape(-1, 5, 2) / scale
        faces = [
            Face(box=b, landmarks=p, confidence=float(c))
            for b, p, c in zip(boxes_a, points_a, probs_a, strict=True)
            if np.isfinite(c) and c >= self.min_confidence
        ]
        return sorted(faces, key=lambda f: -f.area)


# --------------------------------------------------------------------------- alignment

# Canonical landmark positions of an aligned face, normalised to the output square. They
# are the fitted FFHQ/StyleGAN template (models/ffhq_template.json), rounded and made
# left-right symmetric, so the aligned crop has StyleGAN's framing and a vertical midline.
CANONICAL_LANDMARKS = np.array(
    [[0.373, 0.471], [0.627, 0.471], [0.500, 0.624], [0.378, 0.730], [0.622, 0.730]],
    dtype=np.float32,
)


@dataclass(frozen=True, slots=True)
class AlignedFace:
    """A landmark-aligned square crop: eyes level, midline vertical at x = size / 2."""

    image: np.ndarray  # size x size x 3 uint8
    valid: np.ndarray  # size x size bool: True where the crop lies inside the source image
    matrix: np.ndarray  # 2 x 3 affine from source pixels to crop pixels

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    @property
    def coverage(self) -> float:
        return float(self.valid.mean())


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking src to dst."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    s, d = src - src_mean, dst - dst_mean
    # Complex-number formulation: d ≈ a * s with a = scale * e^{i theta}.
    sc = s[:, 0] + 1j * s[:, 1]
    dc = d[:, 0] + 1j * d[:, 1]
    a = np.vdot(sc, dc) / max(np.vdot(sc, sc).real, 1e-12)
    rot = np.array([[a.real, -a.imag], [a.imag, a.real]])
    shift = dst_mean - rot @ src_mean
    return np.hstack([rot, shift[:, None]]).astype(np.float32)


def align_face(image: np.ndarray, face: Face, *, size: int = 256) -> AlignedFace:
    """Warp the face onto the canonical landmark layout in a ``size``-pixel square."""
    matrix = similarity_transform(face.landmarks, CANONICAL_LANDMARKS * size)
    source, warp = image, matrix
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    if scale < 0.5:
        # Bilinear warping aliases when shrinking a lot: pre-shrink with area averaging.
        factor = min(1.0, 1.5 * scale)
        source = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        warp = matrix.copy()
        warp[:, :2] /= factor
    crop = cv2.warpAffine(source, warp, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return AlignedFace(image=crop, valid=_inside_mask(warp, size, source.shape[1], source.shape[0]),
                       matrix=matrix)


def _inside_mask(matrix: np.ndarray, size: int, width: int, height: int) -> np.ndarray:
    """Which pixels of a ``size`` square warped by ``matrix`` (source → crop) come from
    inside a ``width`` x ``height`` source: each crop pixel's source position, rounded to
    the nearest pixel, must lie in the image."""
    inverse = cv2.invertAffineTransform(matrix).astype(np.float64)
    grid = np.arange(size, dtype=np.float64)
    u, v = grid[None, :], grid[:, None]
    xs = inverse[0, 0] * u + inverse[0, 1] * v + inverse[0, 2]
    ys = inverse[1, 0] * u + inverse[1, 1] * v + inverse[1, 2]
    return (xs > -0.5) & (xs < width - 0.5) & (ys > -0.5) & (ys < height - 0.5)


def to_pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image, mode="RGB")


def ffhq_quad(face: Face) -> np.ndarray:
    """The FFHQ crop square for a face, as four corners (top-left, bottom-left,
    bottom-right, top-right) in source pixels.

    With e = left eye → right eye and m = eye midpoint → mouth midpoint, the square's
    half-side is max(2|e|, 1.8|m|), it is centred at eye midpoint + 0.1 m and rotated so
    the eyes are level: the preprocessing of StyleGAN's training data.
    """
    pts = face.landmarks.astype(np.float64)
    eye_mid = (pts[Landmark.LEFT_EYE] + pts[Landmark.RIGHT_EYE]) / 2
    mouth_mid = (pts[Landmark.MOUTH_LEFT] + pts[Landmark.MOUTH_RIGHT]) / 2
    e = pts[Landmark.RIGHT_EYE] - pts[Landmark.LEFT_EYE]
    m = mouth_mid - eye_mid
    x = e - np.array([-m[1], m[0]])  # blend the eye axis with the face axis turned 90°
    x /= np.hypot(*x)
    x *= max(2.0 * np.hypot(*e), 1.8 * np.hypot(*m))
    y = np.array([-x[1], x[0]])
    c = eye_mid + 0.1 * m
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def ffhq_align(image: np.ndarray, face: Face, *, size: int = 1024,
               border: int = cv2.BORDER_REFLECT_101) -> np.ndarray:
    """Crop ``image`` the way FFHQ (and so StyleGAN's output) is framed."""
    quad = ffhq_quad(face).astype(np.float32)
    dst = np.array([[0, 0], [0, size], [size, size]], np.float32)
    matrix = cv2.getAffineTransform(quad[:3], dst)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=border)
