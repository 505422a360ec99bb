"""Train the CNN check on labelled folders (``real/``, ``gan/``) and ship it to models/.

    python scripts/train_cnn.py --detections scratch/detections.jsonl   # the shipped model (~30 min, 2 cores)
    python scripts/train_cnn.py --epochs 1 --max-per-class 8 --out /tmp/tiny   # smoke run
    python scripts/train_cnn.py --evaluate models/cnn.safetensors --canonical-eye-px 60 --canonical-jpeg 60

Faces are found with the pipeline's own face stage (MTCNN) and cached as face regions
(``--cache``). Whole sources are held out for validation (``--holdout``): the model never
sees them, so the per-epoch ``summary.csv`` and the model card report how it does on
sources it has not seen. The collection's shortcuts are attacked in the augmentation:
every image is re-encoded as JPEG at random quality, randomly rescaled (down, and up for
small faces), blurred, jittered in zoom/position/rotation, flipped and colour-jittered, and
the crop borders are filled the same way for every class.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch import nn  # noqa: E402

from _common import (  # noqa: E402
    DEFAULT_DATA,
    FIT_SOURCES,
    ROOT,
    is_aligned_real,
    read_all_sources,
    roc_metrics,
    source_of,
)
from ganscreen._records import largest_face, read_records  # noqa: E402
from ganscreen.faces import Face, FaceDetector, primary_face  # noqa: E402
from ganscreen.images import ImageLoadError, load_image  # noqa: E402
from ganscreen.model import (  # noqa: E402
    BACKDROP_FILL,
    BACKDROP_MIN_VISIBLE,
    ModelConfig,
    backdrop_crop,
    build_model,
    canonical_face,
    cnn_crop,
    count_parameters,
    load_model,
    save_model,
    to_tensor,
    widen_stem,
)

DEFAULT_HOLDOUT = FIT_SOURCES  # the protocol's `F` sources (_common.py says why these)
VARIANTS = ("as_found", "recropped", "degraded")  # the held-out faces as validation sees them
REGION_EYE_DISTANCE = 96  # cached regions are downscaled so the eyes are at most this far apart


@dataclass
class Sample:
    key: str
    label: int
    source: str
    region: np.ndarray  # uint8 RGB, the face with margin, clamped inside the photo
    landmarks: np.ndarray  # (5, 2) in region pixels


# --------------------------------------------------------------------------- data


def build_cache(datas: list[Path], cache: Path, *, max_per_class: int | None, seed: int,
                detections: Path | None = None) -> list[Sample]:
    """Face regions for every image of every folder (detected once, then read from ``cache``).

    ``detections`` (JSON Lines of primary faces keyed by 'label/file', as
    scripts/fit_template.py caches them or made from a scan) saves running MTCNN again."""
    known: dict[str, dict] = {}
    if detections is not None and detections.exists():
        read = read_records(detections, accept=lambda v: isinstance(v, dict) and (
            isinstance(v.get("path"), str) or isinstance(v.get("file"), str)))
        if read.note:
            print(f"note: {read.note}", file=sys.stderr)
        for rec in read.records:
            if "path" in rec:  # a ganscreen scan record: its largest face, or none
                face = largest_face(rec.get("faces"))
                rec = {"file": "/".join(Path(rec["path"]).parts[-2:]), **(face or {})}
            known[rec["file"]] = rec
    cache.mkdir(parents=True, exist_ok=True)
    index_path = cache / "index.json"
    index: dict[str, dict] = json.loads(index_path.read_text()) if index_path.exists() else {}
    files: list[tuple[Path, str]] = []
    for data in datas:
        for label_name in ("real", "gan"):
            folder = data / label_name
            if not folder.is_dir():
                continue
            names = sorted(p.name for p in folder.iterdir() if p.is_file())
            if max_per_class:
                names = sorted(random.Random(seed).sample(names, min(max_per_class, len(names))))
            files += [(data, f"{label_name}/{n}") for n in names]
    detector: FaceDetector | None = None
    samples = []
    for i, (data, key) in enumerate(files):
        entry = index.get(key)
        if entry is None:
            if key not in known:
                detector = detector or FaceDetector(device="cpu")
            entry = _cache_one(data, cache, key, detector, known.get(key))
            index[key] = entry
            if i % 200 == 0:
                index_path.write_text(json.dumps(index))
                print(f"\rcaching faces {i}/{len(files)}", end="", file=sys.stderr)
        if entry.get("file") is None:
            continue
        region = np.asarray(Image.open(cache / entry["file"]).convert("RGB"))
        samples.append(Sample(key=key, label=1 if key.startswith("gan/") else 0, source=source_of(key),
                              region=region, landmarks=np.asarray(entry["landmarks"], np.float32)))
    index_path.write_text(json.dumps(index))
    print(f"\r{len(samples)} faces cached from {len(files)} files", file=sys.stderr)
    return samples


def _cache_one(data: Path, cache: Path, key: str, detector: FaceDetector | None,
               known: dict | None) -> dict:
    try:
        image = load_image(data / key).rgb
    except ImageLoadError as exc:
        return {"file": None, "error": str(exc)}
    if known is not None:
        face = None if "landmarks" not in known else Face(
            box=np.asarray(known["box"], np.float32), landmarks=np.asarray(known["landmarks"], np.float32),
            confidence=float(known["confidence"]))
    else:
        assert detector is not None
        face = primary_face(detector.detect(image))
    if face is None:
        return {"file": None, "error": "no face"}
    # A generous square around the face, clamped inside the photo (never padded here).
    cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    half = 1.1 * max(face.width, face.height)
    x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
    x1, y1 = int(min(image.shape[1], cx + half)), int(min(image.shape[0], cy + half))
    region = image[y0:y1, x0:x1]
    landmarks = face.landmarks - np.array([x0, y0], np.float32)
    scale = min(1.0, REGION_EYE_DISTANCE / max(face.eye_distance, 1.0))
    if scale < 1.0:
        region = cv2.resize(region, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        landmarks = landmarks * scale
    name = key.replace("/", "__") + ".png"  # lossless: the re-encoding happens in training
    Image.fromarray(region).save(cache / name)
    return {"file": name, "landmarks": landmarks.round(3).tolist()}


def split(samples: list[Sample], holdout: list[str], datas: list[Path]) -> tuple[list[Sample], list[Sample]]:
    sources = read_all_sources(datas)
    held_generators = {h.split(":", 1)[1] for h in holdout if h.startswith("generator:")}
    held_sources = {h for h in holdout if not h.startswith("generator:")}

    def is_held(s: Sample) -> bool:
        generator = sources.get(s.key, {}).get("generator", "")
        return s.source in held_sources or (s.label == 0 and generator in held_generators)

    return [s for s in samples if not is_held(s)], [s for s in samples if is_held(s)]


# --------------------------------------------------------------------------- augmentation


def augment(sample: Sample, rng: np.random.Generator, config: ModelConfig,
            smooth_p: float = 0.0) -> np.ndarray:
    region, points = sample.region, sample.landmarks.copy()
    if rng.random() < 0.3:  # re-cropped copies, so alignment is never the clue
        region, points = recrop(region, points, rng)
    if smooth_p > 0 and rng.random() < smooth_p:  # no draw at 0: earlier runs replay exactly
        region = smooth_skin(region, points, rng)
    region, points = launder(region, points, rng)
    # As inference sees it (cnn.json), with room for the framing jitter below.
    region, points = canonical_face(region, points, config, zoom=0.6 * config.zoom)
    # Framing jitter: zoom, shift and rotate the landmarks before the standard crop.
    centre = points.mean(axis=0)
    theta = math.radians(rng.uniform(-8, 8))
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    eye = float(np.linalg.norm(points[1] - points[0]))
    shift = rng.uniform(-0.12, 0.12, size=2) * eye
    jittered = (points - centre) @ rot.T + centre + shift
    # Mostly the standard framing; often much tighter, as tight real crops get clamped to.
    zoom = config.zoom * rng.uniform(0.9, 1.1) if rng.random() < 0.6 else rng.uniform(1.4, 2.2)
    if config.view == "backdrop":
        return _augment_backdrop(region, jittered, rng, config)
    face = Face(box=np.zeros(4, np.float32), landmarks=jittered.astype(np.float32), confidence=1.0)
    crop = cnn_crop(region, face, size=config.input_size, zoom=zoom)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = colour_jitter(crop, rng)
    if rng.random() < 0.3:  # border streaks for every class, so padding is no label
        crop = replicate_border(crop, rng)
    return np.ascontiguousarray(crop)


def _augment_backdrop(region: np.ndarray, points: np.ndarray, rng: np.random.Generator,
                      config: ModelConfig) -> np.ndarray:
    """The backdrop view's training crop: the FFHQ framing at a jittered zoom (never the tight
    branch: it would hide the backdrop), and for every class alike grey bands at random
    borders, so that how much of the crop is grey (tight real crops) is no label."""
    zoom = config.zoom * rng.uniform(0.85, 1.15)
    crop, visible = backdrop_crop(region, points, size=config.input_size, zoom=zoom)
    if rng.random() < 0.5:
        size = config.input_size
        for side in rng.choice(4, size=int(rng.integers(1, 3)), replace=False):
            width = int(rng.uniform(0.05, 0.30) * size)
            band = [slice(None), slice(None)]
            band[int(side) % 2] = slice(0, width) if side < 2 else slice(size - width, size)
            visible[band[0], band[1]] = False
    if rng.random() < 0.5:
        crop, visible = crop[:, ::-1], visible[:, ::-1]
    crop = colour_jitter(crop, rng)
    crop[~visible] = BACKDROP_FILL
    return np.ascontiguousarray(crop)


INTERPOLATIONS = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4, cv2.INTER_NEAREST)


def resize(region: np.ndarray, points: np.ndarray, factor: float,
           interpolation: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    size = (max(8, round(region.shape[1] * factor)), max(8, round(region.shape[0] * factor)))
    if interpolation is None:
        interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    out = cv2.resize(region, size, interpolation=interpolation)
    return out, points * np.array([size[0] / region.shape[1], size[1] / region.shape[0]])


def launder(region: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """What happens to a profile photo before we see it, for every class alike: one to three
    rescales (mostly down, sometimes up, any interpolation), blur, and JPEG at quality
    30-100 in between and at the end. The eyes stay at least 20 px apart."""
    for _ in range(int(rng.choice([1, 1, 2, 3]))):
        eye = float(np.linalg.norm(points[1] - points[0]))
        factor = rng.uniform(0.3, 1.0) if rng.random() < 0.75 else rng.uniform(1.0, 1.8)
        factor = max(factor, 20.0 / max(eye, 1.0))
        if abs(factor - 1.0) > 0.02:
            region, points = resize(region, points, factor, INTERPOLATIONS[int(rng.integers(len(INTERPOLATIONS)))])
        if rng.random() < 0.15:
            region = cv2.GaussianBlur(region, (0, 0), rng.uniform(0.3, 1.2))
        if rng.random() < 0.5:
            region = jpeg(region, int(rng.integers(30, 96)))
    return jpeg(region, int(rng.integers(30, 101))), points


def smooth_skin(region: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A phone's or editor's beauty filter, for every class alike: an edge-preserving
    (bilateral) smoothing sized to the face, blended in at a random strength, so that smooth,
    evenly lit skin is no clue to the label."""
    eye = float(np.linalg.norm(points[1] - points[0]))
    sigma_space = max(1.0, rng.uniform(0.03, 0.08) * eye)
    smoothed = cv2.bilateralFilter(region, d=-1, sigmaColor=float(rng.uniform(15, 45)), sigmaSpace=sigma_space)
    strength = rng.uniform(0.5, 1.0)
    out = strength * smoothed.astype(np.float32) + (1 - strength) * region.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def recrop(region: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An operator's re-crop: keep 70-95 % of the side at a random offset (the face kept
    inside), resize, re-encode; landmarks move by about a pixel as a new detection would."""
    h, w = region.shape[:2]
    keep = rng.uniform(0.70, 0.95)
    ch, cw = max(16, int(h * keep)), max(16, int(w * keep))
    lo = np.clip(points.max(axis=0) - np.array([cw, ch]) + 2, 0, None)
    hi = np.clip(points.min(axis=0) - 2, 0, np.array([w - cw, h - ch]))
    x0 = int(rng.uniform(min(lo[0], hi[0]), max(lo[0], hi[0]) + 1e-6))
    y0 = int(rng.uniform(min(lo[1], hi[1]), max(lo[1], hi[1]) + 1e-6))
    x0, y0 = min(max(x0, 0), w - cw), min(max(y0, 0), h - ch)
    out, pts = region[y0:y0 + ch, x0:x0 + cw], points - np.array([x0, y0], np.float32)
    out, pts = resize(out, pts, rng.uniform(0.6, 1.4))
    eye = float(np.linalg.norm(pts[1] - pts[0]))
    pts = pts + rng.normal(0, 0.015 * eye, size=pts.shape)
    return jpeg(out, int(rng.integers(75, 96))), pts.astype(np.float32)


def degrade(region: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 256-px, JPEG-60 profile photo: eyes about 60 px apart at most."""
    eye = float(np.linalg.norm(points[1] - points[0]))
    if eye > 60:
        region, points = resize(region, points, 60 / eye, cv2.INTER_AREA)
    return jpeg(region, 60), points


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def colour_jitter(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = rgb.astype(np.float32)
    x = x * rng.uniform(0.85, 1.15) + rng.uniform(-15, 15)  # contrast, brightness
    grey = x.mean(axis=2, keepdims=True)
    saturation = 0.0 if rng.random() < 0.05 else rng.uniform(0.8, 1.2)
    x = grey + (x - grey) * saturation
    return np.clip(x, 0, 255).astype(np.uint8)


def replicate_border(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = rgb.copy()
    n = rgb.shape[0]
    k = int(rng.integers(4, n // 6))
    side = int(rng.integers(4))
    if side == 0:
        out[:, :k] = out[:, k:k + 1]
    elif side == 1:
        out[:, -k:] = out[:, -k - 1:-k]
    elif side == 2:
        out[:k] = out[k:k + 1]
    else:
        out[-k:] = out[-k - 1:-k]
    return out


# --------------------------------------------------------------------------- training


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


@torch.inference_mode()
def predict_logits(model: nn.Module, crops: list[np.ndarray], config: ModelConfig, batch: int = 64) -> np.ndarray:
    """Mean logit over each crop and its mirror image."""
    model.eval()
    out = []
    for i in range(0, len(crops), batch):
        x = to_tensor(crops[i:i + batch], config)
        out.append(((model(x) + model(torch.flip(x, dims=[3]))) / 2).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def predict(model: nn.Module, crops: list[np.ndarray], config: ModelConfig, batch: int = 64) -> np.ndarray:
    """Mean probability over each crop and its mirror image (the sigmoid of predict_logits)."""
    return torch.sigmoid(torch.from_numpy(predict_logits(model, crops, config, batch))).numpy()


def variant_crops(samples: list[Sample], config: ModelConfig, variant: str, seed: int = 1) -> list[np.ndarray]:
    """The held-out faces as found, re-cropped or degraded (fixed seed: the same every epoch)."""
    return variant_views(samples, config, variant, seed)[0]


def variant_views(samples: list[Sample], config: ModelConfig, variant: str,
                  seed: int = 1) -> tuple[list[np.ndarray], np.ndarray]:
    """:func:`variant_crops` and whether each crop can be judged (the backdrop view: enough
    visible backdrop; the face view: always)."""
    rng = np.random.default_rng(seed)
    crops, judged = [], []
    for s in samples:
        region, points = s.region, s.landmarks
        if variant == "recropped":
            region, points = recrop(region, points, rng)
        elif variant == "degraded":
            region, points = degrade(region, points)
        region, points = canonical_face(region, points, config)  # as inference sees it (cnn.json)
        if config.view == "backdrop":
            crop, visible = backdrop_crop(region, points, size=config.input_size, zoom=config.zoom)
            crops.append(crop)
            judged.append(_shows_backdrop(visible))
            continue
        face = Face(box=np.zeros(4, np.float32), landmarks=np.asarray(points, np.float32), confidence=1.0)
        crops.append(cnn_crop(region, face, size=config.input_size, zoom=config.zoom))
        judged.append(True)
    return crops, np.array(judged, bool)


def _shows_backdrop(visible: np.ndarray) -> bool:
    """Whether a backdrop view's visible mask leaves enough backdrop to judge."""
    return float(visible.mean()) >= BACKDROP_MIN_VISIBLE


def backdrop_judged(samples: list[Sample], config: ModelConfig) -> list[Sample]:
    """The samples whose as-found backdrop view (``config``'s size and zoom) can be judged."""
    return [s for s in samples
            if _shows_backdrop(backdrop_crop(s.region, s.landmarks, size=config.input_size, zoom=config.zoom)[1])]


def evaluate(model: nn.Module, samples: list[Sample], config: ModelConfig,
             cached: dict[str, tuple[list[np.ndarray], np.ndarray]] | None = None,
             aligned: set[str] | None = None) -> dict:
    """Per variant: all held-out GAN vs all held-out reals, and each GAN source vs them
    (the backdrop view: among the faces each variant's crop can judge). With ``aligned``
    (the keys of FFHQ/CelebA-HQ-aligned reals), also all GAN vs the ordinary reals and vs the
    aligned ones, as the evaluation table splits them."""
    if not samples:
        return {}
    result: dict = {}
    for variant in VARIANTS:
        crops, judged = cached[variant] if cached is not None else variant_views(samples, config, variant)
        keep = np.flatnonzero(judged)
        kept = [samples[i] for i in keep]
        if not kept:
            continue
        y = np.array([s.label for s in kept])
        reals = np.flatnonzero(y == 0)
        scores = predict(model, [crops[i] for i in keep], config)
        entry = {"all": roc_metrics(y, scores)}
        if aligned:
            gan = np.flatnonzero(y == 1)
            for name, wanted in (("vs_ordinary", False), ("vs_aligned", True)):
                neg = [i for i in reals if (kept[i].key in aligned) == wanted]
                entry[name] = roc_metrics([1] * len(gan) + [0] * len(neg), np.concatenate([scores[gan], scores[neg]]))
        if len(kept) < len(samples):
            entry["judged"] = {"gan": int(y.sum()), "real": int(len(y) - y.sum()),
                               "of_gan": sum(s.label for s in samples), "of_real": sum(1 - s.label for s in samples)}
        for src in sorted({s.source for s in kept}):
            idx = [i for i, s in enumerate(kept) if s.source == src]
            pos = [i for i in idx if kept[i].label == 1]
            if pos:  # a GAN source against every held-out real
                entry[src] = roc_metrics([1] * len(pos) + [0] * len(reals),
                                         np.concatenate([scores[pos], scores[reals]]))
            else:
                entry[src] = {"n": len(idx), "mean_score": round(float(scores[idx].mean()), 4),
                              "above_0.5": round(float((scores[idx] > 0.5).mean()), 4)}
        result[variant] = entry
    return result


def model_config(args: argparse.Namespace) -> ModelConfig:
    """The network and input settings a run's arguments name (training and --evaluate)."""
    return ModelConfig(input_size=args.input_size, zoom=args.zoom, arch=args.arch,
                       widths=tuple(args.widths) if args.widths else
                       ((32, 64, 128) if args.arch == "patchnet" else ModelConfig().widths),
                       canonical_eye_px=args.canonical_eye_px, canonical_jpeg=args.canonical_jpeg,
                       stem_stride=args.stem_stride, view=args.view)


def initial_model(init: Path, config: ModelConfig) -> nn.Module:
    """The network to fine-tune from ``init``: the same architecture, or (``stem_stride`` 2
    from stride-1 weights) the exact widening of its stem (:func:`ganscreen.model.widen_stem`)."""

    def widen_if_narrow(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        narrow = config.stem_stride == 2 and state["stem.0.weight"].shape[-1] == 3
        return widen_stem(state) if narrow else state

    return load_model(init, config, transform=widen_if_narrow).train()


def train(args: argparse.Namespace) -> dict:
    seed_everything(args.seed)
    torch.set_num_threads(args.threads)
    config = model_config(args)
    samples = build_cache(args.data, args.cache, max_per_class=args.max_per_class, seed=args.seed,
                          detections=args.detections)
    train_set, held = split(samples, args.holdout, args.data)
    if not train_set:
        raise SystemExit("no training images left after the hold-out")
    print(f"train {len(train_set)} ({sum(s.label for s in train_set)} GAN), held out {len(held)} "
          f"({sum(s.label for s in held)} GAN)", file=sys.stderr)
    model = initial_model(args.init, config) if args.init else build_model(config)
    if config.view == "backdrop":  # faces with too little backdrop teach nothing but "grey = real"
        before = len(train_set)
        train_set = backdrop_judged(train_set, config)
        print(f"backdrop view: {len(train_set)} of {before} training faces show enough backdrop", file=sys.stderr)
    cached = {v: variant_views(held, config, v) for v in VARIANTS} if held else None
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train_set) / args.batch_size))
    if args.max_steps:
        steps_per_epoch = min(steps_per_epoch, args.max_steps)
    total = steps_per_epoch * args.epochs
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=args.lr, total_steps=total, pct_start=0.15)
    n_pos = sum(s.label for s in train_set)
    pos_weight = torch.tensor((len(train_set) - n_pos) / max(n_pos, 1))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    summary_path = args.out / "summary.csv"
    rows = []
    start = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = rng.permutation(len(train_set))
        losses = []
        for step in range(steps_per_epoch):
            idx = order[step * args.batch_size:(step + 1) * args.batch_size]
            if len(idx) == 0:
                break
            batch = [train_set[i] for i in idx]
            x = to_tensor([augment(s, rng, config, args.smooth_p) for s in batch], config)
            y = torch.tensor([float(s.label) for s in batch])
            loss = loss_fn(model(x), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
        metrics = evaluate(model, held, config, cached)
        row = {"epoch": epoch, "train_loss": round(float(np.mean(losses)), 4),
               "lr": round(schedule.get_last_lr()[0], 6), "minutes": round((time.time() - start) / 60, 2)}
        for variant in VARIANTS:
            row[f"heldout_auc_{variant}"] = metrics.get(variant, {}).get("all", {}).get("auc", "")
            row[f"heldout_tpr_at_fpr_0.01_{variant}"] = metrics.get(variant, {}).get("all", {}).get("tpr_at_fpr_0.01", "")
        rows.append(row)
        with summary_path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            writer.writeheader()
            writer.writerows(rows)
        print(json.dumps(row), file=sys.stderr, flush=True)
        save_model(model, args.out / "checkpoint.safetensors", args.out / "checkpoint.json", {"epoch": epoch})
    final = evaluate(model, held, config, cached)
    extra = {
        "trained": dt.date.today().isoformat(),
        "seed": args.seed,
        "parameters": count_parameters(model),
        "train_images": len(train_set),
        "train_sources": sorted({s.source for s in train_set}),
        "holdout": args.holdout,
        "heldout_metrics": final,
    }
    save_model(model, args.out / "cnn.safetensors", args.out / "cnn.json", extra)
    (args.out / "train_args.json").write_text(json.dumps(
        vars(args), indent=2, default=str) + "\n")
    return final


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, nargs="+", default=[DEFAULT_DATA],
                    help="folders with real/ and gan/ (and a SOURCES.tsv)")
    ap.add_argument("--out", type=Path, default=ROOT / "models", help="where weights, cnn.json, summary.csv go")
    ap.add_argument("--cache", type=Path, default=ROOT / "scratch" / "cnn_cache")
    ap.add_argument("--detections", type=Path, default=None,
                    help="JSON Lines of detected faces to reuse: scripts/fit_template.py --cache, or a ganscreen "
                         "scan of the folders")
    ap.add_argument("--holdout", nargs="*", default=DEFAULT_HOLDOUT,
                    help="sources ('gan/name', 'real/name') or 'generator:NAME' reals kept out of training")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=48)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--input-size", type=int, default=128)
    ap.add_argument("--stem-stride", type=int, choices=[1, 2], default=1,
                    help="FaceNet stem stride (2: a 6x6 stride-2 stem, for --input-size 256; --init from "
                         "stride-1 weights widens their stem exactly)")
    ap.add_argument("--canonical-eye-px", type=float, default=None,
                    help="inference's canonical copy: eyes at most this far apart (cnn.json; default off)")
    ap.add_argument("--canonical-jpeg", type=int, default=None,
                    help="inference's canonical copy: JPEG quality (cnn.json; default off)")
    ap.add_argument("--zoom", type=float, default=1.3, help="crop zoom about the canonical layout (1.0: FFHQ framing)")
    ap.add_argument("--arch", choices=["facenet", "patchnet"], default="facenet")
    ap.add_argument("--view", choices=["face", "backdrop"], default="face",
                    help="the face crop, or the backdrop view (FFHQ framing with head, hair and shoulders "
                         "hidden; use with --zoom 1.0)")
    ap.add_argument("--widths", type=int, nargs="*", default=None)
    ap.add_argument("--init", type=Path, default=None, help="start from these weights (same architecture)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smooth-p", type=float, default=0.0,
                    help="share of training images given a beauty-filter smoothing (every class alike)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-per-class", type=int, default=None, help="subsample (smoke runs)")
    ap.add_argument("--max-steps", type=int, default=None, help="cap steps per epoch (smoke runs)")
    ap.add_argument("--evaluate", type=Path, default=None, metavar="WEIGHTS",
                    help="train nothing: score these weights on the held-out sources (as found, "
                         "re-cropped, degraded) with this run's input settings (e.g. --canonical-*)")
    return ap.parse_args(argv)


def evaluate_weights(args: argparse.Namespace) -> dict:
    """Held-out metrics of existing weights under this run's input settings: the same
    function and the same re-crops as a training run's per-epoch validation."""
    torch.set_num_threads(args.threads)
    config = model_config(args)
    samples = build_cache(args.data, args.cache, max_per_class=args.max_per_class, seed=args.seed,
                          detections=args.detections)
    _, held = split(samples, args.holdout, args.data)
    if not held:
        raise SystemExit("no held-out faces to score")
    model = load_model(args.evaluate, config)
    sources = read_all_sources(args.data)
    aligned = {s.key for s in held if is_aligned_real(s.key, sources)}
    result = evaluate(model, held, config, aligned=aligned)
    out = {"weights": str(args.evaluate), "config": config.to_dict(),
           "n_held_out": len(held), "n_gan": sum(s.label for s in held),
           "all": {variant: result[variant]["all"] for variant in result}, "per_source": result}
    if aligned:
        for name in ("vs_ordinary", "vs_aligned"):
            out[name] = {variant: result[variant][name] for variant in result}
    return out


if __name__ == "__main__":
    arguments = parse_args()
    print(json.dumps(evaluate_weights(arguments) if arguments.evaluate else train(arguments), indent=2))
