"""Tests for ganscreen.hashing: perceptual hashes of photos and faces, the banded index, UnionFind.

The hashes are taken of real images (``samples/``) and of copies edited the way reposted
profile photos are (re-compressed, resized, recoloured, re-cropped); the index is checked
against a brute-force comparison of every pair.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import imagehash
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter, ImageOps

from ganscreen.faces import FaceDetector, primary_face
from ganscreen.hashing import (
    HASH_BITS,
    PhotoHashes,
    UnionFind,
    band_widths,
    hamming,
    hash_pair,
    index_plan,
    near_pairs,
    near_unique,
    phash64,
    photo_hashes,
    plan_bands,
    to_hex,
)
from ganscreen.images import load_image

# Two unrelated pictures' 64-bit hashes differ in about 32 bits; near copies in a few (the
# campaign calls photos within 4 bits copies of each other).
NEAR = 4
UNRELATED = 20


@pytest.fixture(scope="module")
def astronaut_image(samples: Path) -> Image.Image:
    return Image.open(samples / "astronaut.png").convert("RGB")


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


# --------------------------------------------------------------------------- photo hashes


def test_phash64_is_imagehash_phash_with_bit_63_first(astronaut_image: Image.Image) -> None:
    value = phash64(astronaut_image)
    assert 0 <= value < 2**HASH_BITS
    assert to_hex(value) == str(imagehash.phash(astronaut_image, hash_size=8))


@pytest.mark.parametrize("edit", [
    lambda im: _jpeg(im, 30),
    lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
    lambda im: im.resize((96, 96), Image.Resampling.BILINEAR),
    lambda im: im.filter(ImageFilter.GaussianBlur(1.5)),
    lambda im: ImageOps.grayscale(im).convert("RGB"),
    lambda im: im.point(lambda v: min(255, v + 30)),
], ids=["jpeg-q30", "half-size", "96px", "blur", "greyscale", "brighter"])
def test_image_hash_survives_reposting_edits(astronaut_image: Image.Image, edit) -> None:  # noqa: ANN001
    assert hamming(phash64(astronaut_image), phash64(edit(astronaut_image))) <= NEAR


@pytest.mark.parametrize("other", ["chelsea_no_face.jpg", "astronaut_ffhq_aligned.jpg"])
def test_image_hash_is_far_for_other_pictures(astronaut_image: Image.Image, samples: Path, other: str) -> None:
    picture = Image.open(samples / other).convert("RGB")
    assert hamming(phash64(astronaut_image), phash64(picture)) >= UNRELATED


def test_hash_pair_holds_the_mirror_image_so_a_mirrored_copy_matches(astronaut_image: Image.Image) -> None:
    plain, mirrored = hash_pair(astronaut_image)
    assert mirrored == phash64(ImageOps.mirror(astronaut_image))
    assert hamming(plain, mirrored) >= UNRELATED  # a mirror image is another picture to phash
    assert hash_pair(ImageOps.mirror(astronaut_image)) == (mirrored, plain)


def test_face_hash_survives_a_recrop_that_the_image_hash_does_not(detector: FaceDetector, samples: Path) -> None:
    def hashes(name: str) -> PhotoHashes:
        rgb = load_image(samples / name).rgb
        face = primary_face(detector.detect(rgb))
        assert face is not None
        return photo_hashes(rgb, face.landmarks)

    original, recropped = hashes("astronaut.png"), hashes("astronaut_recropped.jpg")
    assert original.face is not None and recropped.face is not None
    assert hamming(original.face[0], recropped.face[0]) <= NEAR
    assert hamming(original.image[0], recropped.image[0]) >= UNRELATED


def test_photo_hashes_without_landmarks_have_no_face_hash(astronaut: np.ndarray) -> None:
    hashes = photo_hashes(astronaut)
    assert hashes.face is None
    assert hashes.image == hash_pair(Image.fromarray(astronaut))
    record = hashes.to_record()
    assert record == {"image": to_hex(hashes.image[0]), "face": None}
    assert len(record["image"] or "") == 16


def test_hamming_counts_differing_bits() -> None:
    rng = np.random.default_rng(1)
    for a, b in rng.integers(0, 2**63, (200, 2), dtype=np.int64).tolist():
        a, b = a * 2 + 1, b * 2  # reach bit 63 and bit 0
        assert hamming(a, b) == bin(a ^ b).count("1") == hamming(b, a)
    assert hamming(0, 2**64 - 1) == 64 and hamming(12345, 12345) == 0


# --------------------------------------------------------------------------- banded index


def test_band_widths_split_the_bits_as_evenly_as_possible() -> None:
    for bands in range(1, HASH_BITS + 1):
        widths = band_widths(bands)
        assert len(widths) == bands and sum(widths) == HASH_BITS
        assert widths == sorted(widths, reverse=True) and widths[0] - widths[-1] <= 1
    for bad in (0, HASH_BITS + 1):
        with pytest.raises(ValueError):
            band_widths(bad)


@pytest.mark.parametrize("n", [1, 100, 10_000, 1_000_000])
def test_every_index_plan_is_exact_by_pigeonhole(n: int) -> None:
    # Two hashes within `threshold` bits must differ in at most `radius` bits on some band.
    for threshold in range(HASH_BITS):
        bands, radius = index_plan(threshold, n)
        assert bands * (radius + 1) > threshold
        assert 2 <= bands <= HASH_BITS and bands == plan_bands(threshold, radius)
    with pytest.raises(ValueError):
        index_plan(HASH_BITS, n)


def _brute_force(hashes: list[int], threshold: int, groups: list[int] | None = None) -> list[tuple[int, int]]:
    return [(i, j) for i, j in itertools.combinations(range(len(hashes)), 2)
            if hamming(hashes[i], hashes[j]) <= threshold and (groups is None or groups[i] == groups[j])]


# Clusters of near copies (a few flipped bits from one base) and exact copies: the hard case.
_clustered = st.lists(
    st.tuples(st.integers(0, 2**64 - 1), st.lists(st.lists(st.integers(0, 63), max_size=12), max_size=6)),
    min_size=1, max_size=12,
).map(lambda bases: [base ^ sum({1 << b for b in flips}) for base, copies in bases for flips in [[], *copies]])


@settings(max_examples=80, deadline=None)
@given(hashes=_clustered, threshold=st.integers(0, 16), radius=st.sampled_from([None, 0, 1, 2]),
       seed=st.integers(0, 3))
def test_near_pairs_are_exactly_the_brute_force_pairs(hashes: list[int], threshold: int, radius: int | None,
                                                      seed: int) -> None:
    groups = np.random.default_rng(seed).integers(0, 2, len(hashes)).tolist()
    array = np.array(hashes, dtype=np.uint64)
    assert near_pairs(array, threshold, radius=radius).tolist() == [list(p) for p in _brute_force(hashes, threshold)]
    assert near_pairs(array, threshold, np.array(groups), radius=radius).tolist() == \
        [list(p) for p in _brute_force(hashes, threshold, groups)]


@settings(max_examples=60, deadline=None)
@given(hashes=_clustered, threshold=st.integers(0, 16))
def test_near_unique_collapses_copies_and_measures_the_rest(hashes: list[int], threshold: int) -> None:
    inverse, distances, pairs = near_unique(np.array(hashes, dtype=np.uint64), threshold)
    distinct = sorted(set(hashes), key=lambda h: np.uint64(h).view(np.int64))
    # Equal hashes share an index; different ones do not.
    assert [distinct[k] for k in inverse.tolist()] == hashes
    expected = _brute_force(distinct, threshold)
    assert [tuple(p) for p in pairs.tolist()] == expected
    assert distances.tolist() == [hamming(distinct[a], distinct[b]) for a, b in expected]


def test_empty_and_single_inputs_have_no_pairs() -> None:
    assert near_pairs(np.array([], np.uint64), 4).shape == (0, 2)
    assert near_pairs(np.array([7], np.uint64), 4).shape == (0, 2)
    with pytest.raises(ValueError, match="one entry per hash"):
        near_pairs(np.array([1, 2], np.uint64), 4, np.array([0]))


# --------------------------------------------------------------------------- UnionFind


def _components(n: int, edges: list[tuple[int, int]]) -> list[list[int]]:
    neighbours: dict[int, set[int]] = {i: set() for i in range(n)}
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    seen: set[int] = set()
    out = []
    for start in range(n):
        if start in seen:
            continue
        stack, part = [start], []
        seen.add(start)
        while stack:
            x = stack.pop()
            part.append(x)
            for y in neighbours[x] - seen:
                seen.add(y)
                stack.append(y)
        if len(part) > 1:
            out.append(sorted(part))
    return sorted(out)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 60), data=st.data())
def test_union_find_groups_are_the_connected_components(n: int, data: st.DataObject) -> None:
    edges = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=80))
    sets = UnionFind(n)
    joined = 0
    for a, b in edges:
        was_apart = sets.find(a) != sets.find(b)
        assert sets.union(a, b) is was_apart
        joined += was_apart
    groups = sets.groups()
    assert groups == _components(n, edges)
    assert groups == sorted(groups, key=lambda g: g[0])
    # Every union that joined two sets removed one set.
    assert len({sets.find(x) for x in range(n)}) == n - joined
    for group in groups:
        assert len({sets.find(x) for x in group}) == 1
