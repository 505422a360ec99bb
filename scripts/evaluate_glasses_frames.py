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

``pose`` says how much of that is head pose: each face's yaw (the nose's offset from the eye
midpoint along the eye line, in eye distances, from the detected landmarks), the AUC of |yaw|
alone between asymmetric and symmetric frames, each asymmetry measure's correlation with |yaw|
among the symmetric frames, and the AUCs among near-frontal faces only (|yaw| < 0.08).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, label_of, roc_metrics, source_of  # noqa: E402
from ganscreen.checks.glasses import FLAG, SPEC  # noqa: E402
from ganscreen.faces import primary_face  # noqa: E402
from ganscreen.pipeline import Screener  # noqa: E402

DEFAULT_LABELS = ROOT / "scripts" / "data" / "glasses_frames.tsv"
FRONTAL_YAW = 0.08  # |yaw| below this: a near-frontal face (about the median of the labelled frames)
POSE_MEASURES = ("lens_asymmetry", "temple_asymmetry", "orientation_asymmetry", "asymmetry")


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
        face = primary_face(list(report.faces))
        rows.append({
            "key": key, "source": source_of(key), "gan": label_of(key) == 1,
            "judged": score is not None, "score": float(score) if score is not None else 0.0,
            "flag": result is not None and FLAG in result.flags,
            "yaw": None if face is None else yaw(face.landmarks),
            "measures": {k: float(v) for k, v in (result.measures if result is not None else {}).items()
                         if k in POSE_MEASURES},
        })
    return rows


def yaw(landmarks: np.ndarray) -> float:
    """The nose tip's offset from the eye midpoint along the eye line, in eye distances
    (0: frontal; its sign says which way the head is turned)."""
    left, right, nose = (np.asarray(p, np.float64) for p in landmarks[:3])
    axis = right - left
    distance = float(np.hypot(*axis)) or 1.0
    return float(np.dot(nose - (left + right) / 2, axis / distance) / distance)


def pose(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How far pose alone explains the labels and the measures (see the module's docstring)."""
    posed = [r for r in rows if r["judged"] and r["yaw"] is not None]
    sym = [r for r in posed if r["asym"] == 0]
    frontal = [r for r in posed if abs(r["yaw"]) < FRONTAL_YAW]
    correlation = {}
    for name in POSE_MEASURES:
        values = np.array([r["measures"].get(name, np.nan) for r in sym])
        turn = np.array([abs(r["yaw"]) for r in sym])
        ok = np.isfinite(values)
        varies = ok.sum() > 2 and values[ok].std() > 0 and turn[ok].std() > 0  # else no correlation to give
        correlation[name] = round(float(np.corrcoef(values[ok], turn[ok])[0, 1]), 3) if varies else None
    return {
        "abs_yaw_auc": auc([{**r, "score": abs(r["yaw"])} for r in posed]),
        "mean_abs_yaw": {"asymmetric": _mean_abs_yaw([r for r in posed if r["asym"] == 1]),
                         "symmetric": _mean_abs_yaw(sym)},
        "correlation_with_abs_yaw_among_symmetric": correlation,
        "frontal": {"max_abs_yaw": FRONTAL_YAW, "score": auc(frontal),
                    **{name: auc([{**r, "score": r["measures"].get(name, 0.0)} for r in frontal])
                       for name in POSE_MEASURES}},
    }


def _mean_abs_yaw(rows: list[dict[str, Any]]) -> float | None:
    return round(float(np.mean([abs(r["yaw"]) for r in rows])), 4) if rows else None


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
        "pose": pose(rows),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
