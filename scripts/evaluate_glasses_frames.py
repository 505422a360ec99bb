"""Glasses check on the natural frame labels: asymmetric vs symmetric frames.

    python scripts/evaluate_glasses_frames.py --data ../shared/data/faces /work/data/round3 \\
        [--labels scripts/data/glasses_frames.tsv] [--json out.json]

Every labelled wearer (glasses = 1, asymmetric 0 or 1; ``?`` left out) is screened by a
:class:`ganscreen.pipeline.Screener` that runs the shipped glasses check only (the pipeline's
own loading, MTCNN detection and alignment). Reported: the AUC of the check's score between
asymmetric and symmetric frames (all, GAN only, and per GAN source that has both), the share
of asymmetric frames, of symmetric real and of symmetric GAN frames carrying the
``glasses_asymmetry`` flag, and the counts. A frame the check cannot judge (no face, eye
region outside the image) counts as score 0 and unflagged, and is counted as not judged.
A labelled file found in none of the ``--data`` folders is counted as missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, label_of, roc_metrics, source_of  # noqa: E402
from ganscreen.checks.glasses import FLAG, SPEC  # noqa: E402
from ganscreen.pipeline import Screener  # noqa: E402

DEFAULT_LABELS = ROOT / "scripts" / "data" / "glasses_frames.tsv"


def read_labels(path: Path) -> dict[str, int]:
    """'label/file' → 1 (asymmetric) or 0 (symmetric), for the wearers with a firm label."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    out: dict[str, int] = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t"), strict=False))
        if row.get("glasses") == "1" and row.get("asymmetric") in ("0", "1"):
            out[row["file"]] = int(row["asymmetric"])
    return out


def locate(keys: list[str], folders: list[Path]) -> dict[str, Path]:
    """The first ``--data`` folder holding each key (keys found nowhere are left out)."""
    found: dict[str, Path] = {}
    for key in keys:
        for folder in folders:
            if (folder / key).is_file():
                found[key] = folder / key
                break
    return found


def screen(paths: dict[str, Path], device: str) -> list[dict[str, Any]]:
    """The glasses check's score and flag for each file, through the pipeline."""
    screener = Screener(checks=[SPEC.build(device)], device=device, workers=1, torch_threads=1)
    keys = list(paths)
    rows = []
    for key, report in zip(keys, screener.scan([paths[k] for k in keys]), strict=True):
        result = report.checks.get("glasses")
        score = result.score if result is not None else None
        rows.append({
            "key": key, "source": source_of(key), "gan": label_of(key) == 1,
            "judged": score is not None, "score": float(score) if score is not None else 0.0,
            "flag": result is not None and FLAG in result.flags,
        })
    return rows


def share(rows: list[dict[str, Any]]) -> dict[str, Any]:
    flagged = sum(r["flag"] for r in rows)
    return {"n": len(rows), "flagged": flagged, "share": round(flagged / len(rows), 4) if rows else None}


def auc(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return roc_metrics([r["asym"] for r in rows], [r["score"] for r in rows], fprs=(0.05, 0.01))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, nargs="+", required=True,
                    help="collection folders (each with gan/ and real/) that hold the labelled files")
    ap.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = ap.parse_args()

    labels = read_labels(args.labels)
    paths = locate(sorted(labels), args.data)
    rows = screen(paths, args.device)
    for r in rows:
        r["asym"] = labels[r["key"]]
    gan = [r for r in rows if r["gan"]]
    asym = [r for r in rows if r["asym"] == 1]
    sym_real = [r for r in rows if r["asym"] == 0 and not r["gan"]]
    sym_gan = [r for r in gan if r["asym"] == 0]
    # n_pos: asymmetric frames, n_neg: symmetric ones; an AUC only where a source has both.
    per_source = {source: auc([r for r in gan if r["source"] == source])
                  for source in sorted({r["source"] for r in gan})}
    out = {
        "labels": str(args.labels),
        "counts": {
            "labelled_wearers": len(labels), "missing": len(labels) - len(paths),
            "screened": len(rows), "not_judged": sum(not r["judged"] for r in rows),
            "asymmetric": len(asym), "symmetric_real": len(sym_real), "symmetric_gan": len(sym_gan),
        },
        "auc_all": auc(rows),
        "auc_gan": auc(gan),
        "auc_per_gan_source": per_source,
        "flagged": {"asymmetric": share(asym), "symmetric_real": share(sym_real),
                    "symmetric_gan": share(sym_gan)},
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
