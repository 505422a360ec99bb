"""How often do verdicts flip under platform processing? (``--robustness`` on a sample.)

    python scripts/robustness_rate.py --n 300 [--json out.json]

Draws a random sample (seed 0) of the training collection, screens each image and its
platform-processed copies (longer side 512/384/256 px, JPEG 85/75/60), and reports the share
of faces whose verdict flips, overall, per label and per variant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA  # noqa: E402
from ganscreen import Screener  # noqa: E402
from ganscreen.pipeline import ROBUSTNESS_VARIANTS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    files = sorted(p for p in args.data.glob("*/*") if p.parent.name in ("real", "gan"))
    rng = np.random.default_rng(0)
    sample = [files[i] for i in sorted(rng.choice(len(files), size=min(args.n, len(files)), replace=False))]
    screener = Screener(device="auto", robustness=True)
    rows = []
    for report in screener.scan(sample):
        if report.robustness is None:
            continue
        label = Path(report.path).parent.name
        rows.append({"label": label, "verdict": report.verdict, "unstable": report.robustness["unstable"],
                     "variants": [v["verdict"] for v in report.robustness["variants"]]})
    result = {"n_judged": len(rows), "unstable": round(float(np.mean([r["unstable"] for r in rows])), 4)}
    for label in ("gan", "real"):
        sub = [r for r in rows if r["label"] == label]
        if sub:
            result[f"unstable_{label}"] = round(float(np.mean([r["unstable"] for r in sub])), 4)
            result[f"n_{label}"] = len(sub)
    for j, (side, quality) in enumerate(ROBUSTNESS_VARIANTS):
        result[f"flips_at_{side}px_q{quality}"] = round(
            float(np.mean([r["variants"][j] != r["verdict"] for r in rows])), 4)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
