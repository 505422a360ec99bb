from __future__ import annotations

import numpy as np

from ganscreen import Screener
from ganscreen.checks.backdrop import FLAG, masks, mirror_score


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


def test_mirrored_padding_sample_scores_above_the_plain_photo(screener: Screener, samples) -> None:  # noqa: ANN001
    plain = screener.screen(samples / "astronaut.png").to_record()["checks"]["backdrop"]
    padded = screener.screen(samples / "astronaut_mirrored_backdrop.jpg").to_record()["checks"]["backdrop"]
    assert padded["mirror"] > plain["mirror"]
    assert padded["score"] > plain["score"]
    assert FLAG in screener.screen(samples / "astronaut_mirrored_backdrop.jpg").flags
    assert FLAG not in screener.screen(samples / "astronaut.png").flags


def test_tight_crop_is_not_judged(screener: Screener, samples) -> None:  # noqa: ANN001
    from PIL import Image

    img = Image.open(samples / "astronaut.png").crop((170, 50, 280, 185))
    result = screener.screen(img).to_record()["checks"]["backdrop"]
    assert result["score"] is None and "background" in result["reason"]
