from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from ganscreen import Screener
from ganscreen._assets import load_json
from ganscreen.checks import CheckContext
from ganscreen.checks.geometry import FLAG, GeometryCheck
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
