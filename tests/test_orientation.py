"""The mirror-canonical orientation: a photo and its mirror image are screened identically."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ganscreen import Screener
from ganscreen._orientation import mirror_face, needs_mirror
from ganscreen.faces import Face


@pytest.mark.parametrize("seed", range(6))
def test_exactly_one_of_an_image_and_its_mirror_is_flipped(seed: int) -> None:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(int(rng.integers(5, 40)), int(rng.integers(5, 40)), 3), dtype=np.uint8)
    assert needs_mirror(image) != needs_mirror(image[:, ::-1])


def test_a_balanced_image_falls_back_to_its_bytes() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    image[0, 0] = image[1, 3] = 200  # same brightness on each side, not symmetric
    assert needs_mirror(image) != needs_mirror(image[:, ::-1])
    symmetric = np.ascontiguousarray(np.concatenate([image[:, :2], image[:, :2][:, ::-1]], axis=1))
    assert not needs_mirror(symmetric)


def test_mirror_face_maps_coordinates_and_swaps_sides() -> None:
    face = Face(box=np.array([10, 20, 50, 80], np.float32),
                landmarks=np.array([[20, 40], [40, 41], [30, 55], [22, 70], [38, 71]], np.float32), confidence=0.9)
    back = mirror_face(face, 100)
    assert back.box.tolist() == [50, 20, 90, 80]
    assert back.landmarks[0].tolist() == [60, 41]  # the flipped image's right eye is the photo's left
    assert back.landmarks[1].tolist() == [80, 40]
    assert back.landmarks[3].tolist() == [62, 71] and back.landmarks[4].tolist() == [78, 70]
    assert mirror_face(back, 100).landmarks.tolist() == face.landmarks.tolist()


def test_a_photo_and_its_mirror_get_the_same_record(screener: Screener, samples, one_torch_thread) -> None:  # noqa: ANN001
    photo = Image.open(samples / "astronaut_ffhq_aligned.jpg").convert("RGB")
    a, b = screener.screen_batch([photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    assert a.status == b.status == "ok"
    assert a.score == b.score and a.verdict == b.verdict and a.flags == b.flags
    assert {n: r.score for n, r in a.checks.items()} == {n: r.score for n, r in b.checks.items()}
    # Faces are reported in each photo's own coordinates: mirror images of each other.
    width = photo.width
    assert b.faces[0].box[0] == pytest.approx(width - a.faces[0].box[2], abs=1e-3)
    assert b.faces[0].landmarks[0][0] == pytest.approx(width - a.faces[0].landmarks[1][0], abs=1e-3)
