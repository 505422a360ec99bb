"""Peak memory of a large scan: does RSS stay flat as the number of files grows?

    python scripts/benchmark_memory.py --n 20000            # the issue's scale (~15 min here)
    python scripts/benchmark_memory.py --n 2000 --json out.json
    python scripts/benchmark_memory.py --n 3000 --sides 256 512 1024   # profile-photo sizes

Generates N small images in a temporary folder (astronaut face crops at several sizes and
JPEG qualities, plus some faceless noise images), runs ``ganscreen scan`` on them in a
subprocess, samples its resident memory from /proc while it runs, and reports the peak RSS
and the RSS at 10 %, 50 % and 100 % of the records: flat means streaming works.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from _common import process_memory_mb  # noqa: E402


def make_images(folder: Path, n: int, seed: int = 0, sides: list[int] | None = None) -> None:
    """Astronaut face crops, 96–200 px (or cycling through ``sides``), one in ten noise."""
    rng = np.random.default_rng(seed)
    astronaut = Image.open(ROOT / "samples" / "astronaut.png").convert("RGB")
    face = astronaut.crop((130, 20, 320, 230))
    portrait = astronaut.crop((40, 0, 440, 400))
    for i in range(n):
        sub = folder / f"{i // 1000:03d}"
        sub.mkdir(exist_ok=True)
        side = sides[i % len(sides)] if sides else int(rng.integers(96, 200))
        if i % 10 == 9:
            img = Image.fromarray(rng.integers(0, 255, (min(side, 256), min(side, 256), 3), dtype=np.uint8))
        elif sides:
            img = portrait.resize((side, side), Image.Resampling.BILINEAR)
        else:
            img = face.resize((side, side), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(rng.integers(60, 95)))
        (sub / f"img_{i:06d}.jpg").write_bytes(buf.getvalue())


def count_lines(path: Path) -> int:
    try:
        with path.open("rb") as fh:
            return sum(1 for _ in fh)
    except OSError:
        return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--sides", type=int, nargs="+", default=None,
                    help="square photo sizes to cycle through (e.g. 256 512 1024) instead of small face crops")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        t0 = time.time()
        make_images(folder, args.n, sides=args.sides)
        out = Path(tmp) / "scan.jsonl"
        cmd = [sys.executable, "-m", "ganscreen", "scan", str(folder), "-o", str(out), "--no-progress",
               "--fail-on", "never", "--device", "cpu"]
        start = time.time()
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        samples: list[tuple[int, float]] = []
        while proc.poll() is None:
            rss = process_memory_mb(proc.pid)
            if rss is not None:
                samples.append((count_lines(out), rss))
            time.sleep(0.5)
        stderr = proc.stderr.read() if proc.stderr else ""
        elapsed = time.time() - start
        records = count_lines(out)

    def at(fraction: float) -> float | None:
        done = [rss for lines, rss in samples if lines >= fraction * args.n]
        return round(done[0], 1) if done else None

    result = {
        "files": args.n, "sides": args.sides or "96-200", "records": records, "exit_code": proc.returncode,
        "generate_s": round(start - t0, 1), "scan_s": round(elapsed, 1),
        "images_per_s": round(records / elapsed, 2) if elapsed else None,
        "peak_rss_mb": round(max((r for _, r in samples), default=0.0), 1),
        "rss_mb_at": {"10%": at(0.1), "50%": at(0.5), "100%": at(0.999)},
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    if proc.returncode != 0:
        print(stderr, file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
