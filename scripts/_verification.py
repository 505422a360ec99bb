"""``measure_hash_threshold.py --verify``: the keypoint stage of the campaign, measured.

See that script's docstring for what is measured; this module holds the population, the
edits and the tables.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from _common import read_cache  # the scripts folder is on sys.path (measure_hash_threshold.py)
from ganscreen.campaign import (
    CANDIDATE_THRESHOLD,
    CANDIDATES_PER_PHOTO,
    DEFAULT_THRESHOLD,
    entry_pairs,
    nearest_candidates,
    vote_candidates,
)
from ganscreen.faces import FaceDetector, primary_face
from ganscreen.hashing import PhotoHashes, UnionFind, photo_hashes
from ganscreen.keypoints import MIN_CORRELATION, MIN_INLIERS, FeatureCache, Match, signature

SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
VERIFY_EDITS = ("crop5", "crop10", "crop15", "crop20", "crop25", "rotate1", "rotate3", "rotate5",
                "mirror", "colour", "jpeg60", "half", "all")
CORRELATIONS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.78, 0.8, 0.85)
MIN_SIDE_TO_SPLIT = 256


@dataclass(frozen=True, slots=True)
class Item:
    """One image of the population: a file, or its top or bottom half, or an edited copy."""

    path: Path
    family: int  # items of one family are the same photo; different families are distinct
    part: str | None = None  # "top" | "bottom"
    edit: str | None = None
    seed: int = 0

    @property
    def key(self) -> str:
        return f"{self.path}#{self.part or ''}#{self.edit or ''}#{self.seed}"

    @property
    def name(self) -> str:
        parts = [f"{self.path.parent.name}/{self.path.name}", self.part, self.edit]
        return " ".join(p for p in parts if p)


def crop_keep(image: Image.Image, keep: float, rng: np.random.Generator) -> Image.Image:
    """A window of ``keep`` of each side at a random place."""
    w, h = image.size
    kw, kh = max(1, round(w * keep)), max(1, round(h * keep))
    x0, y0 = int(rng.integers(0, w - kw + 1)), int(rng.integers(0, h - kh + 1))
    return image.crop((x0, y0, x0 + kw, y0 + kh))


def colour(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    out = ImageEnhance.Color(image).enhance(rng.uniform(0.3, 1.6))
    out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.8, 1.25))
    out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.85, 1.15))
    tint = np.array([rng.uniform(0.9, 1.1), 1.0, rng.uniform(0.8, 1.05)])
    return Image.fromarray(np.clip(np.asarray(out, np.float32) * tint, 0, 255).astype(np.uint8))


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def apply_edit(image: Image.Image, name: str, rng: np.random.Generator) -> Image.Image:
    if name.startswith("crop"):
        return crop_keep(image, 1 - int(name[4:]) / 100, rng)
    if name.startswith("rotate"):
        angle = int(name[6:]) * float(rng.choice([-1.0, 1.0]))
        return image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False)
    if name == "mirror":
        return ImageOps.mirror(image)
    if name == "colour":
        return colour(image, rng)
    if name == "jpeg60":
        return jpeg(image, 60)
    if name == "half":
        return image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.Resampling.LANCZOS)
    if name == "all":
        for step in ("crop25", "rotate5", "mirror", "colour", "jpeg60"):
            image = apply_edit(image, step, rng)
        return image
    raise ValueError(name)


def render(item: Item) -> Image.Image:
    image = Image.open(item.path).convert("RGB")
    if item.part is not None:
        w, h = image.size
        image = image.crop((0, 0, w, h // 2) if item.part == "top" else (0, h // 2, w, h))
    if item.edit is not None:
        image = apply_edit(image, item.edit, np.random.default_rng(item.seed))
    return image


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*/*") if p.suffix.lower() in SUFFIXES)


def population(folders: list[Path], distinct: int, rng: np.random.Generator
               ) -> tuple[list[Item], dict[str, Any]]:
    """Distinct images: every file, then photos replaced by their two halves until ``distinct``."""
    files = [f for folder in folders for f in image_files(folder)]
    wanted_splits = max(0, distinct - len(files))
    splittable = []
    if wanted_splits:
        for i in rng.permutation(len(files)).tolist():
            with Image.open(files[i]) as im:
                if min(im.size) >= MIN_SIDE_TO_SPLIT:
                    splittable.append(i)
            if len(splittable) == wanted_splits:
                break
    split = set(splittable)
    items: list[Item] = []
    for i, f in enumerate(files):
        if i in split:
            items.append(Item(f, len(items), part="top"))
            items.append(Item(f, len(items), part="bottom"))
        else:
            items.append(Item(f, len(items)))
    info = {"folders": [str(f) for f in folders], "files": len(files), "split_into_halves": len(split),
            "distinct_images": len(items)}
    return items, info


class Landmarks:
    """Detected landmarks by item key, cached in a JSON Lines file."""

    def __init__(self, cache: Path | None) -> None:
        self.cache = cache
        self.known: dict[str, list | None] = {}
        if cache is not None and cache.exists():
            for record in read_cache(cache, "path"):
                self.known[record["path"]] = record.get("landmarks")
        self._detector: FaceDetector | None = None

    def get(self, key: str, rgb: np.ndarray) -> list | None:
        if key in self.known:
            return self.known[key]
        if self._detector is None:
            self._detector = FaceDetector(device="cpu")
        face = primary_face(self._detector.detect(rgb))
        value = None if face is None else face.landmarks.tolist()
        self.known[key] = value
        if self.cache is not None:
            with self.cache.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"path": key, "landmarks": value}) + "\n")
        return value


def cache_key(item: Item) -> str:
    # Whole files are cached under their plain path (what a scan of the folder records).
    return str(item.path) if item.part is None and item.edit is None else item.key


def clusters_of(n: int, edges: list[tuple[int, int]]) -> UnionFind:
    uf = UnionFind(n)
    for a, b in edges:
        uf.union(a, b)
    return uf


def measure(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rng = np.random.default_rng(args.seed)
    folders = [args.data, *[f for f in args.extra if f.is_dir()]]
    items, info = population(folders, args.distinct, rng)
    landmarks = Landmarks(args.landmarks)
    start = time.time()
    hashes: list[PhotoHashes | None] = []
    has_face: list[bool] = []
    for k, item in enumerate(items):
        rgb = np.asarray(render(item))
        pts = landmarks.get(cache_key(item), rgb)
        hashes.append(replace(photo_hashes(rgb, pts), keys=signature(rgb)))
        has_face.append(pts is not None)
        if k % 1000 == 0:
            print(f"  hashed {k} of {len(items)} distinct ({time.time() - start:.0f} s)", flush=True)
    n_distinct = len(items)
    # Edited copies of photos with a face (whole files only).
    whole = [i for i, it in enumerate(items) if it.part is None and has_face[i]]
    originals = sorted(rng.choice(whole, min(args.copies, len(whole)), replace=False).tolist())
    copy_of: dict[int, tuple[int, str]] = {}
    for o in originals:
        for edit in VERIFY_EDITS:
            item = Item(items[o].path, items[o].family, edit=edit, seed=int(rng.integers(2**31)))
            rgb = np.asarray(render(item))
            copy_of[len(items)] = (o, edit)
            items.append(item)
            hashes.append(replace(photo_hashes(rgb, landmarks.get(item.key, rgb)), keys=signature(rgb)))
    print(f"{n_distinct} distinct images, {len(copy_of)} edited copies of {len(originals)} of them, "
          f"hashed in {time.time() - start:.0f} s", flush=True)

    own, _, _, ea, eb, dist = entry_pairs(hashes, max(DEFAULT_THRESHOLD, CANDIDATE_THRESHOLD))
    strict = nearest_candidates(own, ea[dist <= DEFAULT_THRESHOLD], eb[dist <= DEFAULT_THRESHOLD],
                                dist[dist <= DEFAULT_THRESHOLD], len(items))
    by_hash = nearest_candidates(own, ea, eb, dist, CANDIDATES_PER_PHOTO)
    start = time.time()
    by_votes = vote_candidates(hashes, CANDIDATES_PER_PHOTO)
    vote_s = time.time() - start
    candidates = np.unique(np.concatenate([by_hash[:, :2], by_votes[:, :2]]), axis=0)
    per_photo = Counter(candidates[:, 0].tolist()) + Counter(candidates[:, 1].tolist())
    print(f"hash stage ({DEFAULT_THRESHOLD} bits): {len(strict)} pairs; candidates: {len(by_hash)} within "
          f"{CANDIDATE_THRESHOLD} bits, {len(by_votes)} by keypoint votes (index {vote_s:.1f} s), "
          f"{CANDIDATES_PER_PHOTO} best a photo each; {len(candidates)} pairs, {len(per_photo)} photos in them",
          flush=True)

    features = FeatureCache(lambda i: np.asarray(render(items[i])), capacity=len(items))
    start = time.time()
    matches: list[Match | None] = []
    for k, (a, b) in enumerate(sorted(map(tuple, candidates[:, :2].tolist()))):
        matches.append(features.verify(a, b))
        if k % 5000 == 0:
            print(f"  verified {k} of {len(candidates)} ({time.time() - start:.0f} s)", flush=True)
    verify_s = time.time() - start
    pair_list = sorted(map(tuple, candidates[:, :2].tolist()))
    family = [it.family for it in items]
    scores = [(a, b, m) for (a, b), m in zip(pair_list, matches, strict=True)]

    strict_edges = [(int(a), int(b)) for a, b, _ in strict.tolist()]
    duplicates = [(a, b) for a, b in strict_edges if family[a] != family[b]]
    rows = []
    results: dict[str, Any] = {}
    for t in sorted({*CORRELATIONS, MIN_CORRELATION}):
        ok = [(a, b) for a, b, m in scores if m is not None and m.inliers >= MIN_INLIERS and m.correlation >= t]
        false_links = [(a, b) for a, b in ok if family[a] != family[b]]
        uf = clusters_of(len(items), strict_edges + ok)
        mixed = [g for g in uf.groups() if len({family[m] for m in g}) > 1]
        matched = Counter(e for c, (o, e) in copy_of.items() if uf.find(c) == uf.find(o))
        rows.append((t, len(false_links), len(mixed), matched))
        results[f"{t:.2f}"] = {"false_links": len(false_links), "mixed_clusters": len(mixed),
                               "copies_matched": {e: matched[e] / len(originals) for e in VERIFY_EDITS},
                               "false_link_examples": [[items[a].name, items[b].name]
                                                       for a, b in false_links[:10]]}

    strict_uf = clusters_of(len(items), strict_edges)
    direct = {(a, b) for a, b in pair_list}
    by_edit: dict[str, dict[str, float]] = {}
    final = results[f"{MIN_CORRELATION:.2f}"]["copies_matched"]
    for edit in VERIFY_EDITS:
        group = [(c, o) for c, (o, e) in copy_of.items() if e == edit]
        by_edit[edit] = {
            "hash_stage": sum(strict_uf.find(c) == strict_uf.find(o) for c, o in group) / len(group),
            "candidate": sum((min(c, o), max(c, o)) in direct for c, o in group) / len(group),
            "verified": final[edit],
        }
    copy_scores = [m for a, b, m in scores if m is not None and family[a] == family[b]]
    distinct_scores = [m for a, b, m in scores if m is not None and family[a] != family[b]]

    print(f"\nedited copies of {len(originals)} photos: share in their original's cluster")
    print(f"  {'edit':8s} {'hash stage':>10s} {'candidate':>10s} {'verified':>10s}")
    for edit, r in by_edit.items():
        print(f"  {edit:8s} {r['hash_stage']:10.3f} {r['candidate']:10.3f} {r['verified']:10.3f}")
    print(f"\ncandidate pairs of different images: {len(distinct_scores)} scored; correlation "
          f"max {max((m.correlation for m in distinct_scores), default=0):.3f}; inliers max "
          f"{max((m.inliers for m in distinct_scores), default=0)}")
    print(f"candidate pairs of copies: {len(copy_scores)} scored; correlation min "
          f"{min((m.correlation for m in copy_scores), default=0):.3f}")
    print(f"collection duplicates joined by the hash stage (different files, <= {DEFAULT_THRESHOLD} bits): "
          f"{len(duplicates)}")
    print(f"\nverification threshold (correlation; inliers >= {MIN_INLIERS}): false links | mixed clusters "
          f"(including the hash stage's) | copies matched, all edits / 'all'")
    for t, fl, mx, matched in rows:
        total = sum(matched.values()) / (len(originals) * len(VERIFY_EDITS))
        mark = "  <- default" if abs(t - MIN_CORRELATION) < 1e-9 else ""
        print(f"  {t:5.2f}  {fl:6d}  {mx:6d}  {total:6.3f}  {matched['all'] / len(originals):6.3f}{mark}")
    print(f"\nfeatures computed for {features.computed} images; {len(candidates)} pairs verified in "
          f"{verify_s:.0f} s ({1000 * verify_s / max(1, len(candidates)):.1f} ms a pair, features included)")
    if args.json is not None:
        document = {
            "command": "scripts/measure_hash_threshold.py --verify", "seed": args.seed, "population": info,
            "copies": {"originals": len(originals), "edits": list(VERIFY_EDITS), "copies": len(copy_of)},
            "hash_threshold": DEFAULT_THRESHOLD, "candidate_threshold": CANDIDATE_THRESHOLD,
            "candidates_per_photo": CANDIDATES_PER_PHOTO, "min_inliers": MIN_INLIERS,
            "min_correlation": MIN_CORRELATION, "candidate_pairs": len(candidates),
            "hash_candidates": len(by_hash), "vote_candidates": len(by_votes), "vote_index_seconds": round(vote_s, 2),
            "collection_duplicates": [[items[a].name, items[b].name] for a, b in duplicates],
            "by_edit": by_edit, "by_correlation": results,
            "distinct_correlation_max": max((m.correlation for m in distinct_scores), default=None),
            "copy_correlation_min": min((m.correlation for m in copy_scores), default=None),
            "verify_seconds": round(verify_s, 1), "features_computed": features.computed,
            # Every verified pair of different files at the default, weakest first: the ones
            # to look at (many are the collection's own duplicates: one photo in two sources).
            "links_between_files": sorted(
                ([str(items[a].path), str(items[b].path), items[a].name, items[b].name, m.inliers, m.correlation]
                 for a, b, m in scores if m is not None and m.verified and family[a] != family[b]),
                key=lambda r: (r[5], r[0], r[1])),
        }
        args.json.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
