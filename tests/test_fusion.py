from __future__ import annotations

import pytest

from ganscreen._assets import load_json
from ganscreen.checks import CheckResult
from ganscreen.fusion import Fusion, features, logit


def test_shipped_fusion_is_fitted_with_an_uncertain_band() -> None:
    params = load_json("fusion.json")
    assert params["version"] != "fusion-default"
    t = params["thresholds"]
    assert 0.0 < t["real"] <= t["gan"] < 1.0
    assert params["weights"]["geometry_logit"] > 0  # on-template raises the GAN probability


def test_verdict_bands() -> None:
    fusion = Fusion()
    assert fusion.verdict_for(None) is None
    assert fusion.verdict_for(fusion.gan_threshold) == "gan"
    assert fusion.verdict_for(fusion.real_threshold) == "real"
    if fusion.gan_threshold > fusion.real_threshold:
        middle = (fusion.gan_threshold + fusion.real_threshold) / 2
        assert fusion.verdict_for(middle) == "uncertain"


def test_probability_rises_with_geometry_and_ignores_missing_checks() -> None:
    fusion = Fusion()
    low = fusion.probability({"geometry": CheckResult(score=0.01)})
    high = fusion.probability({"geometry": CheckResult(score=0.99)})
    assert low is not None and high is not None and high > low
    with_missing = fusion.probability({"geometry": CheckResult(score=0.99), "glasses": CheckResult(score=None)})
    assert with_missing == pytest.approx(high)
    assert fusion.probability({"geometry": CheckResult(score=None)}) is None


def test_features_clip_saturated_scores() -> None:
    f = features({"geometry": CheckResult(score=1.0), "backdrop": CheckResult(score=None)},
                 ["geometry", "backdrop", "glasses"])
    assert f == {"geometry_logit": logit(1.0), "backdrop_logit": 0.0, "glasses_logit": 0.0}
    assert logit(1.0) == 6.0 and logit(0.0) == -6.0


def test_flags_are_collected_once_in_check_order() -> None:
    decision = Fusion().decide({
        "geometry": CheckResult(score=0.9, flags=("ffhq_alignment",)),
        "glasses": CheckResult(score=0.9, flags=("glasses_asymmetry", "ffhq_alignment")),
    })
    assert decision.flags == ("ffhq_alignment", "glasses_asymmetry")
