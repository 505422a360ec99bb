"""Fit the FFHQ/StyleGAN landmark template from MTCNN output on the GAN training images.

StyleGAN reproduces the FFHQ alignment of its training data, so the five MTCNN landmarks of
its faces sit at nearly fixed positions relative to the image frame. This script detects the
landmarks on every GAN image of the training collection, fits the template robustly
(median, then a refit on the faces within the core of the distribution), measures how
tightly GAN faces and real photos sit on it, and writes ``models/ffhq_template.json``.

    python scripts/fit_template.py --data ../shared/data/faces

Detections are cached (``--cache``) so the glasses and fusion scripts can reuse them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA, ROOT, read_cache, read_sources  # noqa: E402
from ganscreen._records import write_text_atomic  # noqa: E402
from ganscreen.faces import FaceDetector, primary_face  # noqa: E402
from ganscreen.images import ImageLoadError, load_image  # noqa: E402


def detect_collection(data: Path, cache: Path) -> dict[str, dict]:
    """Primary-face landmarks for every image under data/{real,gan}, cached as JSON Lines."""
    done: dict[str, dict] = {}
    if cache.exists():
        for rec in read_cache(cache, "file"):
            done[rec["file"]] = rec
    files = sorted(str(p.relative_to(data)) for p in data.glob("*/*") if p.parent.name in ("real", "gan"))
    todo = [f for f in files if f not in done]
    detector = FaceDetector(device="cpu")
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("a") as out:
        for start in range(0, len(todo), 16):
            chunk = todo[start:start + 16]
            images, names = [], []
            for name in chunk:
                try:
                    img = load_image(data / name)
                except ImageLoadError as exc:
                    rec = {"file": name, "error": str(exc)}
                    done[name] = rec
                    out.write(json.dumps(rec) + "\n")
                    continue
                images.append(img.rgb)
                names.append(name)
            for name, img, faces in zip(names, images, detector.detect_batch(images), strict=True):
                face = primary_face(faces)
                rec = {"file": name, "width": int(img.shape[1]), "height": int(img.shape[0]),
                       "n_faces": len(faces)}
                if face is not None:
                    rec.update(face.to_record())
                done[name] = rec
                out.write(json.dumps(rec) + "\n")
            out.flush()
            print(f"\r{len(done)}/{len(files)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    return {f: done[f] for f in files}


def normalised_landmarks(rec: dict) -> np.ndarray | None:
    if "landmarks" not in rec:
        return None
    pts = np.asarray(rec["landmarks"], np.float64)
    return pts / np.array([rec["width"], rec["height"]], np.float64)


def eye_error(norm: np.ndarray, template: np.ndarray) -> float:
    """Largest eye-point deviation from the template, in fractions of the image side."""
    return float(np.max(np.linalg.norm(norm[:2] - template[:2], axis=1)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cache", type=Path, default=ROOT / "scratch" / "detections.jsonl")
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "ffhq_template.json")
    ap.add_argument("--core", type=float, default=0.03,
                    help="eye error (fraction of image side) that defines the template's core")
    args = ap.parse_args()

    recs = detect_collection(args.data, args.cache)
    sources = read_sources(args.data)
    gan = {f: normalised_landmarks(r) for f, r in recs.items()
           if f.startswith("gan/") and r.get("width") == r.get("height")}
    gan = {f: v for f, v in gan.items() if v is not None}
    stack = np.stack(list(gan.values()))
    # Robust fit: start from the median, keep the faces near it, refit; twice.
    template = np.median(stack, axis=0)
    for _ in range(2):
        errs = np.array([eye_error(v, template) for v in stack])
        core = stack[errs < args.core]
        template = np.median(core, axis=0)
    errs = np.array([eye_error(v, template) for v in stack])
    core = stack[errs < args.core]
    spread = np.std(core, axis=0)
    core_errs = errs[errs < args.core]

    def rate(files: list[str], threshold: float) -> dict[str, float]:
        vals = [eye_error(v, template) for f in files if (v := normalised_landmarks(recs[f])) is not None]
        vals_a = np.asarray(vals)
        return {"n": len(vals), "on_template": float(np.mean(vals_a < threshold)) if len(vals) else 0.0}

    tau = float(np.quantile(core_errs, 0.9))
    by_group: dict[str, list[str]] = {}
    for f in recs:
        label = f.split("/")[0]
        generator = sources.get(f, {}).get("generator", "?")
        by_group.setdefault(f"{label}:{generator}", []).append(f)
    on_template = {g: rate(fs, 2.5 * tau) for g, fs in sorted(by_group.items())}
    ordinary_real = [f for f in recs if f.startswith("real/")
                     and sources.get(f, {}).get("generator") in ("unsplash", "ciplab-real", "meglass",
                                                                 "real-misc", "lfw-like-celebrity",
                                                                 "glasses-detector-demo")]
    file_list = "\n".join(sorted(gan)).encode()
    result = {
        "version": "ffhq-template-" + dt.date.today().isoformat(),
        "landmark_order": ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"],
        "points": np.round(template, 5).tolist(),
        "std": np.round(spread, 5).tolist(),
        "eye_error_tau": round(tau, 5),
        "eye_error_quantiles_gan_core": {q: round(float(np.quantile(core_errs, float(q))), 5)
                                         for q in ("0.5", "0.9", "0.95", "0.99")},
        "on_template_threshold": round(2.5 * tau, 5),
        "on_template_rate": on_template,
        "ordinary_real_on_template_rate": rate(ordinary_real, 2.5 * tau),
        "provenance": {
            "script": "scripts/fit_template.py",
            "detector": "facenet-pytorch 2.5.3 MTCNN (keep_all, min confidence 0.90)",
            "data": "training collection gan/* square images (SOURCES.tsv)",
            "n_gan_square_with_face": int(len(stack)),
            "n_core": int(len(core)),
            "core_eye_error": args.core,
            "files_sha256": hashlib.sha256(file_list).hexdigest(),
            "fitted": dt.date.today().isoformat(),
        },
    }
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")  # a shipped model file: whole or not at all
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
