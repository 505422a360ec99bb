"""Tests for ganscreen.keypoints: verifying that one photo is an edited copy of another.

A copy is made of ``samples/astronaut.png`` the way reposted photos are edited (cropped,
rotated, mirrored, recoloured, re-compressed); it must verify against the original, and an
unrelated photo must not. The key votes are checked against a brute-force count.
"""

from __future__ import annotations

import io
import itertools
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from ganscreen.keypoints import (
    MIN_CORRELATION,
    MIN_INLIERS,
    MIN_VOTES,
    WORK_SIDE,
    FeatureCache,
    Match,
    correlation,
    extract,
    match,
    signature,
    vote_pairs,
    working_gray,
)


@pytest.fixture(scope="module")
def original(samples: Path) -> np.ndarray:
    return np.asarray(Image.open(samples / "astronaut.png").convert("RGB"))


@pytest.fixture(scope="module")
def unrelated(samples: Path) -> np.ndarray:
    return np.asarray(Image.open(samples / "chelsea_no_face.jpg").convert("RGB"))


def _repost(rgb: np.ndarray, *, crop: float = 0.15, degrees: float = 6.0, mirror: bool = False) -> np.ndarray:
    """``rgb`` cropped on every side, rotated, warmed, perhaps mirrored, saved as JPEG 70."""
    image = Image.fromarray(rgb)
    w, h = image.size
    image = image.rotate(degrees, resample=Image.Resampling.BILINEAR)
    image = image.crop((round(crop * w), round(crop * h), round((1 - crop) * w), round((1 - crop) * h)))
    image = image.resize((300, 300), Image.Resampling.LANCZOS)
    if mirror:
        image = ImageOps.mirror(image)
    r, g, b = image.split()
    image = Image.merge("RGB", (r.point(lambda v: min(255, v + 25)), g, b.point(lambda v: max(0, v - 15))))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=70)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


@pytest.mark.parametrize("mirror", [False, True], ids=["plain", "mirrored"])
def test_an_edited_copy_verifies_against_its_original(original: np.ndarray, mirror: bool) -> None:
    found = match(extract(original), extract(_repost(original, mirror=mirror)))
    assert found is not None and found.verified
    assert found.inliers >= MIN_INLIERS and found.correlation >= MIN_CORRELATION
    assert found.mirrored is mirror
    # 70 % of the 512 px side became 300 px; both are worked on at WORK_SIDE on the longer side.
    assert found.scale == pytest.approx(1 / 0.7, rel=0.1)
    assert abs(found.rotation) == pytest.approx(6.0, abs=2.0)


def test_an_unrelated_photo_does_not_verify(original: np.ndarray, unrelated: np.ndarray) -> None:
    found = match(extract(original), extract(unrelated))
    assert found is None or not found.verified


def test_verification_is_deterministic(original: np.ndarray) -> None:
    copy = _repost(original, mirror=True)
    assert match(extract(original), extract(copy)) == match(extract(original), extract(copy))


def test_correlation_is_one_for_the_same_pixels_and_low_for_others(original: np.ndarray,
                                                                  unrelated: np.ndarray) -> None:
    a, b = working_gray(original), working_gray(cv2.resize(unrelated, original.shape[1::-1]))
    identity = np.array([[1, 0, 0], [0, 1, 0]], np.float64)
    assert correlation(a, a, identity) == pytest.approx(1.0)
    assert correlation(a, b, identity) < 0.3
    far_away = np.array([[1, 0, 10 * WORK_SIDE], [0, 1, 0]], np.float64)
    assert correlation(a, a, far_away) == 0.0  # no overlap: nothing to compare


def test_verified_needs_both_inliers_and_correlation() -> None:
    assert Match(inliers=MIN_INLIERS, correlation=MIN_CORRELATION, mirrored=False, scale=1, rotation=0).verified
    assert not Match(inliers=MIN_INLIERS - 1, correlation=0.99, mirrored=False, scale=1, rotation=0).verified
    assert not Match(inliers=200, correlation=MIN_CORRELATION - 0.01, mirrored=False, scale=1, rotation=0).verified


def test_working_gray_has_the_working_size(original: np.ndarray, unrelated: np.ndarray) -> None:
    for rgb in (original, unrelated, original[:50, :20]):
        gray = working_gray(rgb)
        assert gray.ndim == 2 and gray.dtype == np.uint8 and max(gray.shape) == WORK_SIDE
    assert np.array_equal(working_gray(working_gray(original)), working_gray(original))


# --------------------------------------------------------------------------- key votes


def test_a_copy_shares_keys_and_an_unrelated_photo_does_not(original: np.ndarray, unrelated: np.ndarray) -> None:
    keys = [signature(original), signature(_repost(original, crop=0.2)), signature(unrelated)]
    assert all(k.dtype == np.uint64 and np.array_equal(k, np.unique(k)) for k in keys)
    pairs = {(a, b): votes for a, b, votes in vote_pairs(keys).tolist()}
    assert pairs.get((0, 1), 0) >= MIN_VOTES
    assert (0, 2) not in pairs and (1, 2) not in pairs


def _brute_votes(signatures: list[np.ndarray | None], cap: int, min_votes: int) -> list[list[int]]:
    holders = Counter(k for s in signatures if s is not None for k in set(s.tolist()))
    out = []
    for a, b in itertools.combinations(range(len(signatures)), 2):
        sa, sb = signatures[a], signatures[b]
        if sa is None or sb is None:
            continue
        votes = sum(1 for k in set(sa.tolist()) & set(sb.tolist()) if holders[k] <= cap)
        if votes >= min_votes:
            out.append([a, b, votes])
    return sorted(out, key=lambda p: (-p[2], p[0], p[1]))


@settings(max_examples=80, deadline=None)
@given(sets=st.lists(st.one_of(st.none(), st.sets(st.integers(0, 40), max_size=25)), max_size=14),
       cap=st.integers(2, 6), min_votes=st.integers(1, 4))
def test_vote_pairs_counts_exactly_the_shared_rare_keys(sets: list[set[int] | None], cap: int,
                                                        min_votes: int) -> None:
    signatures = [None if s is None else np.array(sorted(s), np.uint64) for s in sets]
    assert vote_pairs(signatures, cap=cap, min_votes=min_votes).tolist() == \
        _brute_votes(signatures, cap, min_votes)


# --------------------------------------------------------------------------- cache


def test_feature_cache_computes_once_and_drops_the_least_recently_used(original: np.ndarray) -> None:
    loads: list[int] = []

    def load(index: int) -> np.ndarray | None:
        loads.append(index)
        return None if index == 9 else original

    cache = FeatureCache(load, capacity=2)
    first = cache.get(0)
    assert first is not None and cache.get(0) is first and loads == [0]
    cache.get(1)
    cache.get(0)  # 0 is now the most recently used: 1 goes first
    cache.get(2)
    cache.get(0)
    assert loads == [0, 1, 2]
    cache.get(1)
    assert loads == [0, 1, 2, 1] and cache.computed == 4
    assert cache.get(9) is None and cache.verify(0, 9) is None
    found = cache.verify(0, 1)
    assert found is not None and found.verified  # the same photo
