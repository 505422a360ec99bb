"""scripts/rescore_fusion.py: recorded scans decided again by a fusion file, as a scan would."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import evaluate  # noqa: E402
import rescore_fusion  # noqa: E402
from ganscreen import Screener  # noqa: E402
from ganscreen._assets import load_json  # noqa: E402
from ganscreen.fusion import Fusion  # noqa: E402


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """evaluate.py's records of the samples: the aligned and re-cropped copies as GAN, the rest real."""
    samples = ROOT / "samples"
    items = []
    for path in sorted(samples.glob("*.*")):
        if path.suffix not in (".png", ".jpg"):
            continue
        gan = "aligned" in path.name or "recropped" in path.name or "glasses" in path.name
        items.append(evaluate.Item(path, f"{'gan' if gan else 'real'}/{path.name}", int(gan), "x", False))
    out: list[dict] = []
    evaluate.screen(items, "as_found", Screener(device="cpu", workers=1, torch_threads=1), records=out)
    target = tmp_path_factory.mktemp("rescore") / "samples.jsonl"
    target.write_text("".join(json.dumps(r) + "\n" for r in out), encoding="utf-8")
    return target


def test_the_shipped_fusion_decides_every_record_as_the_scan_did(records: Path) -> None:
    recorded = [json.loads(line) for line in records.read_text().splitlines()]
    rows = rescore_fusion.rescore(recorded, Fusion())
    judged = [r for r in recorded if r["status"] == "ok" and r["score"] is not None]
    assert len(rows) == len(judged) >= 5  # the broken file and the cat are left out
    # Records hold scores to 5 decimals, so a score decided again from them agrees to about that.
    for row, rec in zip(rows, judged, strict=True):
        assert row["score"] == pytest.approx(rec["score"], abs=1e-4) and row["verdict"] == rec["verdict"]


def test_each_fusion_file_gets_its_rows_and_a_changed_fusion_changes_them(records: Path, tmp_path: Path) -> None:
    shipped = ROOT / "models" / "fusion.json"
    strict = tmp_path / "strict.json"
    params = load_json("fusion.json")
    strict.write_text(json.dumps({**params, "version": "strict", "floors": {}, "flag_floors": {},
                                  "thresholds": {"gan": 0.999, "real": 0.001}}), encoding="utf-8")
    out = rescore_fusion.main([str(records), "--fusion", str(shipped), str(strict),
                               "--json", str(tmp_path / "out.json")])
    assert set(out) == {str(shipped), str(strict)}
    ours, theirs = out[str(shipped)]["as_found (samples)"], out[str(strict)]["as_found (samples)"]
    assert ours["verdicts"]["gan"].get("gan", 0) >= 1  # the shipped fusion calls the aligned copies gan
    assert theirs["verdicts"]["gan"].get("gan", 0) == 0  # nothing clears a 0.999 threshold here
    assert json.loads((tmp_path / "out.json").read_text()) == json.loads(json.dumps(out))


def test_the_paired_bootstrap_is_zero_for_the_same_scores_and_positive_for_a_better_ranking() -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    y = np.array([1] * 40 + [0] * 60)
    noisy = y + rng.normal(0, 1.0, len(y))  # AUC well below 1
    same = rescore_fusion.paired_auc_difference(y, noisy, noisy.copy(), 200)
    assert same == {"difference": 0.0, "low": 0.0, "high": 0.0, "draws": 200}
    better = rescore_fusion.paired_auc_difference(y, noisy, y + rng.normal(0, 0.2, len(y)), 200)
    assert 0 < better["low"] <= better["difference"] <= better["high"]
    worse = rescore_fusion.paired_auc_difference(y, y + rng.normal(0, 0.2, len(y)), noisy, 200)
    assert worse["high"] < 0
