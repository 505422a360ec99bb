"""Throughput of the Ray engine against the local engine, and the per-actor rate for scaling.

    python scripts/benchmark_ray.py                       # 240 generated photos, 1 and 2 actors
    python scripts/benchmark_ray.py --folder photos/ --actors 1 2 4 --json ray.json

Generates N profile-photo-like images (the sample astronaut photos resized to 256-512 px,
re-encoded as JPEG, one in ten faceless noise) unless --folder is given, then times:

- local: ``Screener.scan`` in this process, model load apart, with automatic workers (as
  ``ganscreen scan`` runs: one per CPU, one torch thread each) and with one worker on one
  torch thread (as each Ray actor with one CPU runs);
- ray start: ``ray.init`` of a local instance (``--num-cpus``, default 2);
- ray, k actors: ``screen_dataset`` over path rows, end to end (actors starting and loading
  the models included, as a real run pays them), plus each actor's busy rate, timed inside
  the actor: rows screened / seconds spent in calls. That rate times actors per node is the
  arithmetic of the README's "Scaling out with Ray".

Prints a table and writes JSON with --json. Keep N modest on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("astronaut.png", "astronaut_ffhq_aligned.jpg", "astronaut_asymmetric_glasses.jpg",
           "astronaut_recropped.jpg", "astronaut_mirrored_backdrop.jpg")


def make_images(folder: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    photos = [Image.open(ROOT / "samples" / name).convert("RGB") for name in SOURCES]
    for i in range(n):
        if i % 10 == 9:
            img = Image.fromarray(rng.integers(0, 255, (320, 320, 3), dtype=np.uint8))
        else:
            side = int(rng.integers(256, 513))
            img = photos[i % len(photos)].resize((side, side), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(rng.integers(70, 95)))
        (folder / f"img_{i:05d}.jpg").write_bytes(buf.getvalue())


def bench_local(folder: Path, batch_size: int, workers: int | None, device: str) -> dict[str, Any]:
    """The local engine with ``workers`` (None: automatic, as ``ganscreen scan`` runs; 1 with
    one torch thread: what one Ray actor with one CPU runs)."""
    import torch

    from ganscreen import Screener

    default = torch.get_num_threads()
    if workers == 1:
        torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        screener = Screener(device=device, batch_size=batch_size, workers=workers, torch_threads="auto")
        load = time.perf_counter() - t0
        t0 = time.perf_counter()
        n = sum(1 for _ in screener.scan(folder))
        seconds = time.perf_counter() - t0
    finally:
        torch.set_num_threads(default)
    return {"engine": "local", "workers": screener.workers, "records": n,
            "model_load_s": round(load, 2), "seconds": round(seconds, 2),
            "images_per_s": round(n / seconds, 2)}


def timed_screen_batch() -> type:
    """ScreenBatch that also reports which actor screened each row and how long its call took."""
    from ganscreen.ray_engine import ScreenBatch

    class TimedScreenBatch(ScreenBatch):
        def __call__(self, batch: Any) -> pa.Table:
            t0 = time.perf_counter()
            table = super().__call__(batch)
            per_row = (time.perf_counter() - t0) / max(1, table.num_rows)
            table = table.append_column("actor_pid", pa.array([os.getpid()] * table.num_rows, pa.int64()))
            return table.append_column("call_s", pa.array([per_row] * table.num_rows, pa.float64()))

    return TimedScreenBatch


def bench_ray(folder: Path, actors: int, batch_size: int, device: str, cpus_per_actor: float) -> dict[str, Any]:
    from ganscreen.images import iter_inputs
    from ganscreen.ray_engine import ScanOptions, inputs_dataset, screen_dataset

    inputs = list(iter_inputs([folder]))
    t0 = time.perf_counter()
    ds = screen_dataset(inputs_dataset(inputs, rows_per_block=batch_size),
                        options=ScanOptions(device=device, batch_size=batch_size), actors=actors,
                        num_cpus=cpus_per_actor, callable_class=timed_screen_batch())
    rows = ds.select_columns(["path", "actor_pid", "call_s"]).take_all()
    seconds = time.perf_counter() - t0
    busy: defaultdict[int, list[float]] = defaultdict(list)
    for row in rows:
        busy[row["actor_pid"]].append(row["call_s"])
    per_actor = [len(v) / sum(v) for v in busy.values() if sum(v) > 0]
    assert len(rows) == len(inputs) == len({r["path"] for r in rows})
    return {"engine": "ray", "actors": actors, "actors_used": len(busy), "records": len(rows),
            "seconds": round(seconds, 2), "images_per_s": round(len(rows) / seconds, 2),
            "per_actor_busy_images_per_s": [round(r, 2) for r in per_actor]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, default=None, help="photos to scan (default: generate --n)")
    ap.add_argument("--n", type=int, default=240)
    ap.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray instance")
    ap.add_argument("--cpus-per-actor", type=float, default=1.0,
                    help="CPUs each actor reserves (and torch threads it gets)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cuda: the local engine on the GPU, and one GPU per Ray actor")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder
        if folder is None:
            folder = Path(tmp) / "photos"
            folder.mkdir()
            make_images(folder, args.n)
        results: list[dict[str, Any]] = [bench_local(folder, args.batch_size, None, args.device),
                                          bench_local(folder, args.batch_size, 1, args.device)]

        import ray
        import ray.data

        t0 = time.perf_counter()
        ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, logging_level="WARNING")
        startup = time.perf_counter() - t0
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            for k in args.actors:
                results.append(bench_ray(folder, k, args.batch_size, args.device, args.cpus_per_actor))
        finally:
            ray.shutdown()

    summary = {"files": results[0]["records"], "batch_size": args.batch_size, "device": args.device,
               "cpus_per_actor": args.cpus_per_actor,
               "cpu_count": os.cpu_count(),
               "load_average_1m": round(os.getloadavg()[0], 2), "ray_init_s": round(startup, 2),
               "results": results}
    print(f"{'engine':<20}{'records':>8}{'seconds':>9}{'images/s':>10}  per-actor busy images/s",
          file=sys.stderr)
    for r in results:
        name = (f"local, {r['workers']} worker(s)" if r["engine"] == "local"
                else f"ray, {r['actors']} actor(s)")
        extra = r.get("per_actor_busy_images_per_s", f"(model load {r.get('model_load_s')} s apart)")
        print(f"{name:<20}{r['records']:>8}{r['seconds']:>9}{r['images_per_s']:>10}  {extra}", file=sys.stderr)
    print(f"ray.init: {summary['ray_init_s']} s; load average {summary['load_average_1m']}", file=sys.stderr)
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
