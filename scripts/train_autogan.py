"""AutoGAN-style synthetic positives: real faces passed through an upsampling autoencoder.

    python scripts/train_autogan.py --cache scratch/cnn_cache --out scratch/autogan

Zhang, Karaman and Chang (2019) showed that a detector can learn the traces GAN upsampling
leaves without seeing any GAN: train an autoencoder whose decoder upsamples the way GAN
generators do (transposed convolutions), pass real photos through it, and call the output
fake. Here the autoencoder trains on native-resolution patches of the training reals cached
by ``scripts/train_cnn.py`` (never on its held-out sources), then reconstructs whole face
regions, which are written as ``gan/autogan__<source>__<name>.png`` with a ``SOURCES.tsv``
(generator ``autogan``) so that ``train_cnn.py --data`` can take the folder like any other.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT  # noqa: E402


class UpsamplingAutoencoder(nn.Module):
    """Two stride-2 convolutions down, two transposed convolutions up (GAN-style decoder)."""

    def __init__(self, width: int = 48) -> None:
        super().__init__()
        self.encode = nn.Sequential(
            nn.Conv2d(3, width, 3, 1, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
        )
        self.decode = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(width, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 3, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def real_regions(cache: Path, exclude: set[str]) -> list[tuple[str, Path]]:
    index = json.loads((cache / "index.json").read_text())
    out = []
    for key, entry in sorted(index.items()):
        if not key.startswith("real/") or entry.get("file") is None:
            continue
        source = key.split("/", 1)[1].split("__", 1)[0]
        if f"real/{source}" in exclude:
            continue
        out.append((key, cache / entry["file"]))
    return out


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)


def train(model: nn.Module, regions: list[np.ndarray], *, steps: int, batch: int, patch: int,
          rng: np.random.Generator) -> list[float]:
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    model.train()
    for step in range(steps):
        xs = []
        for _ in range(batch):
            r = regions[int(rng.integers(len(regions)))]
            h, w = r.shape[:2]
            if h < patch or w < patch:
                continue
            y, x = int(rng.integers(h - patch + 1)), int(rng.integers(w - patch + 1))
            xs.append(to_tensor(r[y:y + patch, x:x + patch]))
        if not xs:
            continue
        x = torch.stack(xs)
        loss = nn.functional.l1_loss(model(x), x)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss))
        if step % 100 == 0:
            print(f"step {step} l1 {np.mean(losses[-100:]):.4f}", file=sys.stderr)
    return losses


@torch.inference_mode()
def reconstruct(model: nn.Module, rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    h4, w4 = h - h % 4, w - w % 4
    x = to_tensor(rgb[:h4, :w4])[None]
    y = model(x)[0].permute(1, 2, 0).numpy()
    return np.clip((y + 1.0) * 127.5, 0, 255).round().astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=ROOT / "scratch" / "cnn_cache",
                    help="face-region cache written by train_cnn.py")
    ap.add_argument("--out", type=Path, default=ROOT / "scratch" / "autogan")
    ap.add_argument("--exclude", nargs="*", default=[], help="real sources never used (the CNN's hold-out)")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--max-images", type=int, default=1500, help="reconstructed positives to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    entries = real_regions(args.cache, set(args.exclude))
    regions = [np.asarray(Image.open(p).convert("RGB")) for _, p in entries]
    print(f"{len(regions)} real regions", file=sys.stderr)
    model = UpsamplingAutoencoder()
    start = time.time()
    losses = train(model, regions, steps=args.steps, batch=args.batch, patch=args.patch, rng=rng)
    (args.out / "gan").mkdir(parents=True, exist_ok=True)
    chosen = sorted(rng.choice(len(entries), size=min(args.max_images, len(entries)), replace=False).tolist())
    rows = ["file\tlabel\tgenerator\trepo\tcommit\toriginal_path\tlicense_if_stated"]
    # The reconstructions keep their region's geometry, so they join the face cache directly
    # with the real region's landmarks (no second face detection).
    index_path = args.cache / "index.json"
    index = json.loads(index_path.read_text())
    for i in chosen:
        key, _ = entries[i]
        name = "autogan__" + key.split("/", 1)[1].rsplit(".", 1)[0] + ".png"
        fake = Image.fromarray(reconstruct(model, regions[i]))
        fake.save(args.out / "gan" / name)
        fake.save(args.cache / f"gan__{name}")
        index[f"gan/{name}"] = {"file": f"gan__{name}", "landmarks": index[key]["landmarks"]}
        rows.append(f"gan/{name}\tgan\tautogan\t(made by scripts/train_autogan.py)\t\t{key}\tas its real source")
    index_path.write_text(json.dumps(index))
    (args.out / "SOURCES.tsv").write_text("\n".join(rows) + "\n")
    summary = {"steps": args.steps, "final_l1": round(float(np.mean(losses[-100:])), 4),
               "minutes": round((time.time() - start) / 60, 2), "written": len(chosen),
               "exclude": args.exclude, "seed": args.seed}
    (args.out / "autogan.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
