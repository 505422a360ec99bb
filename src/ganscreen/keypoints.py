"""Keypoint verification of candidate near-duplicates: is photo B a (cropped, rotated,
mirrored, colour-shifted, re-compressed) copy of photo A?

Perceptual hashes (:mod:`ganscreen.hashing`) find resized, re-compressed and colour-filtered
copies, but a crop of a quarter of the picture or a small rotation moves a hash far. For the
pairs a looser hash search proposes, this module decides with geometry and pixels:

1. both photos are reduced to grayscale at ``WORK_SIDE`` pixels on the longer side, and ORB
   keypoints are found in each, and in the mirror image of each;
2. descriptors are matched both ways' nearest neighbour with Lowe's ratio test, and a
   similarity transform (scale, rotation, shift: :func:`cv2.estimateAffinePartial2D`, RANSAC)
   is fitted to the matches, once for B and once for B mirrored; the fit with more inliers is
   kept, if its scale and rotation are ones a re-posted copy could have;
3. B is warped onto A with that transform and the two are compared pixel by pixel where they
   overlap: the normalised correlation of a band-pass (difference of Gaussians) of both.

Step 3 is what keeps different faces apart. Many GAN faces are aligned identically (eyes at
the same pixels), so their eye corners and nostrils match as keypoints under a transform near
the identity, with dozens of RANSAC inliers; but hair strands, skin texture and the backdrop
differ, so the band-passed pixels do not correlate. The correlation is taken tile by tile
and the median kept, so that one strong feature (two smiles' teeth) cannot carry a pair.
Colour shifts and JPEG change neither much: the band-pass drops colour and brightness, the
correlation ignores contrast. Measured (``scripts/measure_hash_threshold.py --verify``,
docs/campaign.md): copies cropped by up to 25 %, rotated, mirrored, colour-shifted and
JPEG-compressed keep 99.5 % of their matches at 0.78, the threshold, which is above every
StyleGAN style-mixing sibling pair measured (up to 0.75: same pose and backdrop, another
face).

Candidates that the hashes miss (a quarter cropped off a tightly framed face moves even the
aligned-face hash far, and often loses the face) come from the keypoints themselves: each
photo's :func:`signature` is a set of short keys, ``SIGNATURE_TABLES`` fixed selections of
``SIGNATURE_BITS`` bits of each of its strongest ORB descriptors (plain and mirrored); a copy
shares dozens of exact keys with its original. :func:`vote_pairs` counts shared keys per pair
through an inverted index that ignores keys held by more than ``BUCKET_CAP`` photos (the
common patterns of flat or blurred regions, like stop words), so its cost grows with the
rare keys, not with all pairs.

Everything is deterministic (OpenCV's RANSAC seeds its own generator on every call).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "BAND",
    "BUCKET_CAP",
    "MAX_KEYPOINTS",
    "MAX_ROTATION",
    "MIN_CORRELATION",
    "MIN_INLIERS",
    "MIN_OVERLAP",
    "MIN_VOTES",
    "RATIO",
    "REPROJECTION",
    "SCALE_RANGE",
    "SIGNATURE_BITS",
    "SIGNATURE_KEYPOINTS",
    "SIGNATURE_TABLES",
    "TILES",
    "WORK_SIDE",
    "FeatureCache",
    "Features",
    "Keypoints",
    "Match",
    "correlation",
    "extract",
    "match",
    "signature",
    "vote_pairs",
    "working_gray",
]

# Longer side of the working image. Large enough for ORB to find detail in a face photo,
# small enough that a pair is verified in a few milliseconds.
WORK_SIDE = 320
MAX_KEYPOINTS = 400
# Lowe's ratio test: the best match must be clearly better than the second best.
RATIO = 0.8
# RANSAC inlier distance, in working-image pixels: a true copy maps to within resampling error.
REPROJECTION = 3.0
# Fewest RANSAC inliers for a transform worth checking at all.
MIN_INLIERS = 8
# A re-posted copy is scaled (cropped, resized) and at most slightly rotated.
SCALE_RANGE = (0.5, 2.0)
MAX_ROTATION = 20.0  # degrees
# The overlap must cover this much of the smaller photo for the correlation to mean much.
MIN_OVERLAP = 0.2
# Band-pass (difference of Gaussians, sigmas in working pixels) for the pixel comparison.
BAND = (1.0, 3.0)
# The overlap is compared in TILES x TILES tiles.
TILES = 5
# Verified copy: tile-median band-passed correlation at least this (see the module docstring).
MIN_CORRELATION = 0.78


# Signature: the strongest keypoints of each orientation, and the bit selections keyed.
SIGNATURE_KEYPOINTS = 150
SIGNATURE_TABLES = 8
SIGNATURE_BITS = 32
BUCKET_CAP = 20
# A pair needs this many shared keys to be a candidate at all.
MIN_VOTES = 4
_SELECTIONS = np.stack([np.random.default_rng(1000 + t).permutation(256)[:SIGNATURE_BITS]
                        for t in range(SIGNATURE_TABLES)])
_WEIGHTS = np.left_shift(np.uint64(1), np.arange(SIGNATURE_BITS, dtype=np.uint64))


@dataclass(frozen=True, slots=True)
class Keypoints:
    """ORB keypoints (working-image pixels) and their 32-byte descriptors."""

    points: np.ndarray  # (n, 2) float32
    descriptors: np.ndarray  # (n, 32) uint8


@dataclass(frozen=True, slots=True)
class Features:
    """What verification needs of one photo: its working image and keypoints, plain and mirrored."""

    gray: np.ndarray  # (h, w) uint8, longer side WORK_SIDE
    plain: Keypoints
    mirrored: Keypoints

    @property
    def nbytes(self) -> int:
        return int(self.gray.nbytes + sum(k.points.nbytes + k.descriptors.nbytes
                                          for k in (self.plain, self.mirrored)))


@dataclass(frozen=True, slots=True)
class Match:
    """The best transform found from photo A to photo B, and how well the pixels agree under it."""

    inliers: int
    correlation: float
    mirrored: bool
    scale: float  # B's working pixels per A's working pixel
    rotation: float  # degrees

    @property
    def verified(self) -> bool:
        return self.inliers >= MIN_INLIERS and self.correlation >= MIN_CORRELATION


def working_gray(rgb: np.ndarray, side: int = WORK_SIDE) -> np.ndarray:
    """``rgb`` (uint8, or already grayscale) as grayscale with its longer side ``side``."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    h, w = gray.shape
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(gray, size, interpolation=interpolation))


def _orb() -> cv2.ORB:
    return cv2.ORB.create(nfeatures=MAX_KEYPOINTS, scaleFactor=1.2, nlevels=8, edgeThreshold=15,
                          patchSize=31, fastThreshold=10)


def _keypoints(gray: np.ndarray, orb: cv2.ORB) -> Keypoints:
    found, descriptors = orb.detectAndCompute(gray, None)
    if descriptors is None or not found:
        return Keypoints(np.empty((0, 2), np.float32), np.empty((0, 32), np.uint8))
    points = np.array([k.pt for k in found], np.float32).reshape(-1, 2)
    return Keypoints(points, np.ascontiguousarray(descriptors, dtype=np.uint8))


def extract(rgb: np.ndarray) -> Features:
    """The verification features of a photo (RGB or grayscale uint8)."""
    gray = working_gray(rgb)
    orb = _orb()
    return Features(gray=gray, plain=_keypoints(gray, orb),
                    mirrored=_keypoints(np.ascontiguousarray(gray[:, ::-1]), orb))


def _strongest(gray: np.ndarray, orb: cv2.ORB) -> np.ndarray:
    found, descriptors = orb.detectAndCompute(gray, None)
    if descriptors is None or not found:
        return np.empty((0, 32), np.uint8)
    order = np.argsort([-k.response for k in found], kind="stable")[:SIGNATURE_KEYPOINTS]
    return descriptors[order]


def signature(rgb: np.ndarray) -> np.ndarray:
    """The sorted distinct keys (uint64: table in the high bits) of a photo's strongest
    keypoints, plain and mirrored, for :func:`vote_pairs`."""
    gray = working_gray(rgb)
    orb = _orb()
    descriptors = np.concatenate([_strongest(gray, orb), _strongest(np.ascontiguousarray(gray[:, ::-1]), orb)])
    bits = np.unpackbits(descriptors, axis=1).astype(np.uint64)
    keys = [(bits[:, sel] * _WEIGHTS).sum(axis=1, dtype=np.uint64) | np.uint64(t << SIGNATURE_BITS)
            for t, sel in enumerate(_SELECTIONS)]
    return np.unique(np.concatenate(keys)) if keys else np.empty(0, np.uint64)


def vote_pairs(signatures: Sequence[np.ndarray | None], *, cap: int = BUCKET_CAP,
               min_votes: int = MIN_VOTES) -> np.ndarray:
    """Photo pairs ``(a, b, votes)``, ``a < b``, sharing at least ``min_votes`` keys held by at
    most ``cap`` photos; sorted by ``(-votes, a, b)``."""
    n = len(signatures)
    parts = [(s, i) for i, s in enumerate(signatures) if s is not None and s.size]
    if len(parts) < 2:
        return np.empty((0, 3), np.int64)
    keys = np.concatenate([s for s, _ in parts])
    owner = np.concatenate([np.full(s.size, i, np.int64) for s, i in parts])
    order = np.lexsort((owner, keys))
    keys, owner = keys[order], owner[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    sizes = np.diff(np.r_[starts, keys.size])
    codes = []
    for size in range(2, cap + 1):
        at = starts[sizes == size]
        if not at.size:
            continue
        i, j = np.triu_indices(size, 1)
        a, b = owner[at[:, None] + i], owner[at[:, None] + j]  # a < b: owners sorted in a bucket
        codes.append((a * n + b).reshape(-1))
    if not codes:
        return np.empty((0, 3), np.int64)
    pair, votes = np.unique(np.concatenate(codes), return_counts=True)
    keep = votes >= min_votes
    pair, votes = pair[keep], votes[keep]
    out = np.stack([pair // n, pair % n, votes], 1).astype(np.int64)
    return out[np.lexsort((out[:, 1], out[:, 0], -out[:, 2]))]


def _ratio_matches(a: Keypoints, b: Keypoints) -> tuple[np.ndarray, np.ndarray]:
    """Matched point pairs (A's points, B's points) that pass the ratio test."""
    if len(a.descriptors) < 2 or len(b.descriptors) < 2:
        return np.empty((0, 2), np.float32), np.empty((0, 2), np.float32)
    knn = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(a.descriptors, b.descriptors, k=2)
    good = [(m[0].queryIdx, m[0].trainIdx) for m in knn
            if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
    if not good:
        return np.empty((0, 2), np.float32), np.empty((0, 2), np.float32)
    qi, ti = np.array(good, np.int64).T
    return a.points[qi], b.points[ti]


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, int] | None:
    if len(src) < 3:
        return None
    matrix, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                                  ransacReprojThreshold=REPROJECTION,
                                                  maxIters=2000, confidence=0.995, refineIters=10)
    if matrix is None or inliers is None:
        return None
    return matrix, int(inliers.sum())


def _band(gray: np.ndarray) -> np.ndarray:
    g = gray.astype(np.float32)
    return cv2.GaussianBlur(g, (0, 0), BAND[0]) - cv2.GaussianBlur(g, (0, 0), BAND[1])


def correlation(a: np.ndarray, b: np.ndarray, matrix: np.ndarray) -> float:
    """Band-passed normalised correlation of ``a`` and ``b`` warped onto it (``matrix``: a to b)."""
    h, w = a.shape
    flags = cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(b, matrix, (w, h), flags=cv2.INTER_LINEAR | flags)
    inside = cv2.warpAffine(np.full(b.shape, 255, np.uint8), matrix, (w, h), flags=cv2.INTER_NEAREST | flags)
    # Away from the overlap's edge, where the band-pass would see the border.
    margin = 2 * round(3 * BAND[1]) + 1
    valid = cv2.erode(inside, np.ones((margin, margin), np.uint8)) > 0
    if valid.sum() < MIN_OVERLAP * min(a.size, b.size):
        return 0.0
    x, y = _band(a), _band(warped)
    # Tile by tile, the median: a copy agrees everywhere, two different smiles only where
    # the teeth are (one strong tile would dominate a single correlation over the overlap).
    rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
    ys = np.linspace(rows[0], rows[-1] + 1, TILES + 1).round().astype(int)
    xs = np.linspace(cols[0], cols[-1] + 1, TILES + 1).round().astype(int)
    scores = []
    for y0, y1 in itertools.pairwise(ys):
        for x0, x1 in itertools.pairwise(xs):
            v = valid[y0:y1, x0:x1]
            if v.sum() < 0.5 * v.size or v.sum() < 16:
                continue
            scores.append(_ncc(x[y0:y1, x0:x1][v], y[y0:y1, x0:x1][v]))
    return float(np.median(scores)) if scores else 0.0


def _ncc(x: np.ndarray, y: np.ndarray) -> float:
    x = x.astype(np.float64) - x.mean()
    y = y.astype(np.float64) - y.mean()
    denominator = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denominator) if denominator > 0 else 0.0


def match(a: Features, b: Features) -> Match | None:
    """The best plausible transform from ``a`` to ``b`` (plain or mirrored) and its pixel agreement."""
    best: tuple[int, bool, np.ndarray] | None = None
    for mirrored, keys in ((False, b.plain), (True, b.mirrored)):
        fit = _similarity(*_ratio_matches(a.plain, keys))
        if fit is None:
            continue
        matrix, inliers = fit
        scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
        rotation = float(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0])))
        if not (SCALE_RANGE[0] <= scale <= SCALE_RANGE[1] and abs(rotation) <= MAX_ROTATION):
            continue
        if best is None or inliers > best[0]:
            best = (inliers, mirrored, matrix)
    if best is None:
        return None
    inliers, mirrored, matrix = best
    target = np.ascontiguousarray(b.gray[:, ::-1]) if mirrored else b.gray
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    rotation = float(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0])))
    score = correlation(a.gray, target, matrix) if inliers >= MIN_INLIERS else 0.0
    return Match(inliers=inliers, correlation=round(score, 4), mirrored=mirrored, scale=scale, rotation=rotation)


class FeatureCache:
    """Features by photo index, computed on first use by ``load`` (None: photo unreadable).

    Holds at most ``capacity`` photos (least recently used dropped first); features are a pure
    function of the photo, so a photo computed twice gives the same answer.
    """

    def __init__(self, load: Callable[[int], np.ndarray | None], capacity: int = 2048) -> None:
        self._load = load
        self._capacity = capacity
        self._items: OrderedDict[int, Features | None] = OrderedDict()
        self.computed = 0

    def get(self, index: int) -> Features | None:
        if index in self._items:
            self._items.move_to_end(index)
            return self._items[index]
        rgb = self._load(index)
        features = None if rgb is None else extract(rgb)
        self.computed += 1
        self._items[index] = features
        if len(self._items) > self._capacity:
            self._items.popitem(last=False)
        return features

    def verify(self, a: int, b: int) -> Match | None:
        """The match of photo ``a`` with photo ``b`` (None when either has no features)."""
        fa, fb = self.get(a), self.get(b)
        if fa is None or fb is None:
            return None
        return match(fa, fb)
