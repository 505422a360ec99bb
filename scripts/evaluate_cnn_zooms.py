#!/usr/bin/env python3
"""Score CNN weights on the held-out faces at several crop zooms, and their logit average.

Developer script (stop 25's design T: a test-time zoom ensemble). It uses ``train_cnn.py``'s
own face cache, hold-out split, held-out variants (as found, re-cropped, degraded; the same
seeds as ``--evaluate``) and prediction (crop and mirror), so its zoom-1.3 row reproduces
``train_cnn.py --evaluate`` exactly:

    python scripts/evaluate_cnn_zooms.py --data ../shared/data/faces R3FIT --zooms 1.3 1.8 \\
        --json scratch/zooms.json

Cells are all held-out GAN faces against all held-out reals.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_cnn  # noqa: E402
from _common import ROOT, roc_metrics  # noqa: E402

VARIANTS = train_cnn.VARIANTS


def logits_by_zoom(model: torch.nn.Module, held: list, config: train_cnn.ModelConfig,
                   zooms: list[float]) -> dict[tuple[str, float], np.ndarray]:
    """Each held-out face's logit (crop and mirror averaged) per variant and zoom."""
    out = {}
    for variant in VARIANTS:
        for zoom in zooms:
            cfg = replace(config, zoom=zoom)
            out[(variant, zoom)] = train_cnn.predict_logits(model, train_cnn.variant_crops(held, cfg, variant), cfg)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=ROOT / "models" / "cnn.safetensors")
    ap.add_argument("--config", type=Path, default=ROOT / "models" / "cnn.json")
    ap.add_argument("--data", type=Path, nargs="+", required=True)
    ap.add_argument("--holdout", nargs="*", default=train_cnn.DEFAULT_HOLDOUT)
    ap.add_argument("--cache", type=Path, default=ROOT / "scratch" / "cnn_cache")
    ap.add_argument("--zooms", type=float, nargs="+", default=[1.3, 1.8])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = train_cnn.ModelConfig.from_dict(json.loads(args.config.read_text()))
    samples = train_cnn.build_cache(args.data, args.cache, max_per_class=None, seed=0, detections=None)
    _, held = train_cnn.split(samples, args.holdout, args.data)
    if not held:
        raise SystemExit("no held-out faces to score")
    y = np.array([s.label for s in held])
    if len(set(y.tolist())) < 2:
        raise SystemExit("the held-out faces need both classes")
    logits = logits_by_zoom(train_cnn.load_model(args.weights, config), held, config, args.zooms)
    result: dict = {"weights": str(args.weights), "n_held_out": len(held), "n_gan": int(y.sum()),
                    "zooms": args.zooms}
    for variant in VARIANTS:  # the metrics are rank-based, so logits score as probabilities do
        for zoom in args.zooms:
            result[f"{variant}@{zoom}"] = roc_metrics(y, logits[(variant, zoom)])
        result[f"{variant}@mean"] = roc_metrics(y, np.mean([logits[(variant, z)] for z in args.zooms], axis=0))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    for key, value in result.items():
        if isinstance(value, dict):
            print(f"{key:24s} AUC {value['auc']:.4f}  TPR@1% {value['tpr_at_fpr_0.01']:.3f}")
    return result


if __name__ == "__main__":
    main()
