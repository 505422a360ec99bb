from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from ganscreen import Screener
from ganscreen._assets import load_json
from ganscreen.checks import CheckContext
from ganscreen.checks.geometry import FLAG, RECROP_FLAG, GeometryCheck, recrop_fit, recrop_window
from ganscreen.faces import Face, FaceDetector, ffhq_align


def _geometry(screener: Screener, image: np.ndarray | Image.Image) -> dict:
    return screener.screen(Image.fromarray(image) if isinstance(image, np.ndarray) else image) \
        .to_record()["checks"]["geometry"]


def test_template_was_fitted_on_gan_faces_near_the_published_ffhq_positions() -> None:
    t = load_json("ffhq_template.json")
    eyes = np.asarray(t["points"])[:2]
    # FFHQ alignment puts the eyes near x = 0.375 / 0.625, y = 0.47-0.48 (DESIGN.md).
    np.testing.assert_allclose(eyes, [[0.375, 0.475], [0.625, 0.475]], atol=0.01)
    assert t["provenance"]["n_core"] > 1000
    assert t["on_template_rate"]["gan:stylegan2"]["on_template"] > 0.95
    assert t["ordinary_real_on_template_rate"]["on_template"] < 0.02


def test_ffhq_aligned_photo_is_flagged_and_the_original_is_not(
        screener: Screener, astronaut: np.ndarray, astronaut_face: Face) -> None:
    original = _geometry(screener, astronaut)
    aligned = _geometry(screener, ffhq_align(astronaut, astronaut_face, size=512))
    assert aligned["score"] > 0.8 > 0.2 > original["score"]
    assert aligned["eye_error"] < 0.03 < 0.1 < original["eye_error"]
    assert aligned["eye_error_px"] == pytest.approx(aligned["eye_error"] * 512, rel=0.05)
    assert screener.screen(Image.fromarray(ffhq_align(astronaut, astronaut_face, size=512))).flags \
        .count(FLAG) == 1


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_uniform_rescaling_keeps_the_verdict_and_the_normalised_error(
        screener: Screener, astronaut: np.ndarray, astronaut_face: Face, factor: float) -> None:
    for image in (astronaut, ffhq_align(astronaut, astronaut_face, size=512)):
        base = _geometry(screener, image)
        size = (round(image.shape[1] * factor), round(image.shape[0] * factor))
        scaled = _geometry(screener, cv2.resize(image, size, interpolation=cv2.INTER_AREA
                                                if factor < 1 else cv2.INTER_CUBIC))
        assert (scaled["score"] >= 0.5) == (base["score"] >= 0.5)
        assert scaled["eye_error"] == pytest.approx(base["eye_error"], abs=0.01)
        assert scaled["eye_error_eyes"] == pytest.approx(base["eye_error_eyes"], abs=0.04)


def test_recropping_removes_the_alignment(screener: Screener, samples) -> None:  # noqa: ANN001
    assert FLAG in screener.screen(samples / "astronaut_ffhq_aligned.jpg").flags
    recropped = screener.screen(samples / "astronaut_recropped.jpg")
    assert FLAG not in recropped.flags
    assert recropped.to_record()["checks"]["geometry"]["score"] < 0.5


def _ctx(image: np.ndarray, faces: list[Face]) -> CheckContext:
    return CheckContext(image=image, faces=tuple(faces), face=faces[0] if faces else None, aligned=None)


def test_says_when_it_cannot_judge(detector: FaceDetector, astronaut: np.ndarray,
                                   astronaut_face: Face) -> None:
    check = GeometryCheck()
    no_face = check.run(_ctx(astronaut, []))
    assert no_face.score is None and no_face.reason == "no face"
    cut = astronaut[:120]  # the chin and mouth are gone
    cut_faces = detector.detect(cut) or [astronaut_face]
    result = check.run(_ctx(cut, cut_faces))
    assert result.score is None and "cut off" in (result.reason or "")
    twin = Face(box=astronaut_face.box + np.float32(5), landmarks=astronaut_face.landmarks,
                confidence=0.99)
    several = check.run(_ctx(astronaut, [astronaut_face, twin]))
    assert several.score is None and "several" in (several.reason or "")
    small = Face(box=astronaut_face.box / 4, landmarks=astronaut_face.landmarks / 4, confidence=0.99)
    assert check.run(_ctx(astronaut, [astronaut_face, small])).score is not None


def _template_face(side: int, keep: tuple[float, float], offset: tuple[float, float],
                   degrees: float = 0.0) -> CheckContext:
    """A face whose landmarks are the template's after cropping the window ``offset`` +
    ``keep`` (fractions of the frame) and resizing it to ``side`` px, optionally rolled."""
    points = np.asarray(load_json("ffhq_template.json")["points"], np.float64)
    norm = (points - np.asarray(offset)) / np.asarray(keep)
    if degrees:
        c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
        centre = norm.mean(axis=0)
        norm = (norm - centre) @ np.array([[c, -s], [s, c]]).T + centre
    landmarks = (norm * side).astype(np.float32)
    x1, y1 = landmarks.min(axis=0) - 0.08 * side
    x2, y2 = landmarks.max(axis=0) + 0.08 * side
    face = Face(box=np.array([x1, y1, x2, y2], np.float32), landmarks=landmarks, confidence=1.0)
    image = np.zeros((side, side, 3), np.uint8)
    return CheckContext(image=image, faces=(face,), face=face, aligned=None)


def test_recrop_fit_recovers_the_crop_window_of_a_template_face() -> None:
    check = GeometryCheck()
    keep, offset = (0.8, 0.72), (0.05, 0.2)
    norm = (check.points - np.asarray(offset)) / np.asarray(keep)
    error, fitted, outside = recrop_fit(norm, check.points, check.spread)
    assert error == pytest.approx(0.0, abs=1e-9)
    assert fitted == pytest.approx(keep)
    assert outside == pytest.approx(0.0, abs=1e-9)
    assert recrop_window(norm, check.points, check.spread)[2] == pytest.approx(offset)
    # A window that would reach past the frame's right edge says by how much.
    _, _, outside = recrop_fit((check.points - np.array([0.35, 0.0])) / 0.8, check.points, check.spread)
    assert outside == pytest.approx(0.15)


def test_a_recropped_template_face_gets_the_recrop_flag_not_the_template_flag() -> None:
    check = GeometryCheck()
    result = check.run(_template_face(512, keep=(0.8, 0.75), offset=(0.1, 0.05)))
    assert result.flags == (RECROP_FLAG,)
    assert result.score is not None and result.score < 0.5  # the score is the template's alone
    assert result.measures["recrop_keep_x"] == pytest.approx(0.8, abs=0.01)
    assert check.run(_template_face(512, keep=(1.0, 1.0), offset=(0.0, 0.0))).flags == (FLAG,)


@pytest.mark.parametrize(("keep", "offset", "degrees"), [
    ((0.8, 0.75), (0.1, 0.05), 6.0),  # rolled: the eyes are not level
    ((2.0, 2.0), (-0.5, -0.5), 0.0),  # a small face in a wide photo: the frame is inside the window
    ((0.4, 0.4), (0.3, 0.3), 0.0),  # tighter than any re-crop that keeps the face's surroundings
])
def test_faces_that_are_no_recrop_of_a_stylegan_frame_get_no_flag(
        keep: tuple[float, float], offset: tuple[float, float], degrees: float) -> None:
    result = GeometryCheck().run(_template_face(512, keep=keep, offset=offset, degrees=degrees))
    assert RECROP_FLAG not in result.flags and FLAG not in result.flags


def test_without_a_recrop_threshold_the_recrop_flag_never_fires() -> None:
    check = GeometryCheck(params={})
    assert check.run(_template_face(512, keep=(0.8, 0.75), offset=(0.1, 0.05))).flags == ()
