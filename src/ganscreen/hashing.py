"""Perceptual hashes of photos and of their faces, and a banded index to find near pairs.

Each photo gets two 64-bit DCT perceptual hashes (``imagehash.phash``), each also of the
mirrored picture so that a mirrored copy matches:

- ``image``: the whole picture (survives resizing, re-compression and colour filters);
- ``face``: the centre of the landmark-aligned face crop (:func:`ganscreen.faces.align_face`),
  which also survives cropping, since alignment undoes the new framing.

Two photos are near duplicates when either kind of hash is within ``threshold`` bits of the
other photo's hash of the same kind (plain or mirrored). :func:`near_pairs` finds all such
pairs without comparing every pair: the 64 bits are split into bands, and two hashes within
``threshold`` bits agree exactly on one of ``threshold + 1`` bands, or agree within one bit
on one of ``threshold // 2 + 1`` bands (pigeonhole), so only hashes whose band values match
(or are one bit apart) are compared; :func:`index_plan` picks the cheaper. Everything is
vectorised with numpy; candidates are checked on the full hash, so the result is exact.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageOps

from ganscreen.faces import Face, align_face

__all__ = [
    "ALIGNED_SIZE",
    "FACE_REGION",
    "FILL_SIDE",
    "HASH_BITS",
    "PhotoHashes",
    "UnionFind",
    "band_widths",
    "face_crop",
    "hamming",
    "hash_pair",
    "index_plan",
    "near_pairs",
    "near_unique",
    "phash64",
    "photo_hashes",
    "plan_bands",
    "to_hex",
]

HASH_BITS = 64
ALIGNED_SIZE = 256
# The part of the aligned crop that is hashed (fractions of its side): eyes, nose, mouth and
# cheeks, symmetric about the vertical midline so that mirroring maps it onto itself.
FACE_REGION = (0.18, 0.22, 0.82, 0.86)  # left, top, right, bottom
# The region is shrunk to this side before hashing (phash works on 32 x 32 anyway).
FILL_SIDE = 64


@dataclass(frozen=True, slots=True)
class PhotoHashes:
    """The hashes of one photo: ``(plain, mirrored)`` per kind; ``face`` is None without a face;
    ``keys``: the keypoint signature, when computed."""

    image: tuple[int, int]
    face: tuple[int, int] | None = None
    # Keypoint signature (:func:`ganscreen.keypoints.signature`) for the campaign's second stage.
    keys: np.ndarray | None = field(default=None, compare=False, repr=False)

    def to_record(self) -> dict[str, str | None]:
        return {"image": to_hex(self.image[0]), "face": None if self.face is None else to_hex(self.face[0])}


def to_hex(value: int) -> str:
    return f"{value:016x}"


def phash64(image: Image.Image) -> int:
    """The 64-bit DCT perceptual hash of ``image`` as an int (bit 63 = first hash bit)."""
    import imagehash

    bits = imagehash.phash(image, hash_size=8).hash.reshape(-1)
    return int("".join("1" if b else "0" for b in bits), 2)


def hash_pair(image: Image.Image) -> tuple[int, int]:
    """The hashes of ``image`` and of its mirror image."""
    return phash64(image), phash64(ImageOps.mirror(image))


def face_crop(rgb: np.ndarray, landmarks: Sequence[Sequence[float]]) -> np.ndarray:
    """The hashed region of the landmark-aligned face (RGB uint8)."""
    pts = np.asarray(landmarks, np.float32).reshape(5, 2)
    box = np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()], np.float32)
    aligned = align_face(rgb, Face(box=box, landmarks=pts, confidence=1.0), size=ALIGNED_SIZE)
    x1, y1, x2, y2 = (round(v * ALIGNED_SIZE) for v in FACE_REGION)
    crop = cv2.resize(aligned.image[y1:y2, x1:x2], (FILL_SIDE, FILL_SIDE), interpolation=cv2.INTER_AREA)
    valid = cv2.resize(aligned.valid[y1:y2, x1:x2].astype(np.uint8), (FILL_SIDE, FILL_SIDE),
                       interpolation=cv2.INTER_AREA)
    missing = (valid == 0).astype(np.uint8)
    if missing.any() and not missing.all():
        # Where the photo ends inside the region (a tight crop), fill in from the edge so a
        # black border does not dominate the hash.
        crop = cv2.inpaint(crop, missing, 3, cv2.INPAINT_TELEA)
    return crop


def photo_hashes(rgb: np.ndarray, landmarks: Sequence[Sequence[float]] | None = None) -> PhotoHashes:
    """The hashes of a photo (RGB uint8) and, given its face's five landmarks, of its face."""
    image = hash_pair(Image.fromarray(np.ascontiguousarray(rgb), mode="RGB"))
    face = None
    if landmarks is not None:
        face = hash_pair(Image.fromarray(np.ascontiguousarray(face_crop(rgb, landmarks)), mode="RGB"))
    return PhotoHashes(image=image, face=face)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


# --------------------------------------------------------------------------- banded index


def band_widths(bands: int, bits: int = HASH_BITS) -> list[int]:
    """``bands`` band widths, as equal as possible (wider first), summing to ``bits``."""
    if not 1 <= bands <= bits:
        raise ValueError(f"bands must be in 1..{bits}")
    return [bits // bands + (1 if i < bits % bands else 0) for i in range(bands)]


def plan_bands(threshold: int, radius: int) -> int:
    """The fewest bands with ``bands * (radius + 1) > threshold`` (at least 2: keys fit int64)."""
    return max(2, threshold // (radius + 1) + 1)


def index_plan(threshold: int, n: int) -> tuple[int, int]:
    """``(bands, radius)`` for ``n`` hashes: the cheapest exact banding for ``threshold``.

    With ``bands * (radius + 1) > threshold``, two hashes within ``threshold`` bits differ
    in at most ``radius`` bits on at least one band (pigeonhole), so it suffices to compare
    hashes whose band values are within ``radius`` bits: ``radius = 0`` is the classic
    ``threshold + 1`` exact bands; ``radius = 1`` or ``2`` allows fewer, wider bands, which
    keeps the buckets small for ``threshold`` near 10 (cost: probes x bucket pairs).
    """
    if not 0 <= threshold < HASH_BITS:
        raise ValueError(f"threshold must be in 0..{HASH_BITS - 1}")
    best: tuple[float, int, int] | None = None
    for radius in range(0, 4):
        bands = plan_bands(threshold, radius)
        narrow = min(band_widths(bands))
        probes = sum(math.comb(max(band_widths(bands)), i) for i in range(radius + 1))
        cost = bands * probes * (n * 24.0 + n * n / 2.0**narrow)
        if best is None or cost < best[0]:
            best = (cost, bands, radius)
    assert best is not None
    return best[1], best[2]


def near_pairs(hashes: np.ndarray, threshold: int, groups: np.ndarray | None = None, *,
               radius: int | None = None) -> np.ndarray:
    """All index pairs ``(i, j)``, ``i < j``, whose hashes differ in at most ``threshold`` bits.

    ``hashes`` is a 1-d array of 64-bit hashes (``uint64``, or ints below 2**64). With
    ``groups`` (one int per hash) only hashes of the same group are paired. Returns an
    ``(n, 2)`` int64 array sorted by ``(i, j)``: exactly the pairs a brute-force comparison
    finds. Identical hashes are collapsed first, so a photo copied thousands of times costs
    no more than one; the comparisons are bucketed by band, never all pairs. ``radius``
    forces the within-band search radius (default: :func:`index_plan`'s choice).
    """
    inverse, _, pairs_u = near_unique(hashes, threshold, groups, radius=radius)
    if inverse.size < 2:
        return np.empty((0, 2), np.int64)
    # Expand the unique-hash pairs (and the identical ones) back to the input indices.
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(int(inverse.max()) + 2))
    members = [order[starts[k]:starts[k + 1]] for k in range(starts.size - 1)]
    out: list[np.ndarray] = []
    for k in np.flatnonzero(np.diff(starts) > 1):
        m = members[k]
        i, j = np.triu_indices(m.size, 1)
        out.append(np.stack([m[i], m[j]], axis=1))
    for a, b in pairs_u:
        ma, mb = members[a], members[b]
        out.append(np.stack(np.meshgrid(ma, mb, indexing="ij"), axis=-1).reshape(-1, 2))
    if not out:
        return np.empty((0, 2), np.int64)
    pairs = np.sort(np.concatenate(out).astype(np.int64), axis=1)
    pairs = np.unique(pairs, axis=0)
    return pairs


def near_unique(hashes: np.ndarray, threshold: int, groups: np.ndarray | None = None, *,
                radius: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Near pairs among the distinct ``(group, hash)`` values (what clustering needs).

    Returns ``(inverse, distances, pairs)``: the index of each input's distinct value, and
    the pairs ``(a, b)``, ``a < b``, of distinct values within ``threshold`` bits with their
    distances. Inputs with the same value are identical (distance 0) and not listed as
    pairs, so thousands of copies of one photo cost nothing.
    """
    h = np.asarray(hashes, dtype=np.uint64).reshape(-1)
    g = np.zeros(h.shape, np.int64) if groups is None else np.asarray(groups, np.int64).reshape(-1)
    if g.shape != h.shape:
        raise ValueError("groups must have one entry per hash")
    if h.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, 2), np.int64)
    keys = np.stack([g, h.view(np.int64)], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    ug, uh = uniq[:, 0], uniq[:, 1].view(np.uint64)
    pairs = _unique_pairs(ug, uh, threshold, radius)
    distances = np.bitwise_count(uh[pairs[:, 0]] ^ uh[pairs[:, 1]]).astype(np.int64)
    return inverse.reshape(-1).astype(np.int64), distances, pairs


def _unique_pairs(groups: np.ndarray, hashes: np.ndarray, threshold: int,
                  radius: int | None = None) -> np.ndarray:
    """Pairs of distinct unique hashes within ``threshold`` bits, via banded lookups."""
    n = hashes.size
    if radius is None:
        bands, radius = index_plan(threshold, n)
    else:
        bands = plan_bands(threshold, radius)
    found: list[np.ndarray] = []
    shift = HASH_BITS
    # Group ids become the high bits of the lookup key, so buckets never mix groups.
    _, gid = np.unique(groups, return_inverse=True)
    gid = gid.reshape(-1).astype(np.int64)
    for width in band_widths(bands):
        shift -= width
        band = ((hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int64)
        keys = (gid << width) | band
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        for mask in _masks(width, radius):
            query = (gid << width) | (band ^ mask)
            lo = np.searchsorted(sorted_keys, query, "left")
            hi = np.searchsorted(sorted_keys, query, "right")
            found.extend(_expand(lo, hi, order, hashes, threshold))
    if not found:
        return np.empty((0, 2), np.int64)
    pairs = np.concatenate(found)
    return np.unique(pairs, axis=0)


def _masks(width: int, radius: int) -> list[int]:
    """Every ``width``-bit mask with at most ``radius`` bits set."""
    masks = [0]
    for r in range(1, radius + 1):
        for bits in itertools.combinations(range(width), r):
            masks.append(sum(1 << b for b in bits))
    return masks


def _expand(lo: np.ndarray, hi: np.ndarray, order: np.ndarray, hashes: np.ndarray, threshold: int,
            chunk: int = 4_000_000) -> list[np.ndarray]:
    """The pairs ``(i, order[k])``, ``lo[i] <= k < hi[i]``, ``i < order[k]``, within ``threshold``."""
    counts = hi - lo
    ends = np.cumsum(counts)
    total = int(ends[-1]) if ends.size else 0
    out: list[np.ndarray] = []
    start_i = 0
    while start_i < counts.size and total:
        # Take queries until about ``chunk`` candidate pairs, so memory stays bounded.
        base = int(ends[start_i - 1]) if start_i else 0
        stop_i = int(np.searchsorted(ends, base + chunk, "right"))
        stop_i = max(stop_i, start_i + 1)
        c = counts[start_i:stop_i]
        m = int(c.sum())
        if m:
            i = np.repeat(np.arange(start_i, stop_i), c)
            offsets = np.arange(m) - np.repeat(np.cumsum(c) - c, c)
            j = order[np.repeat(lo[start_i:stop_i], c) + offsets]
            keep = i < j
            i, j = i[keep], j[keep]
            close = np.bitwise_count(hashes[i] ^ hashes[j]) <= threshold
            if close.any():
                out.append(np.stack([i[close], j[close]], axis=1).astype(np.int64))
        start_i = stop_i
    return out


class UnionFind:
    """Disjoint sets over ``0..n-1`` (path halving, union by size)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> bool:
        """Join the sets of ``a`` and ``b``; True when they were separate."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        return True

    def groups(self) -> list[list[int]]:
        """The sets with more than one member, each sorted, ordered by their first member."""
        by_root: dict[int, list[int]] = {}
        for x in range(len(self.parent)):
            by_root.setdefault(self.find(x), []).append(x)
        return sorted((m for m in by_root.values() if len(m) > 1), key=lambda m: m[0])
