"""Measure perceptual-hash distances to choose the near-duplicate threshold of ``ganscreen campaign``.

On a random sample of the training collection (distinct photos, GAN and real) it measures,
for both hash kinds (whole image, aligned face centre; the smaller of plain and mirrored,
as the campaign matches them):

- distinct photos: the distance between every pair of different sample images;
- edited copies: the distance between each image and a copy after resizing, JPEG, a crop,
  mirroring, a colour filter, and all of these at once (the copy's face landmarks are the
  original's carried through the edit; ``--redetect`` runs the detector on every copy, which
  adds detection jitter and takes ~7x longer);

and prints the distributions, a table of "copies matched / distinct pairs matched" per
candidate threshold, and the chosen one: two bits below the closest distinct pair of the
sample on either kind (phash distances are even, so this is the largest attainable distance
at which no distinct pair matches; the sample has ~45,000 pairs, a campaign of thousands of
photos has millions, so no looser).

    python scripts/measure_hash_threshold.py --sample 300 [--data ../shared/data/faces]

``--verify`` measures the campaign's second stage instead (keypoint verification of looser
hash candidates, :mod:`ganscreen.keypoints`), the way ``ganscreen campaign`` clusters:

- a population of ``--distinct`` different images: every image under ``--data`` and
  ``--extra`` folders (``label/file``), and, when that is fewer, photos of the collection
  replaced by their top and bottom halves (two non-overlapping crops, each a new distinct
  image, the photo itself left out) until there are ``--distinct``;
- edited copies of ``--copies`` of them (photos with a face): crops keeping 95-75 % of each
  side at a random place, rotations of 1, 3 and 5 degrees (either way), mirror, a colour
  filter, JPEG quality 60, a resize to half, and all of crop 25 % + rotation 5 + mirror +
  colour + JPEG 60 at once, each detected again (as a scan would);
- every image hashed (face landmarks from the detector, cached in ``--landmarks``), the
  candidate pairs of :func:`ganscreen.campaign.nearest_candidates` verified (all of them, to
  get the scores), then clustered at each verification threshold.

It prints, and writes to ``--json``: per edit, the share of copies in their original's
cluster by the hash stage alone, among the candidates, and after verification; and per
correlation threshold, the false links (verified pairs of different images) and mixed
clusters, with the copies' match rate.

    nice -n 10 python scripts/measure_hash_threshold.py --verify --extra /work/data/round3 \
        --landmarks /tmp/landmarks.jsonl --json docs/reuse-verification.json
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA  # noqa: E402
from ganscreen.faces import FaceDetector, primary_face  # noqa: E402
from ganscreen.hashing import HASH_BITS, hamming, photo_hashes  # noqa: E402

EDITS = ("resize", "jpeg", "crop", "mirror", "colour", "all")
# phash distances are even (see below): 2 bits below the closest distinct pair is the next
# distance a pair can have; one bit less keeps the threshold on an attainable value.
MARGIN = 1


def edit(image: Image.Image, kind: str, rng: np.random.Generator,
         pts: np.ndarray | None) -> tuple[Image.Image, np.ndarray | None]:
    """An edited copy of ``image`` and its face's landmarks carried through the edit."""
    w, h = image.size
    if kind == "resize":
        f = rng.uniform(0.35, 0.7)
        size = (max(1, round(w * f)), max(1, round(h * f)))
        out = image.resize(size, Image.Resampling.LANCZOS)
        return out, None if pts is None else pts * np.array([size[0] / w, size[1] / h], np.float32)
    if kind == "jpeg":
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=int(rng.integers(50, 76)))
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), pts
    if kind == "crop":
        left, top, right, bottom = rng.uniform(0.03, 0.15, 4)
        x0, y0 = round(left * w), round(top * h)
        out = image.crop((x0, y0, round(w - right * w), round(h - bottom * h)))
        return out, None if pts is None else pts - np.array([x0, y0], np.float32)
    if kind == "mirror":
        if pts is not None:  # x mirrored; the image's left eye is the old right eye
            pts = pts[[1, 0, 2, 4, 3]] * np.array([-1, 1], np.float32) + np.array([w, 0], np.float32)
        return ImageOps.mirror(image), pts
    if kind == "colour":
        out = ImageEnhance.Color(image).enhance(rng.uniform(0.3, 1.6))
        out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.8, 1.25))
        out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.85, 1.15))
        tint = np.array([rng.uniform(0.9, 1.1), 1.0, rng.uniform(0.8, 1.05)])
        return Image.fromarray(np.clip(np.asarray(out, np.float32) * tint, 0, 255).astype(np.uint8)), pts
    if kind == "all":
        for step in ("crop", "mirror", "colour", "resize", "jpeg"):
            image, pts = edit(image, step, rng, pts)
        return image, pts
    raise ValueError(kind)


def landmarks_of(image: Image.Image, detector: FaceDetector) -> np.ndarray | None:
    face = primary_face(detector.detect(np.asarray(image.convert("RGB"))))
    return None if face is None else face.landmarks


def distance(a: tuple[int, int] | None, b: tuple[int, int] | None) -> int | None:
    """Plain hash of ``a`` against the plain and the mirrored hash of ``b``."""
    if a is None or b is None:
        return None
    return min(hamming(a[0], b[0]), hamming(a[0], b[1]))


def describe(values: list[int]) -> str:
    if not values:
        return "n=0"
    v = np.asarray(values)
    q = np.percentile(v, [0, 1, 5, 50, 95, 99, 100])
    return (f"n={v.size:6d}  min {q[0]:4.0f}  p1 {q[1]:4.1f}  p5 {q[2]:4.1f}  median {q[3]:4.1f}  "
            f"p95 {q[4]:4.1f}  p99 {q[5]:4.1f}  max {q[6]:4.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--sample", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--redetect", action="store_true",
                    help="detect the face again in every copy (slow) instead of carrying the "
                         "original's landmarks through the edit")
    ap.add_argument("--verify", action="store_true", help="measure the keypoint stage (see above)")
    ap.add_argument("--extra", type=Path, action="append", default=[],
                    help="--verify: more folders of distinct images (label/file)")
    ap.add_argument("--distinct", type=int, default=10_000, help="--verify: distinct images wanted")
    ap.add_argument("--copies", type=int, default=120, help="--verify: photos given edited copies")
    ap.add_argument("--landmarks", type=Path, default=None, help="--verify: JSON Lines landmark cache")
    ap.add_argument("--json", type=Path, default=None, help="--verify: write the results here")
    args = ap.parse_args()
    if args.verify:
        from _verification import measure

        measure(args)
        return
    rng = np.random.default_rng(args.seed)
    files = sorted(p for p in args.data.glob("*/*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
    chosen = [files[i] for i in sorted(rng.choice(len(files), min(args.sample, len(files)), replace=False))]
    detector = FaceDetector(device="cpu")
    start = time.time()
    originals = []
    copies: dict[str, list] = {k: [] for k in EDITS}
    for path in chosen:
        image = Image.open(path).convert("RGB")
        pts = landmarks_of(image, detector)
        originals.append(photo_hashes(np.asarray(image), pts))
        for kind in EDITS:
            copy, copy_pts = edit(image, kind, rng, pts)
            if args.redetect and pts is not None:
                copy_pts = landmarks_of(copy, detector)
            copies[kind].append(photo_hashes(np.asarray(copy), copy_pts))
    print(f"{len(chosen)} images from {args.data} (seed {args.seed}), {len(EDITS)} edited copies each, "
          f"hashed in {time.time() - start:.0f} s; copies' landmarks "
          f"{'detected again' if args.redetect else 'carried through the edit'}")
    faces = sum(h.face is not None for h in originals)
    print(f"faces found in {faces} of {len(originals)} originals\n")

    distinct: dict[str, list[int]] = {"image": [], "face": []}
    either: list[int] = []  # smaller of the two kinds, pairs where both are known or image only
    for i in range(len(originals)):
        for j in range(i + 1, len(originals)):
            a, b = originals[i], originals[j]
            di, df = distance(a.image, b.image), distance(a.face, b.face)
            distinct["image"].append(di)
            if df is not None:
                distinct["face"].append(df)
            either.append(min(di, df) if df is not None else di)
    print("distinct photos (every pair of different sample images):")
    for kind, values in distinct.items():
        print(f"  {kind:5s}  {describe(values)}")
    print(f"  either {describe(either)}")
    print("\nedited copies (original vs copy; face only where both have a face):")
    edited_either: dict[str, list[int]] = {}
    for kind in EDITS:
        img = [distance(o.image, c.image) for o, c in zip(originals, copies[kind], strict=True)]
        fac = [d for o, c in zip(originals, copies[kind], strict=True) if (d := distance(o.face, c.face)) is not None]
        edited_either[kind] = [min(x for x in (distance(o.image, c.image), distance(o.face, c.face)) if x is not None)
                               for o, c in zip(originals, copies[kind], strict=True)]
        print(f"  {kind:7s} image {describe(img)}")
        print(f"  {'':7s} face  {describe(fac)}")
        print(f"  {'':7s} either {describe(edited_either[kind])}")

    pairs = len(either)
    print(f"\nthreshold: copies matched (either kind), per edit | distinct pairs matched (of {pairs})")
    print("  d  " + " ".join(f"{k:>7s}" for k in EDITS) + "   image   face  either")
    ev = np.asarray(either)
    for d in range(0, 21):
        row = " ".join(f"{np.mean(np.asarray(edited_either[k]) <= d):7.3f}" for k in EDITS)
        fi = int(np.sum(np.asarray(distinct["image"]) <= d))
        ff = int(np.sum(np.asarray(distinct["face"]) <= d))
        print(f" {d:2d}  {row}  {fi:6d} {ff:6d} {int(np.sum(ev <= d)):6d}")
    # Identical pairs are the collection's own duplicates (the same photo in two sources).
    clean = ev[ev > 0]
    first = int(clean.min()) if clean.size else HASH_BITS
    odd = int(np.sum(ev % 2))
    chosen_d = max(0, first - 1 - MARGIN)
    print(f"\nidentical pairs in the sample (duplicates in the collection itself): {int(np.sum(ev == 0))}")
    print(f"odd distances among distinct pairs: {odd} (phash sets exactly half of its bits, so "
          "distances are even)")
    print(f"closest distinct pair (either kind, excluding identical): {first} bits")
    print(f"chosen threshold: {chosen_d} bits (the next even distance below the closest distinct pair: "
          "the loosest at which no distinct pair of the sample matches)")
    for k in EDITS:
        print(f"  copies matched at {chosen_d}: {k:7s} {np.mean(np.asarray(edited_either[k]) <= chosen_d):.3f}")


if __name__ == "__main__":
    main()
