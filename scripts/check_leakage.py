#!/usr/bin/env python3
"""Look for the same photo under two roles of the leave-sources-out protocol.

Developer script, never used by ganscreen at run time. Whole sources are held out (model
card, Data: Round 3), but two repositories can carry the same picture: an FFHQ photo in a
GAN-inversion project's test folder and in the 140k set, a thispersondoesnotexist face in two
detection projects. Such a pair would let a held-out figure be measured on an image the model
or the fit has seen. This script hashes every image of the given collections with the
campaign's whole-image perceptual hash (:func:`ganscreen.hashing.hash_pair`, plain and
mirrored), takes every pair within ``--threshold`` bits (the campaign's candidate distance)
whose roles differ, and verifies it as the campaign does, by keypoints
(:func:`ganscreen.keypoints.match`: a similarity transform with enough inliers under which the
pixels correlate). Roles:

- ``unseen``: the sources of ``_common.UNSEEN_SOURCES`` (`E`);
- ``unseen2``: ``_common.UNSEEN2_SOURCES`` (`E2`, round 4);
- ``fit``: ``_common.FIT_SOURCES`` (`F`);
- ``train``: every other source.

A verified pair between two roles is a leak (``make_splits.py --exclude-leaks`` drops its more
held-out side: ``unseen2``, then ``unseen``, then ``fit``). Hash candidates that keypoints do
not verify are listed too (faces aligned alike collide within a few bits; so do two renderings
of one generator seed), but are not leaks.
Pairs inside one role are only counted. Exit status 1 when a leak is found, so the check can
gate a new round of data.

    python scripts/check_leakage.py --collections ../shared/data/faces ../round3 [../round4] [--json leaks.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import role_of  # noqa: E402
from ganscreen.campaign import CANDIDATE_THRESHOLD  # noqa: E402
from ganscreen.hashing import hamming, hash_pair, near_pairs  # noqa: E402
from ganscreen.images import ImageLoadError, load_image  # noqa: E402
from ganscreen.keypoints import FeatureCache  # noqa: E402

LABELS = ("gan", "real")


def images(collections: list[Path]) -> list[tuple[str, Path]]:
    """('label/file', path) of every image file, first collection first; a key met again in a
    later collection is the same file name twice and is kept with its collection's name."""
    out = []
    for collection in collections:
        for label in LABELS:
            folder = collection / label
            if folder.is_dir():
                out.extend((f"{label}/{p.name}", p) for p in sorted(folder.iterdir()) if p.is_file())
    return out


def hashes_of(items: list[tuple[str, Path]]) -> tuple[list[int], list[tuple[int, int]], list[str]]:
    """Indices of the items that decoded, their (plain, mirrored) hashes, and the errors."""
    kept, pairs, errors = [], [], []
    for i, (key, path) in enumerate(items):
        try:
            rgb = load_image(path).rgb
        except ImageLoadError as exc:
            errors.append(f"{key}: {exc}")
            continue
        kept.append(i)
        pairs.append(hash_pair(Image.fromarray(rgb)))
    return kept, pairs, errors


def leaks(items: list[tuple[str, Path]], threshold: int) -> tuple[list[dict[str, object]], Counter[str], list[str]]:
    """Cross-role hash candidates (each once, closest distance of plain and mirrored) with
    their keypoint verification, the count of candidates per role pair, and the files that
    could not be read."""
    kept, pairs, errors = hashes_of(items)
    n = len(kept)
    # plain hashes then mirrored ones: a plain-mirrored match is a mirrored copy
    table = np.array([p for p, _ in pairs] + [m for _, m in pairs], dtype=np.uint64)
    found: dict[tuple[int, int], int] = {}
    for i, j in near_pairs(table, threshold):
        a, b = kept[int(i) % n], kept[int(j) % n]
        if a == b:
            continue
        a, b = min(a, b), max(a, b)
        d = hamming(int(table[i]), int(table[j]))
        found[(a, b)] = min(d, found.get((a, b), d))
    counts: Counter[str] = Counter()
    listed = []
    features = FeatureCache(lambda index: load_image(items[index][1]).rgb)
    for (a, b), d in sorted(found.items()):
        ra, rb = role_of(items[a][0]), role_of(items[b][0])
        counts["/".join(sorted((ra, rb)))] += 1
        if ra != rb:
            m = features.verify(a, b)
            listed.append({"a": str(items[a][1]), "a_role": ra, "b": str(items[b][1]), "b_role": rb, "bits": d,
                           "verified": bool(m is not None and m.verified),
                           "inliers": m.inliers if m else 0, "correlation": m.correlation if m else 0.0})
    return listed, counts, errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--collections", type=Path, nargs="+", required=True,
                    help="collection folders (each with gan/ and real/), e.g. the shared one and round 3's")
    ap.add_argument("--threshold", type=int, default=CANDIDATE_THRESHOLD,
                    help=f"bits within which two photos are one (default {CANDIDATE_THRESHOLD}, the campaign's candidate distance)")
    ap.add_argument("--json", type=Path, help="write the pairs and counts here")
    args = ap.parse_args(argv)
    items = images(args.collections)
    listed, counts, errors = leaks(items, args.threshold)
    for e in errors:
        print(f"unreadable: {e}", file=sys.stderr)
    roles = Counter(role_of(k) for k, _ in items)
    print(f"{len(items)} images ({', '.join(f'{r} {n}' for r, n in sorted(roles.items()))}); "
          f"hash candidates within {args.threshold} bits by roles: {dict(sorted(counts.items())) or 'none'}")
    leaked = [p for p in listed if p["verified"]]
    for p in sorted(listed, key=lambda p: not p["verified"]):
        kind = "LEAK" if p["verified"] else "not a copy"
        print(f"{kind}: {p['a_role']}:{p['a']}  {p['b_role']}:{p['b']}  "
              f"({p['bits']} bits, {p['inliers']} inliers, correlation {p['correlation']:.2f})")
    print(f"{len(leaked)} leaks, {len(listed) - len(leaked)} cross-role candidates not verified")
    if args.json:
        args.json.write_text(json.dumps({"threshold": args.threshold, "images": len(items), "roles": roles,
                                         "near_pairs": counts, "leaks": leaked, "candidates": listed, "unreadable": errors},
                                        indent=1) + "\n", encoding="utf-8")
    return 1 if leaked else 0


if __name__ == "__main__":
    raise SystemExit(main())
