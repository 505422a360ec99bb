"""Score recorded scans again with other fusion files: compare fusions without scanning again.

    python scripts/evaluate.py --data FIT --heldout --variants as_found recropped --records f0.jsonl
    python scripts/rescore_fusion.py f0.jsonl --fusion models/fusion.json candidate.json \\
        [--heldout-of fit.jsonl]
    python scripts/rescore_fusion.py scan.jsonl --data FOLDER --fusion ...   # a ganscreen scan

Every record of ``evaluate.py --records`` (its check scores and flags, per variant) is decided
again by each ``--fusion`` file through :class:`ganscreen.fusion.Fusion`, exactly as a scan with
that file in ``models/`` would decide it (the checks' scores do not depend on the fusion).
``--heldout-of SCAN`` keeps only the files of the half that ``scripts/fit_fusion.py`` holds out
when fitting on that scan (half of every source, seed 0), so fusions fitted on SCAN are compared
on files none of them was fitted on. Rows: per fusion and variant, AUC / TPR at 1 % FPR of all
GAN faces against the ordinary and the aligned real photos (faces only: records without a
score are left out), and the verdicts at the file's own thresholds — the share of ordinary
real photos called ``gan`` is the false-positive rate an analyst meets. ``--bootstrap N``
adds, for every fusion after the first, a paired bootstrap of its AUC against ordinary reals
minus the first fusion's (the same faces resampled for both, GAN and real faces each drawn
with replacement, seed 0): the 95 % interval says whether a difference is more than the draw
of faces.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    is_aligned_real,
    label_of,
    read_all_sources,
    read_records,
    relative_key,
    roc_metrics,
    table,
)
from fit_fusion import split_by_source  # noqa: E402
from ganscreen.checks import CheckResult  # noqa: E402
from ganscreen.fusion import Fusion  # noqa: E402


def check_results(record: dict[str, Any]) -> dict[str, CheckResult]:
    """The check results a record holds: each check's score, and the record's flags given to
    the check that raises them (only flags matter to the fusion, not which check said them)."""
    flags = tuple(record.get("flags") or ())
    out = {}
    for i, (name, check) in enumerate((record.get("checks") or {}).items()):
        out[name] = CheckResult(score=check.get("score"), flags=flags if i == 0 else ())
    return out


def rescore(records: list[dict[str, Any]], fusion: Fusion) -> list[dict[str, Any]]:
    rows = []
    for rec in records:
        if rec.get("status") != "ok" or rec.get("score") is None:
            continue
        decision = fusion.decide(check_results(rec))
        rows.append({"variant": rec["variant"], "label": rec["label"], "aligned": rec["aligned"],
                     "score": decision.score, "verdict": decision.verdict})
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    y = np.array([r["label"] for r in rows])
    s = np.array([r["score"] for r in rows], float)
    aligned = np.array([r["aligned"] for r in rows], bool)
    ordinary, vs_aligned = ~aligned, (y == 1) | aligned
    verdicts = {
        "ordinary_reals": Counter(r["verdict"] for r in rows if r["label"] == 0 and not r["aligned"]),
        "gan": Counter(r["verdict"] for r in rows if r["label"] == 1),
    }
    return {"vs_ordinary": roc_metrics(y[ordinary], s[ordinary]), "vs_aligned": roc_metrics(y[vs_aligned], s[vs_aligned]),
            "verdicts": {k: dict(v) for k, v in verdicts.items()}}


def paired_auc_difference(y: np.ndarray, base: np.ndarray, other: np.ndarray, n: int,
                          seed: int = 0) -> dict[str, float]:
    """AUC(other) − AUC(base) on the same faces, with a 95 % paired bootstrap interval
    (positives and negatives resampled separately, so every draw has both)."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    diffs = np.empty(n)
    for i in range(n):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        diffs[i] = roc_auc_score(y[idx], other[idx]) - roc_auc_score(y[idx], base[idx])
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"difference": round(float(roc_auc_score(y, other) - roc_auc_score(y, base)), 4),
            "low": round(float(low), 4), "high": round(float(high), 4), "draws": n}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("records", type=Path, nargs="+", help="JSON Lines from scripts/evaluate.py --records")
    ap.add_argument("--fusion", type=Path, nargs="+", required=True, help="fusion.json files to compare")
    ap.add_argument("--heldout-of", type=Path, default=None, metavar="SCAN",
                    help="only the files fit_fusion.py holds out when fitting on this scan")
    ap.add_argument("--data", type=Path, nargs="*", default=[],
                    help="for plain `ganscreen scan` records: the folders scanned (their SOURCES.tsv says "
                         "which reals are dataset-aligned); such records count as one variant, as found")
    ap.add_argument("--bootstrap", type=int, default=0, metavar="N",
                    help="paired bootstrap draws for each fusion's AUC difference from the first (0: none)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    sources = read_all_sources(args.data)
    records = []
    for path in args.records:
        for r in read_records(path):
            if "key" not in r:  # a plain scan record: its file's label folder says its class
                key = relative_key(r["path"])
                if label_of(key) is None:
                    continue
                r = {**r, "key": key, "label": label_of(key), "aligned": is_aligned_real(key, sources),
                     "variant": "as_found"}
            # Several files may hold one variant (draws of re-crops): each row names its file too.
            records.append({**r, "variant": f"{r['variant']} ({path.stem})"})
    if args.heldout_of is not None:
        # One key per file, as fit_fusion.py keys its records, so the split is the same one.
        keys = sorted({k for k in (relative_key(r["path"]) for r in read_records(args.heldout_of))
                       if label_of(k) is not None})
        held = split_by_source(keys)
        records = [r for r in records if r["key"] in held]
    if not records:
        raise SystemExit("no records to score")
    out: dict[str, Any] = {}
    lines = []
    first: list[dict[str, Any]] | None = None
    for path in args.fusion:
        params = json.loads(path.read_text(encoding="utf-8"))
        fusion = Fusion(params)
        rows = rescore(records, fusion)
        first = rows if first is None else first
        for variant in sorted({r["variant"] for r in rows}):
            result = summary([r for r in rows if r["variant"] == variant])
            if args.bootstrap and rows is not first:
                # rescore keeps the records' order and drops the same ones whatever the fusion
                pick = [i for i, r in enumerate(rows) if r["variant"] == variant and not r["aligned"]]
                y = np.array([rows[i]["label"] for i in pick])
                if len(set(y)) == 2:
                    result["auc_vs_ordinary_minus_first"] = paired_auc_difference(
                        y, np.array([first[i]["score"] for i in pick]), np.array([rows[i]["score"] for i in pick]),
                        args.bootstrap)
            out.setdefault(str(path), {})[variant] = result
            lines.append({
                **table_row(f"{path.name} ({params['version']})", variant, result),
                **({"AUC − first (95 %)": _difference(result["auc_vs_ordinary_minus_first"])}
                   if "auc_vs_ordinary_minus_first" in result else {}),
            })
    print(table(lines, list(dict.fromkeys(k for line in lines for k in line))))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return out


def table_row(fusion: str, variant: str, result: dict[str, Any]) -> dict[str, str]:
    """One printed row of a :func:`summary`: AUC / TPR against ordinary and aligned reals, and
    the verdicts an analyst meets."""
    o, a, real = result["vs_ordinary"], result["vs_aligned"], result["verdicts"]["ordinary_reals"]
    n_real = sum(real.values())
    return {
        "fusion": fusion, "variant": variant,
        "vs ordinary": _auc_tpr(o), "vs aligned": _auc_tpr(a),
        "n GAN / ordinary": f"{o.get('n_pos', 0)} / {o.get('n_neg', 0)}",
        "ordinary reals called gan": f"{real.get('gan', 0)} ({real.get('gan', 0) / max(n_real, 1):.1%})",
        "called real": f"{real.get('real', 0)}",
        "GAN faces called gan": f"{result['verdicts']['gan'].get('gan', 0)}",
    }


def _difference(d: dict[str, float]) -> str:
    return f"{d['difference']:+.3f} ({d['low']:+.3f} to {d['high']:+.3f})"


def _auc_tpr(metrics: dict[str, Any]) -> str:
    """'AUC / TPR at 1 % FPR', or a dash where one class is missing."""
    if "auc" not in metrics:
        return "—"
    return f"{metrics['auc']:.3f} / {metrics['tpr_at_fpr_0.01']:.1%}"


if __name__ == "__main__":
    main()
