"""Candidate pairs for the campaign's reuse clustering: near perceptual hashes (banded
search over every hash value) and shared keypoint keys, each photo's closest few.
Private: :mod:`ganscreen.campaign` re-exports the public names."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ganscreen.hashing import PhotoHashes, near_unique


def _hash_entries(hashes: Sequence[PhotoHashes | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One entry per hash value: (owner photo, kind index, mirrored?, value)."""
    owner, kind, mirror, value = [], [], [], []
    for i, h in enumerate(hashes):
        if h is None:
            continue
        for k, pair in enumerate((h.image, h.face)):
            if pair is None:
                continue
            for m, v in enumerate(pair):
                owner.append(i)
                kind.append(k)
                mirror.append(m)
                value.append(v)
    return (np.asarray(owner, np.int64), np.asarray(kind, np.int64), np.asarray(mirror, bool),
            np.asarray(value, dtype=np.uint64))


def entry_pairs(hashes: Sequence[PhotoHashes | None], threshold: int) -> tuple[np.ndarray, ...]:
    """Hash entries (owner, kind, mirrored) and the entry pairs ``(ea, eb, distance)`` of
    different photos within ``threshold`` bits, of the same kind.

    Identical values chain to their value's first entry (distance 0), near values link
    through those first entries: the same connectivity as all pairs, without listing the
    pairs among thousands of identical copies.
    """
    own, knd, mir, values = _hash_entries(hashes)
    if not values.size:
        empty = np.empty(0, np.int64)
        return own, knd, mir, empty, empty, empty
    inverse, distances, pairs = near_unique(values, threshold, groups=knd)
    first = np.unique(inverse, return_index=True)[1]  # each value's first entry
    chain_a = first[inverse]
    rest = chain_a != np.arange(inverse.size)
    ea = np.concatenate([chain_a[rest], first[pairs[:, 0]]])
    eb = np.concatenate([np.flatnonzero(rest), first[pairs[:, 1]]])
    dist = np.concatenate([np.zeros(int(rest.sum()), np.int64), distances])
    useful = own[ea] != own[eb]
    return own, knd, mir, ea[useful], eb[useful], dist[useful]


def nearest_candidates(own: np.ndarray, ea: np.ndarray, eb: np.ndarray, dist: np.ndarray,
                       per_photo: int) -> np.ndarray:
    """Photo pairs ``(a, b, distance)``, ``a < b``, from entry pairs: each pair's closest
    distance, kept when it is among the ``per_photo`` closest of ``a`` or of ``b``; sorted
    by ``(distance, a, b)``. Bounds the verification work to ``per_photo`` pairs a photo
    however many loose neighbours it has."""
    pa, pb = own[ea], own[eb]
    a, b = np.minimum(pa, pb), np.maximum(pa, pb)
    keep = a != b
    a, b, d = a[keep], b[keep], dist[keep]
    if a.size == 0:
        return np.empty((0, 3), np.int64)
    order = np.lexsort((b, a, d))
    a, b, d = a[order], b[order], d[order]
    _, first = np.unique(np.stack([a, b], 1), axis=0, return_index=True)
    first.sort()  # back in (distance, a, b) order
    out = np.stack([a[first], b[first], d[first]], 1)
    return out[_best_per_photo(out[:, 0], out[:, 1], per_photo)]


def _best_per_photo(a: np.ndarray, b: np.ndarray, per_photo: int) -> np.ndarray:
    """Mask of the pairs (in priority order) among the first ``per_photo`` of ``a`` or of ``b``."""
    chosen = np.zeros(a.size, bool)
    for side in (a, b):
        order = np.lexsort((np.arange(a.size), side))  # by photo, then by priority
        ranked = side[order]
        rank = np.arange(a.size) - np.searchsorted(ranked, ranked, "left")
        chosen[order[rank < per_photo]] = True
    return chosen


def vote_candidates(hashes: Sequence[PhotoHashes | None], per_photo: int) -> np.ndarray:
    """Photo pairs ``(a, b, votes)`` sharing keypoint keys (:func:`ganscreen.keypoints.vote_pairs`),
    each photo's ``per_photo`` best; sorted by ``(-votes, a, b)``."""
    signatures = [None if h is None else h.keys for h in hashes]
    if sum(s is not None for s in signatures) < 2:
        return np.empty((0, 3), np.int64)
    from ganscreen.keypoints import vote_pairs

    pairs = vote_pairs(signatures)
    return pairs[_best_per_photo(pairs[:, 0], pairs[:, 1], per_photo)]
