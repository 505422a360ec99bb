"""Does a photo get the same record as its mirror image? (the verdict must not flip)

    python scripts/mirror_invariance.py FOLDER [FOLDER ...] [--max 500]

Screens every image under the folders and its left-right mirror in the same batch and
counts verdict flips and score differences above 1e-6. ganscreen screens each photo in a
mirror-canonical orientation (``ganscreen._orientation``), so both should be zero.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageOps

from ganscreen import Screener

SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", type=Path, nargs="+")
    ap.add_argument("--max", type=int, default=500, help="at most this many images")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    files = sorted(p for f in args.folders for p in f.rglob("*") if p.suffix.lower() in SUFFIXES)[: args.max]
    screener = Screener(device=args.device, workers=1)
    flips = differences = n = 0
    for i in range(0, len(files), 8):
        images = [Image.open(f).convert("RGB") for f in files[i:i + 8]]
        reports = screener.screen_batch(images + [ImageOps.mirror(im) for im in images])
        for a, b in zip(reports[: len(images)], reports[len(images):], strict=True):
            n += 1
            flips += a.verdict != b.verdict
            differences += (a.score is None) != (b.score is None) or (
                a.score is not None and b.score is not None and abs(a.score - b.score) > 1e-6)
    print(f"{n} photos: {flips} verdict flips, {differences} score differences above 1e-6 between photo and mirror")


if __name__ == "__main__":
    main()
