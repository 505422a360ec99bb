"""Interpolate two CNN weight files of one architecture: a weight-space ensemble ("model soup").

    python scripts/soup_cnn.py models/cnn.safetensors scratch/candD/cnn.safetensors \\
        --alpha 0.25 0.5 0.75 --out scratch/soups

For each alpha it writes ``soup-<alpha>.safetensors`` (and a ``.json`` beside it naming both
parents), holding ``(1 - alpha) * A + alpha * B`` for every floating-point tensor, batch-norm
running statistics included; integer tensors (batch-norm step counters) are taken from A.
The two files must hold the same tensor names and shapes, as a fine-tune of A does
(``train_cnn.py --init A``): averaging weights only makes sense for networks that started from
one set of weights. A soup costs what one network costs at inference, unlike averaging two
networks' outputs, which doubles both the parameters and the time per face.

Score a soup on held-out faces with ``train_cnn.py --evaluate soup-<alpha>.safetensors``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def interpolate(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * a + alpha * b`` tensor by tensor; integer tensors come from ``a``."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if a.keys() != b.keys():
        only = sorted(set(a) ^ set(b))
        raise ValueError(f"the two weight files hold different tensors: {', '.join(only[:5])}")
    out: dict[str, torch.Tensor] = {}
    for name, ta in a.items():
        tb = b[name]
        if ta.shape != tb.shape or ta.dtype != tb.dtype:
            raise ValueError(f"tensor {name}: {tuple(ta.shape)} {ta.dtype} vs {tuple(tb.shape)} {tb.dtype}")
        if ta.is_floating_point():
            out[name] = ((1.0 - alpha) * ta.double() + alpha * tb.double()).to(ta.dtype).contiguous()
        else:
            out[name] = ta.clone().contiguous()
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path, help="weights A (alpha 0)")
    ap.add_argument("b", type=Path, help="weights B (alpha 1), a fine-tune of A")
    ap.add_argument("--alpha", type=float, nargs="+", default=[0.5])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    a, b = load_file(str(args.a)), load_file(str(args.b))
    args.out.mkdir(parents=True, exist_ok=True)
    for alpha in args.alpha:
        weights = args.out / f"soup-{alpha:g}.safetensors"  # not with_suffix: "0.25" has a dot
        save_file(interpolate(a, b, alpha), str(weights))
        (args.out / f"soup-{alpha:g}.json").write_text(json.dumps(
            {"a": str(args.a), "b": str(args.b), "alpha": alpha}, indent=2) + "\n")
        print(weights)


if __name__ == "__main__":
    main()
