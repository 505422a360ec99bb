"""How a fusion fit does on sources it was not fitted on: leave one source out, fit, score it.

    python scripts/evaluate.py --data UNSEEN --heldout --records e.jsonl
    python scripts/crossfit_fusion.py --fit fit_scan.jsonl --records e.jsonl --data FIT UNSEEN \\
        --out scratch/crossfit -- --fusion-only --drop-checks backdrop [--one-sided-checks geometry]

``--records`` holds the sources to bring into a fit (JSON Lines from ``scripts/evaluate.py
--records``: every check's score, per variant). For each of its sources, ``scripts/fit_fusion.py``
(with the arguments after ``--``) fits the fusion on the ``--fit`` scans plus the as-found records
of every *other* source of ``--records``, and that fit scores the left-out source's records, every
variant, through :class:`ganscreen.fusion.Fusion` (as ``scripts/rescore_fusion.py`` does). The
out-of-fold rows of all sources are pooled, one table row per variant, beside the ``--baseline``
fusion on the same records; verdicts are each fold's own. ``--out`` keeps each fold's
``fusion.json``, metrics and fit log, and the fit on every source (``full/``), which is what would
ship. Nothing under ``models/`` is written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fit_fusion  # noqa: E402
import rescore_fusion  # noqa: E402
from _common import ROOT, read_records, relative_key, source_of, table  # noqa: E402
from ganscreen.fusion import Fusion  # noqa: E402

FULL = "full"  # the fold that leaves nothing out


def fold_name(source: str | None) -> str:
    return FULL if source is None else source.replace("/", "__")


def fit_fold(fits: list[Path], pool: list[dict[str, Any]], name: str, data: list[Path],
             fit_args: list[str], out: Path) -> dict[str, Any]:
    """fit_fusion.py on ``fits`` plus the ``pool`` records; returns the fusion.json it wrote
    under ``out``/``name``."""
    fold = out / name
    fold.mkdir(parents=True, exist_ok=True)
    pool_path = fold / "pool.jsonl"
    pool_path.write_text("".join(json.dumps(r) + "\n" for r in pool), encoding="utf-8")
    argv = [*map(str, fits), str(pool_path), "--data", *map(str, data), *fit_args,
            "--out", str(fold), "--metrics", str(fold / "metrics.json")]
    with (fold / "fit.log").open("w", encoding="utf-8") as log, contextlib.redirect_stdout(log):
        fit_fusion.main(argv)
    pool_path.unlink()
    params: dict[str, Any] = json.loads((fold / "fusion.json").read_text(encoding="utf-8"))
    return params


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    fit_args = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fit", type=Path, nargs="+", required=True, help="scans every fold is fitted on")
    ap.add_argument("--records", type=Path, required=True, help="scripts/evaluate.py --records of the sources to cross-fit")
    ap.add_argument("--data", type=Path, nargs="+", required=True, help="the folders of both (their SOURCES.tsv)")
    ap.add_argument("--baseline", type=Path, default=ROOT / "models" / "fusion.json")
    ap.add_argument("--out", type=Path, required=True, help="each fold's fusion.json, metrics and fit log")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(own)

    records = [r for r in read_records(args.records) if "variant" in r]
    if not records:
        raise SystemExit(f"{args.records}: no scripts/evaluate.py records (with a variant) in it")
    by_source: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_source.setdefault(source_of(relative_key(r["path"])), []).append(r)
    found = {s: [r for r in rs if r["variant"] == "as_found"] for s, rs in by_source.items()}
    rows: list[dict[str, Any]] = []
    folds: dict[str, Any] = {}
    for source in sorted(by_source):
        pool = [r for other, rs in found.items() if other != source for r in rs]
        params = fit_fold(args.fit, pool, fold_name(source), args.data, fit_args, args.out)
        folds[source] = {"version": params["version"], "thresholds": params["thresholds"]}
        rows += rescore_fusion.rescore(by_source[source], Fusion(params))
    full = fit_fold(args.fit, [r for rs in found.values() for r in rs], FULL, args.data, fit_args, args.out)
    folds[FULL] = {"version": full["version"], "thresholds": full["thresholds"], "weights": full["weights"],
                   "bias": full["bias"]}
    baseline = rescore_fusion.rescore(records, Fusion(json.loads(args.baseline.read_text(encoding="utf-8"))))
    result: dict[str, Any] = {"folds": folds, "baseline": {}, "out_of_fold": {}}
    lines = []
    for name, scored in (("baseline", baseline), ("out_of_fold", rows)):
        label = args.baseline.name if name == "baseline" else "left-out source's own fit"
        for variant in sorted({r["variant"] for r in scored}):
            summary = rescore_fusion.summary([r for r in scored if r["variant"] == variant])
            result[name][variant] = summary
            lines.append(rescore_fusion.table_row(label, variant, summary))
    print(table(lines, list(lines[0])))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
