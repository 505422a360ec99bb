"""Throughput of a scan, and what each stage costs alone on the same images.

    python scripts/benchmark.py                       # 256², 512², 1024² JPEG faces, 64 each
    python scripts/benchmark.py --n 96 --sizes 1024 --json bench.json
    python scripts/benchmark.py --folder photos/      # your own photos, as they are
    python scripts/benchmark.py --workers 1           # one batch at a time, torch on every core

For each image size the script writes a folder of JPEG face photos (from the training
collection ``../shared/data/faces`` when it is there, else from ``samples/``: random crops
around the face, mirrored, at random JPEG quality), then times, on those same files:

- ``scan``: the full scan as the CLI runs it (parallel workers, decoding, detection, every
  check, fusion, JSON Lines written to a file), with the models already loaded;
- each stage alone, one after the other: ``decode`` (Pillow, one thread), ``detect``
  (MTCNN on the decoded images, batched as the scan batches them), ``align`` (the shared
  landmark-aligned crop), each check, and ``report`` (fusion and writing the records).

Last, ``ganscreen scan`` runs over all the folders in a child process, for the command's
own throughput (model loading included) and its peak RSS.

It prints a table and, with ``--json``, writes the same numbers as JSON: images per second,
milliseconds per image for every stage, the ratio of the scan's time to decode + detect
alone (the floor a scan cannot beat without a faster detector), and the CLI's figures.
Each timing is the best of ``--repeat`` rounds (stages, then scan, alternating); clocks on
shared machines are noisy.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from _common import DEFAULT_DATA, process_memory_mb  # noqa: E402
from ganscreen._stages import check_context, image_info  # noqa: E402
from ganscreen.images import iter_inputs, load_image  # noqa: E402
from ganscreen.pipeline import Screener, _chunks  # noqa: E402
from ganscreen.report import RecordWriter, Report  # noqa: E402

# --------------------------------------------------------------------------- test images

def source_photos(data: Path, n: int, rng: np.random.Generator) -> list[Image.Image]:
    """Up to ``n`` photos from the training collection (both labels), else the samples."""
    files = sorted((data / "gan").glob("*")) + sorted((data / "real").glob("*")) if data.is_dir() else []
    files = [f for f in files if f.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"}]
    if files:
        picked = rng.choice(len(files), size=min(n, len(files)), replace=False)
        return [Image.open(files[i]).convert("RGB") for i in sorted(picked)]
    names = ["astronaut.png", "astronaut_asymmetric_glasses.jpg", "astronaut_recropped.jpg",
             "astronaut_mirrored_backdrop.jpg", "astronaut_ffhq_aligned.jpg"]
    return [Image.open(ROOT / "samples" / name).convert("RGB") for name in names]


def make_folder(folder: Path, photos: list[Image.Image], side: int, n: int, rng: np.random.Generator) -> None:
    """``n`` square ``side``-pixel JPEGs: a random near-full square crop of a photo, maybe
    mirrored, resized, at JPEG quality 75–95."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        photo = photos[i % len(photos)]
        w, h = photo.size
        crop = int(min(w, h) * rng.uniform(0.85, 1.0))
        x, y = int(rng.integers(0, w - crop + 1)), int(rng.integers(0, h - crop + 1))
        img = photo.crop((x, y, x + crop, y + crop)).resize((side, side), Image.Resampling.LANCZOS)
        if rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(rng.integers(75, 96)))
        (folder / f"face_{side}_{i:04d}.jpg").write_bytes(buf.getvalue())


# --------------------------------------------------------------------------- timing

def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def time_stages(screener: Screener, files: list[Path], out_dir: Path) -> dict[str, float]:
    """Seconds for each stage alone over ``files``."""
    times: dict[str, float] = {}
    times["decode"], loaded = timed(lambda: [load_image(f) for f in files])
    arrays = [img.rgb for img in loaded]
    times["detect"], found = timed(lambda: [
        faces for chunk in _chunks(arrays, screener.batch_size) for faces in screener.detector.detect_batch(chunk)])
    times["align"], contexts = timed(lambda: [
        check_context(img, faces) for img, faces in zip(loaded, found, strict=True)])
    results: list[dict[str, Any]] = [{} for _ in contexts]
    for check in screener.checks:
        def run_check(check: Any = check) -> list[Any]:
            batched = getattr(check, "run_batch", None)
            if batched is None:
                return [check.run(ctx) for ctx in contexts]
            return [r for chunk in _chunks(contexts, screener.batch_size) for r in batched(chunk)]
        times[f"check:{check.name}"], outcome = timed(run_check)
        for slot, result in zip(results, outcome, strict=True):
            slot[check.name] = result

    def write_reports() -> None:
        with (out_dir / "stage-report.jsonl").open("w", encoding="utf-8") as fh:
            writer = RecordWriter(fh, "jsonl")
            for f, img, ctx, res in zip(files, loaded, contexts, results, strict=True):
                decision = screener.fusion.decide(res, face_found=ctx.face is not None)
                writer.write(Report(path=str(f), status="ok" if ctx.face is not None else "no_face",
                                    score=decision.score, verdict=decision.verdict, reason=decision.reason,
                                    flags=decision.flags, image=image_info(img), faces=ctx.faces, checks=res,
                                    model=screener.model_info))

    times["report"], _ = timed(write_reports)
    return times


def time_scan(screener: Screener, folder: Path, out_dir: Path) -> tuple[float, list[Report]]:
    def scan() -> list[Report]:
        reports = []
        with (out_dir / "scan.jsonl").open("w", encoding="utf-8") as fh:
            writer = RecordWriter(fh, "jsonl")
            for report in screener.scan_inputs(iter_inputs([folder])):
                writer.write(report)
                reports.append(report)
        return reports

    return timed(scan)


def cli_scan(folders: list[Path], out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``ganscreen scan`` of every folder in a child process, start-up included: its wall
    time and its peak resident memory (the scan alone, not this script's stage timings)."""
    cmd = [sys.executable, "-m", "ganscreen", "scan", *map(str, folders), "-o", str(out), "--no-progress",
           "--fail-on", "never", "--device", args.device]
    if args.batch_size:
        cmd += ["--batch-size", str(args.batch_size)]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak = 0.0
    while proc.poll() is None:
        # VmHWM: the child's own high-water mark (getrusage's children figure would count
        # this process's memory too, which the child shares until it executes Python).
        peak = max(peak, process_memory_mb(proc.pid, "VmHWM") or 0.0)
        time.sleep(0.1)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    seconds = time.perf_counter() - start
    records = sum(1 for _ in out.open(encoding="utf-8"))
    return {"images": records, "seconds": round(seconds, 2), "images_per_s": round(records / seconds, 2),
            "peak_rss_mb": round(peak, 1)}


# --------------------------------------------------------------------------- main

def run(args: argparse.Namespace) -> dict[str, Any]:
    # As `ganscreen scan` runs: automatic workers unless told, one torch thread each when several.
    screener = Screener(device=args.device, batch_size=args.batch_size, workers=args.workers, torch_threads="auto")
    rng = np.random.default_rng(args.seed)
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "device": str(screener.device), "python": platform.python_version(),
                    "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name(0) if screener.device.type == "cuda" else None},
        "settings": {"batch_size": screener.batch_size, "workers": screener.workers, "repeat": args.repeat,
                     "scan_torch_threads_per_worker": 1 if screener.workers > 1 else torch.get_num_threads()},
        "sizes": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        if args.folder is not None:
            groups = {"given": args.folder}
        else:
            photos = source_photos(args.data, 64, rng)
            results["images_from"] = "collection" if len(photos) > 5 else "samples"
            groups = {}
            for side in args.sizes:
                groups[f"{side}"] = tmp_dir / f"jpeg_{side}"
                make_folder(groups[f"{side}"], photos, side, args.n, rng)
        for name, folder in groups.items():
            # One untimed batch first: torch builds its kernels per input shape on first use.
            list(screener.scan_inputs(list(iter_inputs([folder]))[: screener.batch_size]))
            files = [item.path for item in iter_inputs([folder]) if item.error is None]
            # Rounds alternate stages and scan, so a burst of load elsewhere hits both alike.
            stages: dict[str, float] = {}
            scan_s = float("inf")
            for _ in range(args.repeat):
                for key, value in time_stages(screener, files, tmp_dir).items():
                    stages[key] = min(stages.get(key, float("inf")), value)
                seconds, reports = time_scan(screener, folder, tmp_dir)
                scan_s = min(scan_s, seconds)
            floor = stages["decode"] + stages["detect"]
            n = len(files)
            results["sizes"][name] = {
                "images": n,
                "faces_found": sum(r.status == "ok" for r in reports),
                "scan_images_per_s": round(n / scan_s, 2),
                "scan_ms_per_image": round(1000 * scan_s / n, 2),
                "stage_ms_per_image": {k: round(1000 * v / n, 2) for k, v in stages.items()},
                "stages_sum_ms_per_image": round(1000 * sum(stages.values()) / n, 2),
                "decode_detect_ms_per_image": round(1000 * floor / n, 2),
                "scan_over_decode_detect": round(scan_s / floor, 3),
            }
            print(f"  {name}: {n / scan_s:.1f} images/s, scan / (decode + detect) = {scan_s / floor:.2f}",
                  file=sys.stderr)
        results["cli"] = cli_scan(list(groups.values()), tmp_dir / "cli.jsonl", args)
    return results


def table(results: dict[str, Any]) -> str:
    sizes = results["sizes"]
    stages = list(next(iter(sizes.values()))["stage_ms_per_image"])
    head = ["ms / image", *sizes]
    rows = [[stage, *(f"{sizes[s]['stage_ms_per_image'][stage]:.1f}" for s in sizes)] for stage in stages]
    rows += [
        ["stages, sum", *(f"{sizes[s]['stages_sum_ms_per_image']:.1f}" for s in sizes)],
        ["decode + detect", *(f"{sizes[s]['decode_detect_ms_per_image']:.1f}" for s in sizes)],
        ["full scan", *(f"{sizes[s]['scan_ms_per_image']:.1f}" for s in sizes)],
        ["scan images / s", *(f"{sizes[s]['scan_images_per_s']:.1f}" for s in sizes)],
        ["scan / (decode + detect)", *(f"{sizes[s]['scan_over_decode_detect']:.2f}" for s in sizes)],
    ]
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = [" | ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in [head, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    m = results["machine"]
    cli = results["cli"]
    lines.append(f"\n{m['cpus']} CPUs, {m['torch_threads']} torch threads, device {m['device']}, "
                 f"batch {results['settings']['batch_size']}, workers {results['settings']['workers']}")
    lines.append(f"ganscreen scan of all {cli['images']} images, start-up included: {cli['seconds']:.1f} s "
                 f"({cli['images_per_s']:.1f} images/s), peak RSS {cli['peak_rss_mb']:.0f} MB")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--n", type=int, default=64, help="images per size")
    ap.add_argument("--folder", type=Path, default=None, help="benchmark these photos instead")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="photos to make the test images from")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the scan's automatic choice")
    ap.add_argument("--workers", type=int, default=None, help="parallel scan workers (default: automatic)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    results = run(args)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
