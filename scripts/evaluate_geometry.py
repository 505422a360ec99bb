"""Geometry check: AUC and TPR at 1 % FPR, GAN vs real, per source, from a scan.

    ganscreen scan ../shared/data/faces -o scratch/collection.jsonl --fail-on never
    python scripts/evaluate_geometry.py scratch/collection.jsonl [--json out.json]

Real photos aligned with the FFHQ procedure (FFHQ, CelebA-HQ and other aligned sets) are the
check's known blind spot and are reported separately from ordinary real photos. A face the
check cannot judge (cut off, no face, several faces) counts as score 0 — not on template.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ALIGNED_REAL_GENERATORS,
    DEFAULT_DATA,
    label_of,
    read_records,
    read_sources,
    relative_key,
    roc_metrics,
    source_of,
    table,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scan", type=Path)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = ap.parse_args()

    sources = read_sources(args.data)
    rows = []
    for rec in read_records(args.scan):
        key = relative_key(rec["path"])
        label = label_of(key)
        if label is None:
            continue
        geo = (rec.get("checks") or {}).get("geometry") or {}
        generator = sources.get(key, {}).get("generator", "")
        rows.append({
            "key": key, "label": label, "source": source_of(key), "generator": generator,
            "score": geo.get("score") or 0.0, "flag": "ffhq_alignment" in rec.get("flags", []),
            "judged": geo.get("score") is not None,
        })
    gan = [r for r in rows if r["label"] == 1]
    ordinary = [r for r in rows if r["label"] == 0 and r["generator"] not in ALIGNED_REAL_GENERATORS]
    aligned = [r for r in rows if r["label"] == 0 and r["generator"] in ALIGNED_REAL_GENERATORS]
    ffhq = [r for r in aligned if r["generator"] == "ffhq"]

    def versus(pos: list[dict], neg: list[dict]) -> dict:
        return roc_metrics([1] * len(pos) + [0] * len(neg), [r["score"] for r in pos + neg], fprs=(0.01,))

    results = []
    for name, negatives in (("ordinary reals", ordinary), ("FFHQ reals", ffhq),
                            ("all FFHQ-aligned reals", aligned)):
        results.append({"gan": "all GAN", "vs": name, **versus(gan, negatives)})
        for src in sorted({r["source"] for r in gan}):
            results.append({"gan": src, "vs": name, **versus([r for r in gan if r["source"] == src], negatives)})
    flag_rates = []
    for src in sorted({r["source"] for r in rows}):
        members = [r for r in rows if r["source"] == src]
        flag_rates.append({
            "source": src, "label": "gan" if members[0]["label"] else "real",
            "generator": ",".join(sorted({r["generator"] for r in members})),
            "n": len(members), "judged": round(float(np.mean([r["judged"] for r in members])), 3),
            "flagged": round(float(np.mean([r["flag"] for r in members])), 3),
        })
    print("Geometry score, GAN vs real (TPR at 1 % FPR):\n")
    print(table(results, ["gan", "vs", "n_pos", "n_neg", "auc", "tpr_at_fpr_0.01"]))
    print("Share flagged ffhq_alignment per source:\n")
    print(table(flag_rates, ["source", "label", "generator", "n", "judged", "flagged"]))
    if args.json:
        args.json.write_text(json.dumps({"versus": results, "flag_rates": flag_rates}, indent=2) + "\n")


if __name__ == "__main__":
    main()
