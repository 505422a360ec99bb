from __future__ import annotations

import cv2
import numpy as np

from ganscreen import Screener
from ganscreen.checks.glasses import FLAG, _mirror_dissimilarity, measure


def _record(screener: Screener, path) -> dict:  # noqa: ANN001
    return screener.screen(path).to_record()["checks"]["glasses"]


def test_mirror_dissimilarity_is_zero_for_a_symmetric_band_and_grows_with_asymmetry() -> None:
    rng = np.random.default_rng(0)
    left = cv2.GaussianBlur(rng.random((40, 60)).astype(np.float32), (0, 0), 2)
    symmetric = np.hstack([left, left[:, ::-1]])
    valid = np.ones(symmetric.shape, bool)
    assert _mirror_dissimilarity(symmetric, valid) < 1e-3
    broken = symmetric.copy()
    broken[:, 70:110] = cv2.GaussianBlur(rng.random((40, 40)).astype(np.float32), (0, 0), 2)
    assert _mirror_dissimilarity(broken, valid) > 0.3


def test_a_drawn_frame_raises_the_frame_edges() -> None:
    face = np.full((256, 256), 150, np.float32)
    plain = measure(face + np.random.default_rng(1).normal(0, 3, face.shape).astype(np.float32))
    framed = face.copy()
    cv2.line(framed, (112, 112), (144, 112), 30, 3)  # bridge
    cv2.line(framed, (70, 140), (120, 140), 30, 3)  # lower rims
    cv2.line(framed, (136, 140), (186, 140), 30, 3)
    with_frame = measure(framed + np.random.default_rng(1).normal(0, 3, face.shape).astype(np.float32))
    assert with_frame["bridge_edge"] > 3 * plain["bridge_edge"]
    assert with_frame["rim_edge"] > 3 * plain["rim_edge"]


def test_asymmetric_glasses_sample_is_flagged(screener: Screener, samples) -> None:  # noqa: ANN001
    plain = _record(screener, samples / "astronaut_ffhq_aligned.jpg")
    glasses = _record(screener, samples / "astronaut_asymmetric_glasses.jpg")
    assert plain["present"] is False and glasses["present"] is True
    assert glasses["presence"] > plain["presence"] + 0.3
    assert glasses["asymmetry"] > plain["asymmetry"] + 0.1
    assert glasses["score"] > plain["score"]
    assert FLAG in screener.screen(samples / "astronaut_asymmetric_glasses.jpg").flags
    assert FLAG not in screener.screen(samples / "astronaut_ffhq_aligned.jpg").flags
