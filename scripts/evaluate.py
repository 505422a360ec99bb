"""Evaluate ganscreen on any folder with real/ and gan/ subfolders.

    python scripts/evaluate.py ../shared/data/faces                 # everything
    python scripts/evaluate.py ../shared/data/faces --cnn-holdout    # only the CNN's held-out sources
    python scripts/evaluate.py DIR --degrade --json results.json     # also on a degraded copy

Prints AUC, TPR at FPR 1 % and 0.5 %, and accuracy at the shipped thresholds, for the fused
score and for each check alone, overall and per top-level source prefix (the part of the
file name before ``__``, or the subfolder under real/ or gan/). ``--degrade`` repeats the
evaluation on a copy with the longer side at 256 px and JPEG quality 60 (what platforms do
to profile photos). A check that cannot judge an image scores it 0 for its own row.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA, read_sources, roc_metrics, table  # noqa: E402
from ganscreen import Screener  # noqa: E402
from ganscreen._assets import load_json  # noqa: E402
from ganscreen.images import ImageLoadError, load_image  # noqa: E402


def list_files(root: Path, include: set[str] | None, include_generators: set[str]) -> list[tuple[Path, str, int, str]]:
    """(path, key, label, source) for images under root/real and root/gan."""
    sources = read_sources(root)
    out = []
    for label_name, label in (("real", 0), ("gan", 1)):
        for path in sorted((root / label_name).rglob("*")):
            if not path.is_file() or path.suffix.lower() not in {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}:
                continue
            rel = path.relative_to(root / label_name)
            prefix = rel.parts[0] if len(rel.parts) > 1 else rel.name.split("__", 1)[0]
            source = f"{label_name}/{prefix}"
            key = f"{label_name}/{rel.as_posix()}"
            generator = sources.get(key, {}).get("generator", "")
            if include is None or source in include or (label == 0 and generator in include_generators):
                out.append((path, key, label, source))
    return out


def degrade(files: list[tuple[Path, str, int, str]], folder: Path) -> list[tuple[Path, str, int, str]]:
    """Longer side 256 px, JPEG quality 60."""
    out = []
    for path, key, label, source in files:
        target = folder / (key.replace("/", "__") + ".jpg")
        try:
            img = load_image(path).pil()
        except ImageLoadError:
            continue
        if max(img.size) > 256:
            img.thumbnail((256, 256), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=60)
        target.write_bytes(buf.getvalue())
        out.append((target, key, label, source))
    return out


def evaluate(files: list[tuple[Path, str, int, str]], screener: Screener) -> dict[str, Any]:
    fusion = load_json("fusion.json")
    gan_t, real_t = fusion["thresholds"]["gan"], fusion["thresholds"]["real"]
    rows = []
    by_path = {str(p): (key, label, source) for p, key, label, source in files}
    for report in screener.scan_inputs(_inputs(files)):
        key, label, source = by_path[report.path]
        record = report.to_record()
        scores = {"fused": record["score"]}
        scores.update({name: check.get("score") for name, check in record["checks"].items()})
        rows.append({"key": key, "label": label, "source": source, "status": record["status"],
                     "verdict": record["verdict"], "scores": scores})
    names = ["fused", *[n for n in rows[0]["scores"] if n != "fused"]] if rows else []
    result: dict[str, Any] = {"n": len(rows), "status": dict(Counter(r["status"] for r in rows)),
                              "thresholds": {"gan": gan_t, "real": real_t}, "overall": {}, "per_source": {}}
    y = np.array([r["label"] for r in rows])
    for name in names:
        s = np.array([r["scores"].get(name) or 0.0 for r in rows])
        result["overall"][name] = roc_metrics(y, s)
    fused = np.array([r["scores"]["fused"] or 0.0 for r in rows])
    result["overall"]["fused"]["accuracy_at_gan_threshold"] = round(float(np.mean((fused >= gan_t) == (y == 1))), 4)
    verdicts = [r["verdict"] for r in rows]
    result["overall"]["fused"]["verdicts"] = {
        "gan": {v: sum(1 for r, vv in zip(rows, verdicts, strict=True) if r["label"] == 1 and vv == v)
                for v in ("gan", "uncertain", "real", None)},
        "real": {v: sum(1 for r, vv in zip(rows, verdicts, strict=True) if r["label"] == 0 and vv == v)
                 for v in ("gan", "uncertain", "real", None)},
    }
    reals = y == 0
    for source in sorted({r["source"] for r in rows}):
        m = np.array([r["source"] == source for r in rows])
        entry: dict[str, Any] = {"n": int(m.sum())}
        for name in names:
            s = np.array([r["scores"].get(name) or 0.0 for r in rows])
            if source.startswith("gan/"):  # this GAN source against every real in the set
                sel = m | reals
                entry[name] = roc_metrics(y[sel], s[sel])
            else:  # a real source: how often it would be called GAN
                entry[name] = {"mean": round(float(s[m].mean()), 4)}
        entry["called_gan"] = round(float(np.mean(fused[m] >= gan_t)), 4)
        entry["called_real"] = round(float(np.mean(fused[m] <= real_t)), 4)
        result["per_source"][source] = entry
    return result


def _inputs(files: list[tuple[Path, str, int, str]]):  # noqa: ANN202
    from ganscreen.images import InputFile

    return (InputFile(p) for p, _, _, _ in files)


def show(title: str, result: dict[str, Any]) -> None:
    print(f"\n## {title}: {result['n']} images {result['status']}\n")
    rows = [{"score": name, **m} for name, m in result["overall"].items()]
    print(table(rows, ["score", "n_pos", "n_neg", "auc", "tpr_at_fpr_0.01", "tpr_at_fpr_0.005"]))
    print("fused verdicts:", json.dumps(result["overall"]["fused"].get("verdicts")))
    print(f"fused accuracy at the gan threshold: {result['overall']['fused'].get('accuracy_at_gan_threshold')}\n")
    rows = []
    for source, entry in result["per_source"].items():
        fused = entry.get("fused", {})
        rows.append({"source": source, "n": entry["n"], "fused_auc": fused.get("auc", ""),
                     "fused_tpr@1%": fused.get("tpr_at_fpr_0.01", ""),
                     "cnn_auc": entry.get("cnn", {}).get("auc", ""),
                     "geometry_auc": entry.get("geometry", {}).get("auc", ""),
                     "called_gan": entry["called_gan"], "called_real": entry["called_real"]})
    print(table(rows, ["source", "n", "fused_auc", "fused_tpr@1%", "cnn_auc", "geometry_auc",
                       "called_gan", "called_real"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, nargs="?", default=DEFAULT_DATA)
    ap.add_argument("--include", nargs="*", default=None,
                    help="only these sources ('gan/x', 'real/y'); 'generator:NAME' selects reals by generator")
    ap.add_argument("--cnn-holdout", action="store_true", help="only the sources the shipped CNN never saw")
    ap.add_argument("--degrade", action="store_true", help="also evaluate a 256 px, JPEG-60 copy")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    include = args.include
    if args.cnn_holdout:
        include = load_json("cnn.json")["holdout"]
    include_sources = None if include is None else {i for i in include if not i.startswith("generator:")}
    include_generators = set() if include is None else {i.split(":", 1)[1] for i in include if i.startswith("generator:")}
    files = list_files(args.folder, include_sources, include_generators)
    screener = Screener(device=args.device)
    results = {"clean": evaluate(files, screener)}
    show("clean", results["clean"])
    if args.degrade:
        with tempfile.TemporaryDirectory() as tmp:
            results["degraded"] = evaluate(degrade(files, Path(tmp)), screener)
        show("degraded (longer side 256 px, JPEG 60)", results["degraded"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
