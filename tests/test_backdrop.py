from __future__ import annotations

import numpy as np

from ganscreen import Screener
from ganscreen.checks.backdrop import masks, mirror_score


def test_mirror_score_finds_a_reflection_axis_near_a_border() -> None:
    rng = np.random.default_rng(0)
    texture = rng.normal(128, 30, (120, 120)).astype(np.float32)
    assert mirror_score(texture) < 0.6
    mirrored = texture.copy()
    mirrored[:, :20] = texture[:, 20:40][:, ::-1]  # a mirror axis at x = 20
    assert mirror_score(mirrored) > 0.95


def test_background_mask_excludes_head_and_shoulders() -> None:
    bg, face = masks((200, 200), np.array([70, 50, 130, 130], float))
    assert not bg[90, 100] and face[90, 100]  # the face centre
    assert bg[10, 5] and not face[10, 5]  # a top corner
    assert not bg[190, 100]  # below the chin: clothes, not backdrop
    assert 0.1 < bg.mean() < 0.7


def _scene(smeared: bool) -> tuple[np.ndarray, np.ndarray]:
    """A grey face disc in front of a wall of straight stripes, optionally smeared."""
    import cv2

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float32)
    wall = 128 + 60 * np.sign(np.sin((xx + 0.4 * yy) / 6.0)) + rng.normal(0, 4, (256, 256))
    if smeared:
        flow = [cv2.GaussianBlur(rng.normal(0, 1, (256, 256)).astype(np.float32), (0, 0), 6) for _ in range(2)]
        flow = [f * (20.0 / np.abs(f).max()) for f in flow]
        wall = cv2.remap(wall.astype(np.float32), xx + flow[0], yy + flow[1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT)
        wall = cv2.GaussianBlur(wall, (0, 0), 2.0)
    image = wall.astype(np.float32)
    face = (xx - 128) ** 2 / 40**2 + (yy - 110) ** 2 / 50**2 <= 1
    image[face] = 170 + rng.normal(0, 6, int(face.sum()))
    rgb = np.repeat(np.clip(image, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    return rgb, np.array([88, 60, 168, 160], np.float32)


def test_smearing_a_straight_lined_backdrop_raises_the_score() -> None:
    from ganscreen.checks import CheckContext
    from ganscreen.checks.backdrop import BackdropCheck, measure
    from ganscreen.faces import Face

    results = {}
    for smeared in (False, True):
        rgb, box = _scene(smeared)
        grey = rgb[:, :, 0].astype(np.float32)
        bg, face = masks(grey.shape, box.astype(float))
        face_obj = Face(box=box, landmarks=np.zeros((5, 2), np.float32), confidence=0.99)
        ctx = CheckContext(image=rgb, faces=(face_obj,), face=face_obj, aligned=None)
        results[smeared] = (measure(grey, bg, face), BackdropCheck().run(ctx))
    (plain_m, plain_r), (smear_m, smear_r) = results[False], results[True]
    assert smear_m["coherence"] < plain_m["coherence"] - 0.1
    assert smear_m["smear"] < plain_m["smear"]
    assert smear_r.score is not None and plain_r.score is not None
    assert smear_r.score > plain_r.score


def test_a_plain_backdrop_is_not_judged() -> None:
    """A flat wall has no structure to distort: no score, no flag, a reason that says so."""
    from ganscreen.checks import CheckContext
    from ganscreen.checks.backdrop import MIN_TEXTURED, BackdropCheck
    from ganscreen.faces import Face

    rgb, box = _scene(False)
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:256, 0:256]
    face = (xx - 128) ** 2 / 40**2 + (yy - 110) ** 2 / 50**2 <= 1
    plain = np.where(face[:, :, None], rgb, np.clip(200 + rng.normal(0, 1.5, rgb.shape), 0, 255)).astype(np.uint8)
    face_obj = Face(box=box, landmarks=np.zeros((5, 2), np.float32), confidence=0.99)
    striped = BackdropCheck().run(CheckContext(image=rgb, faces=(face_obj,), face=face_obj, aligned=None))
    flat = BackdropCheck().run(CheckContext(image=plain, faces=(face_obj,), face=face_obj, aligned=None))
    assert striped.score is not None and striped.measures["textured_fraction"] >= MIN_TEXTURED
    assert flat.score is None and not flat.flags and "plain" in (flat.reason or "")
    assert flat.measures["textured_fraction"] < MIN_TEXTURED  # the measures stay in the record


def test_tight_crop_is_not_judged(screener: Screener, samples) -> None:  # noqa: ANN001
    from PIL import Image

    img = Image.open(samples / "astronaut.png").crop((170, 50, 280, 185))
    result = screener.screen(img).to_record()["checks"]["backdrop"]
    assert result["score"] is None and "background" in result["reason"]
