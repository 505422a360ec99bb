"""Fit the glasses and backdrop score models and the fusion, from a scan of the collection.

    ganscreen scan ../shared/data/faces -o scratch/collection.jsonl --fail-on never
    python scripts/fit_fusion.py scratch/collection.jsonl
    python scripts/fit_fusion.py scratch/fit.jsonl --data FIT --fusion-only   # the fusion alone

The scan records every check's raw measures, so refitting needs no rescan. The collection is
split in half within every source (seed 0): the fit half trains the models, the held-out
half sets the verdict thresholds and gives the reported metrics. Writes
``models/checks.json``, ``models/fusion.json`` and a metrics JSON (``--metrics``), then
updates ``models/MANIFEST.json``. With ``--fusion-only`` the check models in ``checks.json``
stay as they are (every check enters with the score its record holds) and only the fusion is
fitted, so a scan of the fusion's own sources is all it needs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    DEFAULT_DATA,
    ROOT,
    is_aligned_real,
    label_of,
    read_all_sources,
    read_records,
    relative_key,
    roc_metrics,
    source_of,
    table,
    threshold_at_fpr,
)
from ganscreen._records import write_text_atomic  # noqa: E402
from ganscreen.checks import CheckResult, logistic_score, registered  # noqa: E402
from ganscreen.fusion import Fusion, features  # noqa: E402

# Each feature with the direction its design says it moves on GAN (or glasses) evidence.
# The fit keeps a feature only if the data agree with that direction: a check must never
# come to mean the opposite of its name because of a quirk of the collection.
PRESENCE_FEATURES = {"bridge_edge": +1, "rim_edge": +1, "band_edge": +1}
# Frame asymmetry is scored as an anomaly among REAL glasses wearers, not fitted to GAN vs
# real: in the collection GAN wearers face the camera squarely and real ones do not, so a
# supervised fit learns "symmetric pose means GAN" — the opposite of the check's meaning.
ASYMMETRY_FEATURES = {"lens_asymmetry": +1.0, "temple_asymmetry": +1.0, "orientation_asymmetry": +1.0,
                      "light_asymmetry": -0.5}
BACKDROP_FEATURES = {"coherence": -1, "smear": -1, "mirror": +1, "textured_fraction": -1}
# Flags that forbid a "real" verdict, with the reason the record gives instead.
NEVER_REAL = {"ffhq_alignment": "on the StyleGAN/FFHQ template: generated, or lifted from a public face dataset"}
# Flags whose own rule sits at the gan threshold's operating point (1 % of ordinary real
# photos): a face carrying one scores at least the gan threshold (fusion.Fusion, flag floors).
FLAG_FLOORS = {"ffhq_recrop": "a crop of a StyleGAN/FFHQ-aligned frame: a re-cropped generated face, "
                              "or a crop of a public face dataset's photo"}
SEED = 0


def fit_signed(rows: list[dict[str, Any]], check: str, y: np.ndarray,
               signs: dict[str, int]) -> dict[str, Any]:
    """Logistic regression on the features whose fitted sign matches the design."""
    names = list(signs)
    while True:
        params = fit_logistic(matrix(rows, check, names), y, names)
        wrong = [n for n in names if params["weights"][n] * signs[n] < 0]
        if not wrong:
            params["dropped"] = sorted(set(signs) - set(names))
            return params
        names = [n for n in names if n not in wrong]
        if not names:
            return {"bias": 0.0, "weights": {}, "mean": {}, "scale": {}, "dropped": sorted(signs)}


def fit_anomaly(rows: list[dict[str, Any]], check: str, weights: dict[str, float], *,
                quantile: float) -> dict[str, Any]:
    """A designed score: standardised features summed with fixed signs, centred so that the
    score is 0.5 at the given quantile of the reference (real) rows."""
    names = list(weights)
    x = matrix(rows, check, names)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    w = np.array([weights[n] for n in names]) * 2.0 / len(names)
    z = ((x - mean) / scale) @ w
    return {
        "bias": float(-np.quantile(z, quantile)),
        "weights": {n: float(v) for n, v in zip(names, w, strict=True)},
        "mean": {n: float(m) for n, m in zip(names, mean, strict=True)},
        "scale": {n: float(v) for n, v in zip(names, scale, strict=True)},
        "reference": f"real glasses wearers of the fit split, score 0.5 at their {quantile:g} quantile",
    }


def fit_logistic(x: np.ndarray, y: np.ndarray, names: list[str], *, c: float = 1.0) -> dict[str, Any]:
    """Standardised logistic regression, stored in the package's parameter format."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-9
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=1000)
    model.fit((x - mean) / scale, y)
    return {
        "bias": float(model.intercept_[0]),
        "weights": {n: float(w) for n, w in zip(names, model.coef_[0], strict=True)},
        "mean": {n: float(m) for n, m in zip(names, mean, strict=True)},
        "scale": {n: float(s) for n, s in zip(names, scale, strict=True)},
    }


def matrix(rows: list[dict[str, Any]], check: str, names: list[str]) -> np.ndarray:
    return np.array([[float(r["checks"][check][n]) for n in names] for r in rows])


def split_by_source(keys: list[str]) -> set[str]:
    """Half of every source's files (seed 0): the held-out half."""
    rng = np.random.default_rng(SEED)
    by_source: dict[str, list[str]] = {}
    for k in sorted(keys):
        by_source.setdefault(source_of(k), []).append(k)
    held: set[str] = set()
    for files in by_source.values():
        order = rng.permutation(len(files))
        held.update(files[i] for i in order[: len(files) // 2])
    return held


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scan", type=Path, nargs="+", help="JSON Lines scans of the training collection(s)")
    ap.add_argument("--data", type=Path, nargs="+", default=[DEFAULT_DATA],
                    help="the collection folders the scans were made of (for their SOURCES.tsv)")
    ap.add_argument("--exclude-sources", nargs="*", default=[],
                    help="sources kept out of the fusion fit (e.g. a round's training sources, or "
                         "tight-crop sets whose framing would teach the backdrop check a shortcut)")
    ap.add_argument("--drop-checks", nargs="*", default=[],
                    help="checks given zero fusion weight whatever the fit says (their held-out evidence "
                         "is a confound, e.g. backdrop's 'cannot judge' on tight crops)")
    ap.add_argument("--floor-checks", nargs="*", default=["geometry"],
                    help="checks whose own calibrated probability is a floor under the fused score, so "
                         "the verdict never ranks a face below what that check alone says")
    ap.add_argument("--one-sided-checks", nargs="*", default=[],
                    help="checks that count only as GAN evidence: a score below 0.5 enters as 0, like a "
                         "check that could not judge (tried for geometry, whose 'off the template' is what "
                         "re-cropped GAN faces look like too; not shipped: model card, Fusion)")
    ap.add_argument("--rank-lifted-by", default=None, metavar="CHECK",
                    help="a face a floor lifts to the gan threshold scores gan + (1 - gan) * this check's "
                         "score ('linear': the linear fusion's), so it orders the lifted faces (fusion.json "
                         "rank_lifted_by; verdicts unchanged; measured and not shipped: model card, stop 26)")
    ap.add_argument("--fusion-only", action="store_true",
                    help="keep checks.json's check models and fit the fusion alone, on the scores recorded")
    ap.add_argument("--aligned-share", type=float, default=0.1,
                    help="weight of FFHQ/CelebA-HQ-aligned reals among reals in the fit (profile photos)")
    ap.add_argument("--labels", type=Path, default=ROOT / "scripts" / "data" / "glasses_labels.tsv")
    ap.add_argument("--metrics", type=Path, default=ROOT / "scratch" / "fit_metrics.json")
    ap.add_argument("--out", type=Path, default=None,
                    help="write checks.json and fusion.json here instead of models/ (the shipped files and "
                         "MANIFEST are left alone: for trial fits, e.g. scripts/crossfit_fusion.py)")
    ap.add_argument("--gan-fpr", type=float, default=0.01, help="held-out FPR at the gan threshold")
    ap.add_argument("--real-tpr", type=float, default=0.95, help="held-out TPR kept above the real threshold")
    args = ap.parse_args(argv)

    sources = read_all_sources(args.data)
    records = {relative_key(r["path"]): r for scan in args.scan for r in read_records(scan)}
    keys = sorted(k for k in records if label_of(k) is not None)
    ok = [k for k in keys if records[k]["status"] == "ok"]
    held = split_by_source(keys)
    y_all = {k: label_of(k) for k in keys}
    metrics: dict[str, Any] = {"n_records": len(keys), "n_ok": len(ok),
                               "n_no_face": sum(records[k]["status"] == "no_face" for k in keys),
                               "n_error": sum(records[k]["status"] == "error" for k in keys)}

    if not args.fusion_only:
        # --- glasses presence: the hand labels
        labels = {}
        for line in args.labels.read_text().splitlines()[1:]:
            f, g, a = (line.split("\t") + ["", ""])[:3]
            labels[f] = (int(g), a)
        lab_keys = [k for k in labels if k in records and "bridge_edge" in records[k]["checks"].get("glasses", {})]
        yg = np.array([labels[k][0] for k in lab_keys])
        presence = fit_signed([records[k] for k in lab_keys], "glasses", yg, PRESENCE_FEATURES)
        xg = matrix([records[k] for k in lab_keys], "glasses", list(presence["weights"]))
        cv = cross_val_predict(LogisticRegression(class_weight="balanced", max_iter=1000),
                               (xg - xg.mean(0)) / (xg.std(0) + 1e-9), yg, cv=5, method="predict_proba")[:, 1]
        f1 = {t: _f1(yg, cv >= t) for t in np.round(np.arange(0.3, 0.96, 0.05), 2)}
        presence_threshold = float(max(f1, key=f1.get))
        metrics["glasses_presence"] = {
            "n_labelled": len(lab_keys), "n_glasses": int(yg.sum()),
            "cv_auc": roc_metrics(yg, cv)["auc"], "threshold": presence_threshold,
            "cv_f1": round(f1[presence_threshold], 3),
            "cv_precision": round(float(yg[cv >= presence_threshold].mean()), 3),
            "cv_recall": round(float((cv[yg == 1] >= presence_threshold).mean()), 3),
        }

        def p_present(k: str) -> float:
            return logistic_score(records[k]["checks"]["glasses"], presence)

        # --- glasses asymmetry: among faces wearing glasses, GAN vs real
        has_g = [k for k in ok if "bridge_edge" in records[k]["checks"].get("glasses", {})]
        wearing_fit = [k for k in has_g if k not in held and p_present(k) >= presence_threshold]
        asymmetry = fit_anomaly([records[k] for k in wearing_fit if y_all[k] == 0], "glasses",
                                ASYMMETRY_FEATURES, quantile=0.99)

        def glasses_score(k: str) -> float:
            return p_present(k) * logistic_score(records[k]["checks"]["glasses"], asymmetry)

        real_fit_g = np.array([glasses_score(k) for k in has_g if k not in held and y_all[k] == 0])
        glasses_flag = max(0.4, threshold_at_fpr(real_fit_g, 0.01))
        wearing_held = [k for k in has_g if k in held and p_present(k) >= presence_threshold]
        asym_lab = [k for k in lab_keys if labels[k][0] == 1 and labels[k][1] in ("0", "1")]
        metrics["glasses_asymmetry"] = {
            "held_out_gan_vs_real_among_wearers": roc_metrics(
                [y_all[k] for k in wearing_held], [glasses_score(k) for k in wearing_held]),
            "hand_labelled_asymmetric_vs_symmetric": roc_metrics(
                [int(labels[k][1]) for k in asym_lab],
                [logistic_score(records[k]["checks"]["glasses"], asymmetry) for k in asym_lab]),
            "flag_threshold": round(glasses_flag, 4),
        }

        # --- backdrop
        has_b = [k for k in ok if records[k]["checks"].get("backdrop", {}).get("coherence") is not None]
        bfit = [k for k in has_b if k not in held]
        backdrop = fit_signed([records[k] for k in bfit], "backdrop", np.array([y_all[k] for k in bfit]),
                              BACKDROP_FEATURES)

        def backdrop_score(k: str) -> float:
            return logistic_score(records[k]["checks"]["backdrop"], backdrop)

        backdrop_flag = max(0.5, threshold_at_fpr(
            np.array([backdrop_score(k) for k in bfit if y_all[k] == 0]), 0.02))
        bheld = [k for k in has_b if k in held]
        metrics["backdrop"] = {"held_out": roc_metrics([y_all[k] for k in bheld], [backdrop_score(k) for k in bheld]),
                               "flag_threshold": round(backdrop_flag, 4)}

    # --- CNN: its scores are only honest on sources it never saw in training, so with a
    # CNN the fusion is fitted and thresholded on those sources alone (half each).
    with_cnn = any("cnn" in records[k]["checks"] for k in ok)
    # The fusion's inputs: every registered check the scan recorded, in report order.
    checks = [s.name for s in registered() if any(s.name in records[k]["checks"] for k in ok)]
    fusion_pool = ok
    if with_cnn:
        cnn_meta = json.loads((ROOT / "models" / "cnn.json").read_text())
        if "train_sources" in cnn_meta:  # every source the CNN did not train on
            trained = set(cnn_meta["train_sources"])
            fusion_pool = [k for k in ok if source_of(k) not in trained]
        else:
            fusion_pool = [k for k in ok if _in_holdout(k, cnn_meta["holdout"], sources)]
        excluded = set(args.exclude_sources)
        fusion_pool = [k for k in fusion_pool if source_of(k) not in excluded]
        metrics["fusion_pool"] = "CNN held-out sources: " + ", ".join(sorted({source_of(k) for k in fusion_pool}))
        pool_real = [records[k]["checks"]["cnn"]["score"] for k in fusion_pool
                     if k not in held and y_all[k] == 0 and records[k]["checks"]["cnn"].get("score") is not None]
        cnn_flag = max(0.5, threshold_at_fpr(np.array(pool_real), 0.01))
    fit_keys = [k for k in fusion_pool if k not in held]

    # --- fusion
    # Checks whose score model this script refits score from their recorded measures; every
    # other check enters with the score it recorded.
    refitted: dict[str, Any] = {}
    if not args.fusion_only:
        has_g_set, has_b_set = set(has_g), set(has_b)
        refitted = {"glasses": lambda k: glasses_score(k) if k in has_g_set else None,
                    "backdrop": lambda k: backdrop_score(k) if k in has_b_set else None}

    def check_score(k: str, name: str) -> float | None:
        if name in refitted:
            return refitted[name](k)
        return (records[k]["checks"].get(name) or {}).get("score")

    def check_results(k: str) -> dict[str, CheckResult]:
        return {name: CheckResult(score=check_score(k, name)) for name in checks}

    names = [f"{c}_logit" for c in checks]

    one_sided = sorted(set(args.one_sided_checks) & set(checks))

    def fx(k: str, *, raw: bool = False) -> list[float]:
        """The fusion's inputs for ``k`` (``raw``: one-sided checks' logits as they are, which
        is what a floor's own calibration takes)."""
        f = features(check_results(k), checks, () if raw else one_sided)
        return [f[n] for n in names]

    xf = np.array([fx(k) for k in fit_keys])
    xraw = np.array([fx(k, raw=True) for k in fit_keys])
    yf = np.array([y_all[k] for k in fit_keys])
    # Shape the fit like profile photos: ordinary real photos dominate, aligned dataset
    # photos are a small stratum (``--aligned-share`` of the reals' weight), GAN and real
    # weigh the same in total.
    aligned_fit = np.array([is_aligned_real(k, sources) for k in fit_keys])
    wf = np.ones(len(fit_keys))
    n_al, n_ord = int(aligned_fit.sum()), int(((yf == 0) & ~aligned_fit).sum())
    if n_al and n_ord:
        wf[aligned_fit] = args.aligned_share * n_ord / ((1 - args.aligned_share) * n_al)
    wf[yf == 1] *= wf[yf == 0].sum() / max(wf[yf == 1].sum(), 1e-9)
    # Every check's score means "more GAN-like", so no check may enter with a negative
    # weight: one whose fitted weight is negative carries no weight at all.
    dropped = set(args.drop_checks)
    kept = [j for j, n in enumerate(names) if n.removesuffix("_logit") not in dropped]
    while True:
        fusion_model = LogisticRegression(C=1.0, max_iter=1000).fit(xf[:, kept], yf, sample_weight=wf)
        coef = fusion_model.coef_[0]
        if (coef >= 0).all():
            break
        kept = [j for j, c in zip(kept, coef, strict=True) if c >= 0]
    weights = {n: 0.0 for n in names}
    weights.update({names[j]: float(c) for j, c in zip(kept, coef, strict=True)})
    bias = float(fusion_model.intercept_[0])

    # Floors: a linear fusion caps what one check can say (a face exactly on the StyleGAN
    # template, geometry 0.999, is pulled under the gan threshold by a CNN that sees little),
    # so a floor check's own probability, calibrated on the same weighted population, is
    # the least the fused score can be.
    floors: dict[str, dict[str, float]] = {}
    for name in args.floor_checks:
        if name not in checks:
            continue
        column = names.index(f"{name}_logit")
        judged = np.array([check_score(k, name) is not None for k in fit_keys])
        calibration = LogisticRegression(C=1.0, max_iter=1000).fit(xraw[judged][:, [column]], yf[judged],
                                                                   sample_weight=wf[judged])
        if calibration.coef_[0][0] > 0:  # a check that means the opposite of its name is no floor
            floors[name] = {"bias": float(calibration.intercept_[0]), "weight": float(calibration.coef_[0][0])}

    def fusion_at(gan_t: float, *, ranked: bool) -> Fusion:
        """ganscreen's own fusion with the fitted numbers and this gan threshold, so the
        held-out half is scored exactly as a scan will score it. The first pass (threshold 0,
        no ranking) gives max(linear, floor), whose ordinary reals set the threshold; floors
        count only from the gan threshold up, and ``--rank-lifted-by`` orders only faces
        above it, so the scores are then recomputed at the threshold found. Records carry no
        flags here, so flag floors play no part in setting the threshold."""
        return Fusion({"version": "fit", "checks": checks, "bias": bias, "weights": weights,
                       "floors": floors, "one_sided": one_sided,
                       "rank_lifted_by": args.rank_lifted_by if ranked else None,
                       "thresholds": {"gan": gan_t, "real": 0.0}})

    def scored(fusion: Fusion) -> np.ndarray:
        return np.array([fusion.probability(check_results(k)) for k in held_ok], dtype=float)

    held_ok = [k for k in fusion_pool if k in held]
    # A face no check could judge has no score (a scan calls it `uncertain`): it sets no threshold.
    unjudged = {k for k in held_ok if all(r.score is None for r in check_results(k).values())}
    held_ok = [k for k in held_ok if k not in unjudged]
    metrics["n_held_out_unjudged"] = len(unjudged)
    yh = np.array([y_all[k] for k in held_ok])
    sh = scored(fusion_at(0.0, ranked=False))
    # The gan threshold keeps the false-positive rate on ordinary real photos of the held-out
    # half at the operating point (aligned dataset photos are reported on their own).
    ordinary_h = np.array([y_all[k] == 0 and not is_aligned_real(k, sources) for k in held_ok])
    gan_t = threshold_at_fpr(sh[ordinary_h], args.gan_fpr)
    # Rounded as fusion.json stores them, so the verdicts reported are those it gives.
    gan_t = round(min(max(gan_t, 0.5), 0.999), 5)
    sh = scored(fusion_at(gan_t, ranked=True))  # the scores as ganscreen will give them
    real_t = round(min(float(np.quantile(sh[yh == 1], 1 - args.real_tpr)), gan_t), 5)
    metrics["fusion"] = _fusion_metrics(held_ok, yh, sh, gan_t, real_t, sources)
    metrics["per_check_held_out"] = {
        name: roc_metrics(yh, [check_score(k, name) or 0.0 for k in held_ok]) for name in checks}

    # The version names the fitted numbers, not only the day: records carry it, and a resumed
    # scan keeps a record only if it was made by the same version.
    flag_floors = {flag: {"probability": round(gan_t, 5), "why": why} for flag, why in FLAG_FLOORS.items()}
    fitted_numbers = {"bias": bias, "weights": weights, "floors": floors, "gan": round(gan_t, 5),
                      "real": round(real_t, 5), "flag_floors": flag_floors}
    if one_sided:  # absent from versions fitted before one-sided checks existed
        fitted_numbers["one_sided"] = one_sided
    if args.rank_lifted_by:  # likewise for the ranking of lifted faces
        fitted_numbers["rank_lifted_by"] = args.rank_lifted_by
    fitted = json.dumps(fitted_numbers, sort_keys=True)
    version = f"fusion-{dt.date.today().isoformat()}-{hashlib.sha256(fitted.encode()).hexdigest()[:8]}"
    models = ROOT / "models"
    out_dir = args.out if args.out is not None else models
    # Flag rates on ordinary real photos are measured on other sources after a fit (model
    # card); keep them so the report's texts and their test stay in step until re-measured.
    previous = json.loads((models / "checks.json").read_text()) if (models / "checks.json").exists() else {}
    checks_json: dict[str, Any] | None = None
    if not args.fusion_only:
        checks_json = {
            "version": "checks-" + dt.date.today().isoformat(),
            "glasses": {"presence": presence, "asymmetry": asymmetry,
                        "presence_threshold": presence_threshold, "flag_threshold": round(glasses_flag, 4)},
            "backdrop": {"model": backdrop, "flag_threshold": round(backdrop_flag, 4)},
        }
        if with_cnn:
            checks_json["cnn"] = {"flag_threshold": round(cnn_flag, 4),
                                  "flag_rule": "CNN score at FPR 1 % on real photos of its held-out sources"}
        # So are the geometry check's re-crop threshold (set on ordinary real photos, model card).
        for kept in ("geometry", "flag_rates"):
            if kept in previous:
                checks_json[kept] = previous[kept]
    fusion_json = {
        "version": version,
        "checks": checks,
        "bias": bias,
        "weights": weights,
        "floors": floors,
        "flag_floors": flag_floors,
        **({"one_sided": one_sided} if one_sided else {}),
        **({"rank_lifted_by": args.rank_lifted_by} if args.rank_lifted_by else {}),
        "thresholds": {"gan": round(gan_t, 5), "real": round(real_t, 5)},
        "never_real": NEVER_REAL,
        "operating_point": {
            "gan": f"held-out FPR {args.gan_fpr:g} on the ordinary (not dataset-aligned) real photos",
            "real": f"held-out TPR {args.real_tpr:g} on its GAN faces",
        },
        "provenance": {"script": "scripts/fit_fusion.py", "seed": SEED,
                       "scan": [str(p.name) for p in args.scan],
                       "split": "half of every source held out",
                       "fitted": "the fusion alone (checks.json kept)" if args.fusion_only else
                                 "checks.json's glasses and backdrop models and the fusion",
                       "population": f"ordinary reals, aligned reals weighted to {args.aligned_share:g} of the reals"},
    }
    # Whole or not at all: a half-written model file would fail its checksum at every start.
    out_dir.mkdir(parents=True, exist_ok=True)
    if checks_json is not None:
        write_text_atomic(out_dir / "checks.json", json.dumps(checks_json, indent=2) + "\n")
    write_text_atomic(out_dir / "fusion.json", json.dumps(fusion_json, indent=2) + "\n")
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(metrics, indent=2) + "\n")
    if out_dir == models:
        import update_manifest

        update_manifest.main()
    _print(metrics)


def _in_holdout(key: str, holdout: list[str], sources: dict[str, dict[str, str]]) -> bool:
    generators = {h.split(":", 1)[1] for h in holdout if h.startswith("generator:")}
    return source_of(key) in holdout or (
        key.startswith("real/") and sources.get(key, {}).get("generator", "") in generators)


def _fusion_metrics(keys: list[str], y: np.ndarray, s: np.ndarray, gan_t: float, real_t: float,
                    sources: dict[str, dict[str, str]]) -> dict[str, Any]:
    aligned_real = np.array([is_aligned_real(k, sources) for k in keys], bool)
    ordinary = ~aligned_real
    aligned = (y == 1) | aligned_real
    out: dict[str, Any] = {
        "thresholds": {"gan": gan_t, "real": real_t},
        "held_out_all": roc_metrics(y, s),
        "held_out_vs_ordinary_reals": roc_metrics(y[ordinary], s[ordinary]),
        "held_out_vs_aligned_reals": roc_metrics(y[aligned], s[aligned]),
        "brier": round(float(np.mean((s - y) ** 2)), 4),
        "calibration": _reliability(y, s),
    }
    rows = []
    srcs = np.array([source_of(k) for k in keys])
    for src in sorted(set(srcs)):
        m = srcs == src
        rows.append({
            "source": src, "n": int(m.sum()),
            "gan": round(float(np.mean(s[m] >= gan_t)), 3),
            "uncertain": round(float(np.mean((s[m] < gan_t) & (s[m] > real_t))), 3),
            "real": round(float(np.mean(s[m] <= real_t)), 3),
            "mean_score": round(float(s[m].mean()), 3),
        })
    out["per_source_verdicts"] = rows
    return out


def _reliability(y: np.ndarray, s: np.ndarray) -> list[dict[str, float]]:
    bins = np.linspace(0, 1, 6)
    rows = []
    for lo, hi in zip(bins[:-1], bins[1:], strict=True):
        m = (s >= lo) & ((s < hi) if hi < 1 else (s <= hi))
        if m.any():
            rows.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": int(m.sum()),
                         "mean_score": round(float(s[m].mean()), 3), "gan_rate": round(float(y[m].mean()), 3)})
    return rows


def _f1(y: np.ndarray, pred: np.ndarray) -> float:
    tp = float(np.sum(pred & (y == 1)))
    return 2 * tp / max(float(pred.sum() + (y == 1).sum()), 1.0)


def _print(metrics: dict[str, Any]) -> None:
    fusion = metrics.pop("fusion")
    print(json.dumps(metrics, indent=2))
    print(json.dumps({k: v for k, v in fusion.items() if k != "per_source_verdicts"}, indent=2))
    print(table(fusion["per_source_verdicts"], ["source", "n", "gan", "uncertain", "real", "mean_score"]))


if __name__ == "__main__":
    main()
