from __future__ import annotations

import numpy as np
import pytest

from ganscreen.faces import (
    CANONICAL_LANDMARKS,
    Face,
    FaceDetector,
    Landmark,
    align_face,
    ffhq_align,
    primary_face,
    resolve_device,
    similarity_transform,
)


def test_astronaut_landmarks_are_where_her_features_are(astronaut_face: Face) -> None:
    f = astronaut_face
    assert f.confidence > 0.99
    assert f.box.dtype == np.float32 and f.landmarks.dtype == np.float32
    assert f.landmarks.shape == (5, 2)
    # Measured by eye on the 512x512 photo: pupils near (204, 101) and (247, 104).
    np.testing.assert_allclose(f.landmarks[Landmark.LEFT_EYE], [204, 101], atol=6)
    np.testing.assert_allclose(f.landmarks[Landmark.RIGHT_EYE], [247, 104], atol=6)
    nose, ml, mr = f.landmarks[2], f.landmarks[3], f.landmarks[4]
    assert f.landmarks[0, 1] < nose[1] < ml[1] and ml[0] < nose[0] < mr[0]
    x1, y1, x2, y2 = f.box
    assert np.all((f.landmarks[:, 0] > x1) & (f.landmarks[:, 0] < x2))
    assert np.all((f.landmarks[:, 1] > y1) & (f.landmarks[:, 1] < y2))


def test_batch_detection_matches_single(detector: FaceDetector, astronaut: np.ndarray,
                                        astronaut_face: Face) -> None:
    blank = np.full((512, 512, 3), 127, np.uint8)
    small = astronaut[::2, ::2].copy()
    results = detector.detect_batch([astronaut, blank, small, astronaut])
    assert [len(r) for r in results] == [1, 0, 1, 1]
    np.testing.assert_allclose(results[0][0].landmarks, astronaut_face.landmarks, atol=0.5)
    np.testing.assert_allclose(results[2][0].landmarks * 2, astronaut_face.landmarks, atol=4)


def test_large_images_are_downscaled_for_detection_but_reported_in_full_pixels(
        detector: FaceDetector, astronaut: np.ndarray, astronaut_face: Face) -> None:
    big = np.repeat(np.repeat(astronaut, 3, axis=0), 3, axis=1)  # 1536 px > DETECT_MAX_SIDE
    face = detector.detect(big)[0]
    np.testing.assert_allclose(face.landmarks / 3, astronaut_face.landmarks, atol=3)


def test_tiny_image_has_no_face(detector: FaceDetector) -> None:
    assert detector.detect(np.zeros((1, 1, 3), np.uint8)) == []
    assert detector.detect(np.zeros((5, 2000, 3), np.uint8)) == []


def test_primary_face_is_the_largest() -> None:
    def face(size: float) -> Face:
        return Face(box=np.array([0, 0, size, size], np.float32),
                    landmarks=np.zeros((5, 2), np.float32), confidence=0.99)

    assert primary_face([face(10), face(30), face(20)]).width == 30
    assert primary_face([]) is None


def test_similarity_transform_recovers_rotation_scale_shift() -> None:
    src = CANONICAL_LANDMARKS * 100
    theta, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rot = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    dst = src @ rot.T + shift
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-4)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-3)


def test_aligned_crop_puts_landmarks_on_the_canonical_layout(
        detector: FaceDetector, astronaut: np.ndarray, astronaut_face: Face) -> None:
    aligned = align_face(astronaut, astronaut_face, size=256)
    assert aligned.image.shape == (256, 256, 3) and aligned.coverage == 1.0
    again = detector.detect(aligned.image)[0]
    np.testing.assert_allclose(again.landmarks[:2] / 256, CANONICAL_LANDMARKS[:2], atol=0.02)
    # Eyes level: the midline is vertical.
    assert abs(again.landmarks[0, 1] - again.landmarks[1, 1]) < 3


def test_aligned_crop_marks_pixels_outside_the_photo(astronaut: np.ndarray, astronaut_face: Face) -> None:
    corner = astronaut[:, :230].copy()  # cut between the eyes: half the face is missing
    aligned = align_face(corner, astronaut_face, size=128)
    assert 0.1 < aligned.coverage < 0.95


def test_ffhq_align_reproduces_the_stylegan_framing(detector: FaceDetector, astronaut: np.ndarray,
                                                    astronaut_face: Face) -> None:
    for size in (256, 1024):
        crop = ffhq_align(astronaut, astronaut_face, size=size)
        eyes = detector.detect(crop)[0].landmarks[:2] / size
        np.testing.assert_allclose(eyes, [[0.375, 0.475], [0.625, 0.475]], atol=0.02)


def test_device_resolution() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda")


def test_similar_sizes_share_a_detection_batch_when_bucketed(astronaut: np.ndarray,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    assert FaceDetector(device="cpu").bucket is None  # the CPU batches exact sizes only
    with pytest.raises(ValueError, match="bucket"):
        FaceDetector(device="cpu", bucket=0)
    photos = [cv2.resize(astronaut, (w, h)) for w, h in [(512, 512), (500, 490), (470, 505)]]
    exact = FaceDetector(device="cpu")
    bucketed = FaceDetector(device="cpu", bucket=64)
    calls: list[int] = []
    run = bucketed._run_mtcnn

    def counting(batch, min_face):  # noqa: ANN001, ANN202
        calls.append(len(batch))
        return run(batch, min_face)

    monkeypatch.setattr(bucketed, "_run_mtcnn", counting)
    together = bucketed.detect_batch(photos)
    assert calls == [3]  # all three padded to 512 x 512: one batch
    alone = [bucketed.detect(p)[0] for p in photos]
    for faces, single, photo in zip(together, alone, photos, strict=True):
        (face,) = faces
        # An image's result does not depend on the batch it is in ...
        assert np.allclose(face.landmarks, single.landmarks, atol=0.05)
        # ... and padding moves no landmark by more than a pixel or two.
        (plain,) = exact.detect(photo)
        assert np.abs(face.landmarks - plain.landmarks).max() < 2.5
