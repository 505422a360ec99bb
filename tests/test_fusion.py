from __future__ import annotations

import numpy as np
import pytest

from ganscreen._assets import load_json
from ganscreen.checks import CheckResult
from ganscreen.fusion import LINEAR, Fusion, features, logit


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


def test_a_face_on_the_stylegan_template_is_never_cleared() -> None:
    fusion = Fusion()
    assert "ffhq_alignment" in fusion.never_real
    weak = {"geometry": CheckResult(score=0.001), "cnn": CheckResult(score=0.001), "backdrop": CheckResult(score=0.001)}
    cleared = fusion.decide(weak)
    assert cleared.verdict == "real" and "real threshold" in (cleared.reason or "")
    on_template = dict(weak, geometry=CheckResult(score=0.001, flags=("ffhq_alignment",)))
    held = fusion.decide(on_template)
    assert held.score == pytest.approx(cleared.score)
    assert held.verdict == "uncertain"
    assert held.reason == fusion.never_real["ffhq_alignment"]


def test_every_verdict_has_a_one_line_reason_naming_its_threshold_and_drivers() -> None:
    fusion = Fusion()
    strong = fusion.decide({"geometry": CheckResult(score=0.999), "cnn": CheckResult(score=0.999),
                            "backdrop": CheckResult(score=0.9)})
    assert strong.verdict == "gan"
    assert strong.reason is not None and "\n" not in strong.reason
    assert f"{fusion.gan_threshold:.2f}" in strong.reason
    weighted = [n for n in fusion.checks if fusion.weights.get(f"{n}_logit", 0) > 0]
    assert any(n in strong.reason for n in weighted)  # the checks that drove it


def test_a_face_no_check_could_judge_is_uncertain_and_no_face_is_not_judged() -> None:
    fusion = Fusion()
    unjudged = {"geometry": CheckResult(score=None, reason="too small"), "cnn": CheckResult(score=None)}
    nothing = fusion.decide(unjudged)
    assert (nothing.score, nothing.verdict, nothing.reason) == (None, "uncertain", "no check could judge this face")
    no_face = fusion.decide(unjudged, face_found=False)
    assert (no_face.score, no_face.verdict, no_face.reason) == (None, None, "no face found: nothing to judge")
    # Without a face nothing is judged, whatever a check may have said.
    scored = fusion.decide({"geometry": CheckResult(score=0.999, flags=("ffhq_alignment",))}, face_found=False)
    assert (scored.score, scored.verdict) == (None, None) and scored.flags == ("ffhq_alignment",)


def test_a_face_its_floor_check_alone_calls_gan_is_gan_whatever_the_cnn_says() -> None:
    fusion = Fusion()
    assert "geometry" in fusion.floors
    on_template = CheckResult(score=0.999, flags=("ffhq_alignment",))
    doubted = {"geometry": on_template, "cnn": CheckResult(score=0.01)}
    # The linear part alone would not call it gan: a CNN that sees little pulls it down ...
    linear = Fusion({**load_json("fusion.json"), "floors": {}})
    assert linear.decide(doubted).verdict != "gan"
    # ... but geometry alone does, so the verdict does, and says why.
    decision = fusion.decide(doubted)
    floor = fusion.floor_probabilities(doubted)["geometry"]
    assert floor >= fusion.gan_threshold
    assert decision.verdict == "gan" and decision.score == pytest.approx(floor)
    assert decision.reason is not None and "geometry 1.00 alone puts it there" in decision.reason
    assert fusion.never_real["ffhq_alignment"] in decision.reason


def test_a_floor_below_the_gan_threshold_changes_nothing_and_an_unjudged_check_sets_none() -> None:
    fusion = Fusion()
    linear = Fusion({**load_json("fusion.json"), "floors": {}})
    for geometry in (0.001, 0.2, 0.5):
        results = {"geometry": CheckResult(score=geometry), "cnn": CheckResult(score=0.3)}
        assert fusion.floor_probabilities(results)["geometry"] < fusion.gan_threshold
        assert fusion.probability(results) == pytest.approx(linear.probability(results))
        assert "alone puts it there" not in (fusion.decide(results).reason or "")
    unjudged = {"geometry": CheckResult(score=None, reason="face cut off"), "cnn": CheckResult(score=0.3)}
    assert fusion.floor_probabilities(unjudged) == {}
    assert fusion.probability(unjudged) == pytest.approx(linear.probability(unjudged))


def test_a_crop_of_a_stylegan_frame_scores_at_least_the_gan_threshold_and_says_why() -> None:
    fusion = Fusion()
    weak = {"geometry": CheckResult(score=0.01), "cnn": CheckResult(score=0.05), "backdrop": CheckResult(score=0.1)}
    cleared = fusion.decide(weak)
    assert cleared.verdict == "real"
    recropped = fusion.decide(dict(weak, geometry=CheckResult(score=0.01, flags=("ffhq_recrop",))))
    assert recropped.verdict == "gan"
    assert recropped.score == pytest.approx(fusion.gan_threshold)
    assert recropped.reason is not None and "ffhq_recrop alone puts it there" in recropped.reason
    assert "crop of a StyleGAN/FFHQ-aligned frame" in recropped.reason
    # A stronger fused score is kept, and the reason then names the checks, not the flag.
    strong = {"geometry": CheckResult(score=0.3, flags=("ffhq_recrop",)), "cnn": CheckResult(score=0.9999)}
    decided = fusion.decide(strong)
    assert decided.score is not None and decided.score > fusion.gan_threshold
    assert decided.reason is not None and "ffhq_recrop alone" not in decided.reason


def test_without_flag_floors_the_recrop_flag_moves_nothing() -> None:
    params = dict(load_json("fusion.json"))
    params.pop("flag_floors")
    fusion = Fusion(params)
    weak = {"geometry": CheckResult(score=0.01, flags=("ffhq_recrop",)), "cnn": CheckResult(score=0.05)}
    assert fusion.decide(weak).verdict == "real"


def test_a_one_sided_check_counts_only_as_gan_evidence() -> None:
    checks = ["geometry", "cnn"]
    off = {"geometry": CheckResult(score=0.01), "cnn": CheckResult(score=0.01)}
    assert features(off, checks, ["geometry"]) == {"geometry_logit": 0.0, "cnn_logit": logit(0.01)}
    on = {"geometry": CheckResult(score=0.99), "cnn": CheckResult(score=0.01)}
    assert features(on, checks, ["geometry"]) == features(on, checks)  # GAN evidence counts in full
    assert features(off, checks)["geometry_logit"] == logit(0.01)  # two-sided unless named


def test_with_one_sided_geometry_a_recrop_cannot_make_a_gan_face_look_more_real_than_an_unjudged_photo() -> None:
    params = {**load_json("fusion.json"), "floors": {}, "flag_floors": {},
              "weights": {"geometry_logit": 0.8, "cnn_logit": 0.5}, "bias": -1.0}
    one_sided = Fusion({**params, "one_sided": ["geometry"]})
    two_sided = Fusion({**params, "one_sided": []})
    # A re-cropped GAN face: geometry judges it far off the template; the CNN finds it GAN-like.
    recropped = {"geometry": CheckResult(score=0.002), "cnn": CheckResult(score=0.9)}
    # A tight real photo: geometry cannot judge it; the CNN finds it as GAN-like.
    tight = {"geometry": CheckResult(score=None, reason="face cut off"), "cnn": CheckResult(score=0.9)}
    assert one_sided.probability(recropped) == pytest.approx(one_sided.probability(tight))
    two = two_sided.probability(recropped)
    assert two is not None and two < (two_sided.probability(tight) or 0.0)
    # On the template the evidence is the same either way, and it still raises the score.
    on_template = {"geometry": CheckResult(score=0.99), "cnn": CheckResult(score=0.9)}
    assert one_sided.probability(on_template) == pytest.approx(two_sided.probability(on_template))
    assert (one_sided.probability(on_template) or 0.0) > (one_sided.probability(tight) or 1.0)
    # The contributions the reason is written from follow the same inputs.
    assert one_sided.contributions(recropped)["geometry"] == 0.0
    assert two_sided.contributions(recropped)["geometry"] < 0.0


def test_ranking_lifted_faces_by_the_cnn_orders_them_and_changes_no_verdict() -> None:
    params = dict(load_json("fusion.json"))
    plain = Fusion({**params, "rank_lifted_by": None})
    ranked = Fusion({**params, "rank_lifted_by": "cnn"})
    thr = ranked.gan_threshold
    # Two faces on the template: an FFHQ photo exactly on it that the CNN finds real-looking,
    # and a generated face a little off it that the CNN finds GAN-like. Without the rule the
    # floor (how exactly on the template) puts the photo first; with it the CNN orders them.
    def lifted(geometry: float, cnn: float) -> dict[str, CheckResult]:
        return {"geometry": CheckResult(score=geometry, flags=("ffhq_alignment",)), "cnn": CheckResult(score=cnn)}

    dataset_photo, generated = lifted(0.9999, 0.05), lifted(0.95, 0.6)
    assert (plain.probability(dataset_photo) or 0) > (plain.probability(generated) or 1)
    assert ranked.probability(dataset_photo) == pytest.approx(thr + (1 - thr) * 0.05)
    assert ranked.probability(generated) == pytest.approx(thr + (1 - thr) * 0.6)
    decision = ranked.decide(dataset_photo)
    assert decision.verdict == "gan"
    assert decision.reason is not None and "geometry 1.00 alone puts it there" in decision.reason
    assert "cnn 0.05 places it above the threshold" in decision.reason
    # A crop of a StyleGAN frame (the flag floor) is ranked the same way.
    recrop = {"geometry": CheckResult(score=0.01, flags=("ffhq_recrop",)), "cnn": CheckResult(score=0.3)}
    assert ranked.probability(recrop) == pytest.approx(thr + (1 - thr) * 0.3)
    assert "ffhq_recrop alone puts it there" in (ranked.decide(recrop).reason or "")
    # Faces no floor lifts keep the linear fusion's score, and no verdict anywhere changes.
    grid = np.linspace(0.001, 0.9999, 23)
    for g in grid:
        for c in grid:
            for flags in ((), ("ffhq_recrop",)):
                results = {"geometry": CheckResult(score=float(g), flags=flags), "cnn": CheckResult(score=float(c))}
                a, b = plain.decide(results), ranked.decide(results)
                assert a.verdict == b.verdict
                if a.score is not None and a.score < thr:
                    assert b.score == pytest.approx(a.score)
    # A lifted face the CNN could not judge keeps its floor.
    unjudged = {"geometry": CheckResult(score=0.9999), "cnn": CheckResult(score=None, reason="no crop")}
    assert ranked.probability(unjudged) == pytest.approx(plain.probability(unjudged))


def test_lifted_faces_can_be_ordered_by_the_linear_fusion_itself() -> None:
    params = dict(load_json("fusion.json"))
    plain = Fusion({**params, "rank_lifted_by": None})
    by_linear = Fusion({**params, "rank_lifted_by": LINEAR})
    linear = Fusion({**params, "floors": {}, "flag_floors": {}})
    thr = by_linear.gan_threshold
    near = {"geometry": CheckResult(score=0.9, flags=("ffhq_alignment",)), "cnn": CheckResult(score=0.5)}
    exact = {"geometry": CheckResult(score=0.9999, flags=("ffhq_alignment",)), "cnn": CheckResult(score=0.5)}
    for results in (near, exact):
        assert by_linear.probability(results) == pytest.approx(thr + (1 - thr) * (linear.probability(results) or 0))
        assert by_linear.decide(results).verdict == plain.decide(results).verdict == "gan"
    reason = by_linear.decide(near).reason or ""
    assert f"the linear fusion's {linear.probability(near):.2f} places it above the threshold" in reason
    # The linear fusion keeps geometry in the order: the face exactly on the template comes first.
    assert (by_linear.probability(exact) or 0) > (by_linear.probability(near) or 1)
