"""Time the reused-photo clustering of ``ganscreen campaign`` on synthetic hashes.

Makes ``--n`` photos (default 100,000) with random 64-bit image and face hashes, plain and
mirrored (four hashes a photo, as the campaign indexes them), of which ``--copies`` (default
10 %) are edited copies of another photo (up to ``--threshold`` + 3 bits flipped in each
hash), and times the banded index and union-find (:func:`ganscreen.campaign.cluster_photos`).
Random hashes are the index's worst case for nothing: real hashes are less uniform, so
buckets are larger; the bucket sizes are printed.

    python scripts/benchmark_campaign.py [--n 100000] [--threshold 9]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ganscreen.campaign import DEFAULT_THRESHOLD, cluster_photos
from ganscreen.hashing import PhotoHashes, band_widths, index_plan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--copies", type=float, default=0.1)
    ap.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    values = rng.integers(0, 2**64, (args.n, 4), dtype=np.uint64)
    copies = rng.choice(args.n, int(args.n * args.copies), replace=False)
    sources = rng.integers(0, args.n, copies.size)
    for c, s in zip(copies.tolist(), sources.tolist(), strict=True):
        for k in range(4):
            value = int(values[s, k])
            for bit in rng.choice(64, int(rng.integers(0, args.threshold + 4)), replace=False):
                value ^= 1 << int(bit)
            values[c, k] = value
    rows = values.tolist()
    hashes = [PhotoHashes(image=(r[0], r[1]), face=(r[2], r[3])) for r in rows]
    start = time.perf_counter()
    clusters = cluster_photos(hashes, args.threshold)
    elapsed = time.perf_counter() - start
    # The index runs per hash kind on the unique hashes of that kind (plain and mirrored).
    bands, radius = index_plan(args.threshold, 2 * args.n)
    widths = band_widths(bands)
    print(f"{args.n:,} photos ({4 * args.n:,} hashes: image and face, plain and mirrored), "
          f"{copies.size:,} edited copies, threshold {args.threshold} bits "
          f"({bands} bands of {min(widths)}-{max(widths)} bits, within-band radius {radius})")
    print(f"clustered in {elapsed:.2f} s: {len(clusters):,} clusters, "
          f"{sum(len(m) for m, _ in clusters):,} photos in clusters")
    print(f"comparisons avoided: all pairs would be {args.n * (args.n - 1) // 2:,}")


if __name__ == "__main__":
    main()
