"""scripts/crossfit_fusion.py: each source is scored by a fusion fitted without it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import crossfit_fusion  # noqa: E402
from ganscreen.checks import CheckResult  # noqa: E402
from ganscreen.fusion import Fusion  # noqa: E402

FIT_SOURCES = (("gan/tpgan", 1), ("gan/tpgan2", 1), ("real/tpreal", 0), ("real/tpreal2", 0))
CROSS_SOURCES = (("gan/cxgan", 1), ("real/cxreal", 0), ("real/cxreal2", 0))


def _checks(rng: np.random.Generator, label: int, i: int) -> dict:
    if label:  # half on the StyleGAN template, half off it
        geometry: float | None = 0.97 if i % 2 else 0.001
        cnn = float(rng.uniform(0.4, 0.99))
    else:  # half tight crops geometry cannot judge, half judged far off the template
        geometry = None if i % 2 else 0.001
        cnn = float(rng.uniform(0.01, 0.7))
    return {"geometry": {"score": geometry}, "cnn": {"score": cnn}}


def _write(tmp_path: Path) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(0)
    data = tmp_path / "faces"
    data.mkdir()
    rows, scan, records = ["file\tlabel\tgenerator"], [], []
    for source, label in FIT_SOURCES + CROSS_SOURCES:
        for i in range(40):
            key = f"{source}__{i}.png"
            rows.append(f"{key}\t{source.split('/')[0]}\t{'stylegan2' if label else 'photo'}")
            base = {"path": str(data / key), "status": "ok", "flags": [], "score": 0.5}
            if (source, label) in FIT_SOURCES:
                scan.append({**base, "checks": _checks(rng, label, i)})
                continue
            for variant in ("as_found", "recropped"):
                records.append({**base, "checks": _checks(rng, label, i), "variant": variant, "key": key,
                                "label": label, "aligned": False})
    (data / "SOURCES.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    fit, cross = tmp_path / "fit.jsonl", tmp_path / "records.jsonl"
    fit.write_text("".join(json.dumps(r) + "\n" for r in scan), encoding="utf-8")
    cross.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return data, fit, cross


def test_every_source_is_scored_by_a_fit_that_left_it_out(tmp_path: Path) -> None:
    data, fit, cross = _write(tmp_path)
    shipped = (ROOT / "models" / "fusion.json").read_bytes()
    out = tmp_path / "folds"
    result = crossfit_fusion.main(["--fit", str(fit), "--records", str(cross), "--data", str(data),
                                   "--out", str(out), "--", "--fusion-only"])
    assert (ROOT / "models" / "fusion.json").read_bytes() == shipped  # nothing shipped is touched
    names = [s for s, _ in CROSS_SOURCES]
    assert set(result["folds"]) == {*names, crossfit_fusion.FULL}
    for source in [*names, None]:
        fold = out / crossfit_fusion.fold_name(source)
        pool = json.loads((fold / "metrics.json").read_text())["fusion_pool"]  # "CNN held-out sources: a, b"
        fitted_on = set(pool.split(": ", 1)[1].split(", "))
        assert fitted_on == {s for s, _ in FIT_SOURCES + CROSS_SOURCES if s != source}
    # Every record is scored once per variant, by its own fold's fusion.
    records = [json.loads(line) for line in cross.read_text().splitlines()]
    for variant in ("as_found", "recropped"):
        n = result["out_of_fold"][variant]["vs_ordinary"]
        assert n["n_pos"] + n["n_neg"] == sum(r["variant"] == variant for r in records)
    fold_gan = Fusion(json.loads((out / crossfit_fusion.fold_name("gan/cxgan") / "fusion.json").read_text()))
    gan_found = [r for r in records if r["key"].startswith("gan/cxgan") and r["variant"] == "as_found"]
    expected_gan = sum(
        fold_gan.decide({n: CheckResult(score=c["score"]) for n, c in r["checks"].items()}).verdict == "gan"
        for r in gan_found)
    assert result["out_of_fold"]["as_found"]["verdicts"]["gan"].get("gan", 0) == expected_gan
