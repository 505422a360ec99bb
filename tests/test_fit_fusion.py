"""scripts/fit_fusion.py --fusion-only: the fusion is refitted from a scan, the check models stay."""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import fit_fusion  # noqa: E402
from ganscreen.checks import CheckResult  # noqa: E402
from ganscreen.fusion import Fusion  # noqa: E402


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped model files to fit into, and a scan of four sources no model saw."""
    models = tmp_path / "project" / "models"
    models.mkdir(parents=True)
    for name in ("cnn.json", "checks.json", "fusion.json"):
        shutil.copy(ROOT / "models" / name, models / name)
    monkeypatch.setattr(fit_fusion, "ROOT", tmp_path / "project")
    # The manifest belongs to the real models folder: the fit must not touch it here.
    monkeypatch.setitem(sys.modules, "update_manifest", types.SimpleNamespace(main=lambda: None))
    rng = np.random.default_rng(0)
    data = tmp_path / "faces"
    records, rows = [], ["file\tlabel\tgenerator"]
    for source, label in (("gan/tpgan", 1), ("gan/tpgan2", 1), ("real/tpreal", 0), ("real/tpreal2", 0)):
        for i in range(40):
            key = f"{source}__{i}.png"
            if label:  # half on the StyleGAN template, half re-cropped off it
                geometry: float | None = 0.97 if i % 2 else 0.001
                cnn = float(rng.uniform(0.4, 0.99))
            else:  # half tight crops geometry cannot judge, half judged far off the template
                geometry = None if i % 2 else 0.001
                cnn = float(rng.uniform(0.01, 0.7))
            rows.append(f"{key}\t{source.split('/')[0]}\t{'stylegan2' if label else 'photo'}")
            records.append({"path": str(data / key), "status": "ok", "flags": [],
                            "checks": {"geometry": {"score": geometry}, "cnn": {"score": cnn}}})
    data.mkdir()
    (data / "SOURCES.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "scan.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return tmp_path


def _fit(project: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> dict:
    argv = ["fit_fusion.py", str(project / "scan.jsonl"), "--data", str(project / "faces"), "--fusion-only",
            "--metrics", str(project / "metrics.json"), *extra]
    monkeypatch.setattr(sys, "argv", argv)
    fit_fusion.main()
    fitted: dict = json.loads((project / "project" / "models" / "fusion.json").read_text())
    return fitted


def test_fusion_only_refits_the_fusion_and_keeps_the_check_models(project: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    checks_before = (ROOT / "models" / "checks.json").read_bytes()
    fitted = _fit(project, monkeypatch)
    assert (project / "project" / "models" / "checks.json").read_bytes() == checks_before
    assert fitted["checks"] == ["geometry", "cnn"]
    assert fitted["weights"]["geometry_logit"] > 0 and fitted["weights"]["cnn_logit"] > 0
    assert "one_sided" not in fitted and fitted["provenance"]["fitted"] == "the fusion alone (checks.json kept)"
    assert fitted["version"] != json.loads((ROOT / "models" / "fusion.json").read_text())["version"]
    assert _fit(project, monkeypatch)["version"] == fitted["version"]  # the same scan, the same fit


def test_a_one_sided_fit_no_longer_lets_a_recrop_look_more_real_than_an_unjudged_photo(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    two_sided = Fusion(_fit(project, monkeypatch))
    params = _fit(project, monkeypatch, "--one-sided-checks", "geometry")
    assert params["one_sided"] == ["geometry"]
    one_sided = Fusion(params)
    recropped = {"geometry": CheckResult(score=0.001), "cnn": CheckResult(score=0.8)}
    unjudged = {"geometry": CheckResult(score=None, reason="face cut off"), "cnn": CheckResult(score=0.8)}
    assert (two_sided.probability(recropped) or 0.0) < (two_sided.probability(unjudged) or 0.0)
    assert one_sided.probability(recropped) == pytest.approx(one_sided.probability(unjudged))
    # Its floor still calibrates geometry two-sided: a face on the template is lifted.
    assert "geometry" in params["floors"] and params["floors"]["geometry"]["weight"] > 0


def test_a_fit_that_ranks_lifted_faces_by_the_cnn_keeps_the_fit_and_changes_the_version(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _fit(project, monkeypatch)
    plain_metrics = json.loads((project / "metrics.json").read_text())
    ranked = _fit(project, monkeypatch, "--rank-lifted-by", "cnn")
    ranked_metrics = json.loads((project / "metrics.json").read_text())
    assert "rank_lifted_by" not in plain and ranked["rank_lifted_by"] == "cnn"
    assert ranked["version"] != plain["version"]  # records made with one are not resumed by the other
    for key in ("weights", "bias", "floors", "thresholds"):
        assert ranked[key] == plain[key]
    # The held-out scores it reports are those ganscreen gives: on the template, the CNN's order.
    on_template = {"geometry": CheckResult(score=0.97), "cnn": CheckResult(score=0.5)}
    fusion = Fusion(ranked)
    thr = fusion.gan_threshold
    assert fusion.probability(on_template) == pytest.approx(thr + (1 - thr) * 0.5)
    assert ranked_metrics["fusion"] != plain_metrics["fusion"]
    # Ordered by the linear fusion itself: written as such, with its own version.
    by_linear = _fit(project, monkeypatch, "--rank-lifted-by", "linear")
    assert by_linear["rank_lifted_by"] == "linear" and by_linear["version"] not in (plain["version"], ranked["version"])
    linear_metrics = json.loads((project / "metrics.json").read_text())
    assert linear_metrics["fusion"] != plain_metrics["fusion"]


@pytest.mark.parametrize("extra", [(), ("--rank-lifted-by", "cnn")])
def test_the_reported_held_out_scores_are_what_the_written_fusion_gives(
        project: Path, monkeypatch: pytest.MonkeyPatch, extra: tuple[str, ...]) -> None:
    fitted = Fusion(_fit(project, monkeypatch, *extra))
    metrics = json.loads((project / "metrics.json").read_text())["fusion"]
    records = [json.loads(line) for line in (project / "scan.jsonl").read_text().splitlines()]
    keys = [fit_fusion.relative_key(r["path"]) for r in records]
    held = fit_fusion.split_by_source(keys)
    y, s = [], []
    for key, record in zip(keys, records, strict=True):
        if key in held:
            results = {name: CheckResult(score=c["score"]) for name, c in record["checks"].items()}
            y.append(fit_fusion.label_of(key))
            s.append(fitted.probability(results))
    assert metrics["held_out_all"] == fit_fusion.roc_metrics(y, s)
    # The gan threshold holds the held-out ordinary reals' false-positive rate at 1 %.
    reals = np.array([score for label, score in zip(y, s, strict=True) if label == 0])
    assert len(reals) == 40 and np.mean(reals >= fitted.gan_threshold) <= 0.01
    for row in metrics["per_source_verdicts"]:
        source_scores = [score for key, score in zip([k for k in keys if k in held], s, strict=True)
                         if fit_fusion.source_of(key) == row["source"]]
        assert row["gan"] == round(float(np.mean(np.array(source_scores) >= fitted.gan_threshold)), 3)
