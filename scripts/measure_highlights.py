#!/usr/bin/env python3
"""Does corneal-highlight consistency separate GAN faces from real photos? (issue #14, item 4)

    ganscreen scan FIT -o fit.jsonl
    python scripts/measure_highlights.py fit.jsonl --data FIT [--json out.json]

The idea (Hu, Li and Lyu 2021): in a real photo both corneas mirror the same light sources, so
the specular highlight sits at the same place in both irises; GAN faces often disagree. For the
largest face of every ``ok`` record of the scan the script levels the eyes by the landmarks,
scales them 200 px apart, finds each iris as the darkest disk of 0.09 × the eye distance near
its landmark (highlights removed by a grey opening first), and takes the strongest compact
bright spot of the white top-hat inside the iris (elongated spots, which are frame or eyelid
edges, are skipped). Measures per face:

* ``offset``: distance between the two highlights' positions relative to their irises, in
  iris radii (no highlight in one eye: the face cannot be judged);
* ``overlap``: 1 − IoU of the two highlight masks in iris coordinates;
* ``strength``: the relative difference of the two highlights' top-hat peaks.

It prints the AUC of each measure, GAN faces against ordinary (not dataset-aligned) real
photos, for faces whose eyes are at least 0, 80 and 150 px apart. A research measurement:
nothing in the package uses it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import is_aligned_real, label_of, read_all_sources, read_records, relative_key, roc_metrics  # noqa: E402
from ganscreen._records import largest_face  # noqa: E402
from ganscreen.images import ImageLoadError, load_image  # noqa: E402

EYES = 200.0  # canvas eye distance, px
HALF = 48  # half side of each eye window (0.24 of the eye distance)
IRIS = 18  # iris radius on the canvas (0.09 of the eye distance)
SEARCH = 14  # the iris centre is looked for within this many px of the landmark
MIN_PEAK = 25.0  # a highlight's top-hat peak, grey levels
MEASURES = ("offset", "overlap", "strength")
MIN_EYE_DISTANCES = (0, 80, 150)


def eye_windows(rgb: np.ndarray, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The two eyes, levelled and scaled to EYES px apart, each in a (2·HALF)² window."""
    d = right - left
    distance = float(np.hypot(*d))
    scale, angle = EYES / distance, math.atan2(d[1], d[0])
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    m = np.array([[c, s, 0.0], [-s, c, 0.0]])
    m[:, 2] = np.array([HALF, HALF]) - m[:, :2] @ left
    canvas = cv2.warpAffine(rgb, m, (int(EYES) + 2 * HALF, 2 * HALF), flags=cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_REPLICATE)
    return canvas[:, : 2 * HALF], canvas[:, int(EYES): int(EYES) + 2 * HALF], distance


def highlight(eye: np.ndarray) -> dict[str, Any]:
    """The iris centre and the strongest compact highlight inside it (``mask`` in iris
    coordinates, ``offset`` in iris radii; ``None`` when there is none)."""
    grey = cv2.cvtColor(eye, cv2.COLOR_RGB2GRAY).astype(np.float32)
    opened = cv2.morphologyEx(grey, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))
    yy, xx = np.mgrid[-IRIS:IRIS + 1, -IRIS:IRIS + 1]
    disk = (xx * xx + yy * yy <= IRIS * IRIS).astype(np.float32)
    darkness = cv2.filter2D(opened, -1, disk / disk.sum(), borderType=cv2.BORDER_REPLICATE)
    near = darkness[HALF - SEARCH:HALF + SEARCH + 1, HALF - SEARCH:HALF + SEARCH + 1]
    iy, ix = np.unravel_index(int(np.argmin(near)), near.shape)
    cy, cx = HALF - SEARCH + int(iy), HALF - SEARCH + int(ix)
    gy, gx = np.mgrid[0:grey.shape[0], 0:grey.shape[1]]
    tophat = (grey - opened) * (np.hypot(gx - cx, gy - cy) <= 0.85 * IRIS)
    peak = float(tophat.max())
    out: dict[str, Any] = {"peak": peak, "offset": None, "mask": np.zeros((2 * IRIS + 1,) * 2, bool)}
    if peak < MIN_PEAK:
        return out
    candidates = (tophat >= max(15.0, 0.5 * peak)).astype(np.uint8)
    count, labels, stats, centres = cv2.connectedComponentsWithStats(candidates, connectivity=8)
    best, best_mass = 0, 0.0
    for j in range(1, count):
        w, h = stats[j, cv2.CC_STAT_WIDTH], stats[j, cv2.CC_STAT_HEIGHT]
        if stats[j, cv2.CC_STAT_AREA] > 0.12 * math.pi * IRIS ** 2 or max(w, h) > 3 * min(w, h) + 2:
            continue
        mass = float(tophat[labels == j].sum())
        if mass > best_mass:
            best, best_mass = j, mass
    if best:
        spot = np.pad(labels == best, IRIS)  # so the iris window never leaves the array
        out["mask"] = spot[cy:cy + 2 * IRIS + 1, cx:cx + 2 * IRIS + 1]
        out["offset"] = ((centres[best][0] - cx) / IRIS, (centres[best][1] - cy) / IRIS)
    return out


def measure(rgb: np.ndarray, landmarks: np.ndarray) -> dict[str, float | None]:
    left, right, distance = eye_windows(rgb, landmarks[0], landmarks[1])
    a, b = highlight(left), highlight(right)
    union = float((a["mask"] | b["mask"]).sum())
    judged = a["offset"] is not None and b["offset"] is not None
    return {
        "eye_distance": distance,
        "offset": float(np.hypot(a["offset"][0] - b["offset"][0], a["offset"][1] - b["offset"][1])) if judged else None,
        "overlap": 1.0 - float((a["mask"] & b["mask"]).sum()) / union if union else None,
        "strength": abs(a["peak"] - b["peak"]) / max(a["peak"], b["peak"], 1.0),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scans", nargs="+", type=Path)
    ap.add_argument("--data", type=Path, nargs="+", required=True, help="the scanned folders (their SOURCES.tsv)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    sources = read_all_sources(args.data)
    rows = []
    for scan in args.scans:
        for record in read_records(scan):
            key = relative_key(record["path"])
            face = largest_face(record.get("faces"))
            if record.get("status") != "ok" or face is None or label_of(key) is None or is_aligned_real(key, sources):
                continue
            try:
                rgb = load_image(record["path"]).rgb
            except ImageLoadError as exc:
                print(f"{key}: {exc}", file=sys.stderr)
                continue
            rows.append({"key": key, "label": label_of(key),
                         **measure(rgb, np.asarray(face["landmarks"], np.float64))})
    results = []
    for least in MIN_EYE_DISTANCES:
        for name in MEASURES:
            kept = [r for r in rows if r["eye_distance"] >= least and r[name] is not None]
            y = [r["label"] for r in kept]
            if 0 < sum(y) < len(y):
                auc = roc_metrics(y, [r[name] for r in kept])["auc"]
                results.append({"min_eye_distance": least, "measure": name, "gan": sum(y),
                                "real": len(y) - sum(y), "auc": round(float(auc), 3)})
                print(json.dumps(results[-1]))
    if args.json:
        args.json.write_text(json.dumps({"results": results, "faces": rows}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
