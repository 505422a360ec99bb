"""Measure whether re-detecting a re-cropped face on its rebuilt frame sharpens ``ffhq_recrop``.

    python scripts/measure_recrop_redetect.py FIT fit_redetect.jsonl
    python scripts/measure_recrop_redetect.py R2_REALS r2_redetect.jsonl
    python scripts/measure_recrop_redetect.py --summary fit_redetect.jsonl r2_redetect.jsonl

Every photo of a folder (``gan/``, ``real/``; dataset-aligned reals skipped) is taken as found
and re-cropped (``evaluate.py``'s re-crop, seeded by the file's index). Pass 1: MTCNN, then
the geometry check's per-axis re-crop fit. Pass 2: the photo warped back into the fitted
original frame (512 px square, border reflected ``r`` or black ``c``), MTCNN again, and three
measures there: the eye error against the template (``eye``), the landmarks' RMS in template
spreads (``chi``) and the re-crop fit's residual again (``err``). The summary gives, per
measure, the threshold at 1 % of the real photos as found and the share of re-cropped GAN
faces at or below it. Measured, not shipped (model card, Geometry).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import is_aligned_real, read_sources  # noqa: E402
from evaluate import recrop  # noqa: E402
from ganscreen.checks.geometry import RECROP_KEEP, RECROP_MAX_OUTSIDE, GeometryCheck, recrop_window  # noqa: E402
from ganscreen.faces import FaceDetector, primary_face  # noqa: E402
from ganscreen.images import ImageLoadError, load_image  # noqa: E402

SIDE = 512
MEASURES = ("err1", "r:eye", "r:chi", "r:err", "c:eye", "c:chi", "c:err")


def measure(data: Path, out_path: Path) -> None:
    torch.set_num_threads(1)
    geometry = GeometryCheck(params={})
    points, spread = geometry.points, geometry.spread
    detector = FaceDetector()
    sources = read_sources(data)
    files = sorted((data / "gan").iterdir()) + sorted((data / "real").iterdir())
    with out_path.open("w") as out:
        for i, path in enumerate(files):
            key = f"{path.parent.name}/{path.name}"
            if key.startswith("real/") and is_aligned_real(key, sources):
                continue
            rng = np.random.default_rng(i)
            try:
                img = load_image(path).pil().convert("RGB")
            except ImageLoadError:
                continue
            for variant in ("as_found", "recropped"):
                rgb = np.asarray(img if variant == "as_found" else recrop(img, rng))
                height, width = rgb.shape[:2]
                face = primary_face(detector.detect(rgb))
                rec: dict[str, Any] = {"key": key, "variant": variant}
                if face is not None:
                    n = face.landmarks.astype(np.float64) / [width, height]
                    error, keep, offset, outside = recrop_window(n, points, spread)
                    rec.update(err1=error, keep=keep, outside=outside)
                    if min(keep) > 0.4 and max(keep) < 1.6:
                        matrix = np.array([[keep[0] * SIDE / width, 0, offset[0] * SIDE],
                                           [0, keep[1] * SIDE / height, offset[1] * SIDE]])
                        shrink = keep[0] * SIDE / width < 1
                        for border, name in ((cv2.BORDER_REFLECT, "r"), (cv2.BORDER_CONSTANT, "c")):
                            frame = cv2.warpAffine(rgb, matrix, (SIDE, SIDE), borderMode=border,
                                                   flags=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
                            again = primary_face(detector.detect(frame))
                            if again is None:
                                continue
                            n2 = again.landmarks.astype(np.float64) / SIDE
                            rec[name] = {"eye": float(np.linalg.norm(n2[:2] - points[:2], axis=1).max()),
                                         "chi": float(np.sqrt(np.mean(((n2 - points) / spread) ** 2))),
                                         "err": recrop_window(n2, points, spread)[0]}
                out.write(json.dumps(rec) + "\n")
                out.flush()


def value(rec: dict[str, Any], how: str) -> float:
    if "err1" not in rec:
        return np.inf
    keep = rec["keep"]
    if not (RECROP_KEEP[0] <= min(keep) and max(keep) <= RECROP_KEEP[1] and rec["outside"] <= RECROP_MAX_OUTSIDE):
        return np.inf
    if how == "err1":
        return float(rec["err1"])
    frame, name = how.split(":")
    return float(rec[frame][name]) if frame in rec else np.inf


def summary(paths: list[Path]) -> None:
    recs = [json.loads(line) for p in paths for line in p.read_text().splitlines()]
    for how in MEASURES:
        reals = np.array([value(r, how) for r in recs if r["key"].startswith("real/") and r["variant"] == "as_found"])
        gans = np.array([value(r, how) for r in recs if r["key"].startswith("gan/") and r["variant"] == "recropped"])
        threshold = np.sort(reals)[int(0.01 * len(reals))]
        print(f"{how:6s} reals {len(reals)}, threshold at 1 % {threshold:.4f}; "
              f"re-cropped GAN at or below: {np.mean(gans <= threshold):.3f} of {len(gans)}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--summary":
        summary([Path(p) for p in sys.argv[2:]])
    elif len(sys.argv) == 3:
        measure(Path(sys.argv[1]), Path(sys.argv[2]))
    else:
        raise SystemExit(__doc__)
