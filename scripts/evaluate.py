"""The evaluation table: unseen sources × {as found, re-cropped, degraded} × {vs ordinary reals,
vs aligned reals}, for the fused score and each check alone.

    python scripts/evaluate.py --data ../shared/data/faces /work/data/round3 --heldout \\
        --json docs/evaluation.json --markdown docs/evaluation.md

Folders hold ``real/`` and ``gan/`` (and a ``SOURCES.tsv``); a file's source is the part of
its name before ``__`` (``gan/sg3perc__x.png`` → ``gan/sg3perc``). ``--heldout`` keeps only
the sources the shipped CNN never trained on (all but ``cnn.json``'s ``train_sources``),
``--include`` names sources explicitly. Every image is screened three ways:

* **as found**: the file itself;
* **re-cropped**: a random crop keeping 70–95 % of each side at a random offset, resized back
  to the original size (what removes the StyleGAN alignment); each file's draws are seeded by
  its name (`file_rng`), so they do not change when the set does;
* **degraded**: longer side 256 px, JPEG quality 60 (what platforms do to profile photos).

Reals are split into **ordinary** photos and **aligned** ones (FFHQ/CelebA-HQ-aligned dataset
photos, by their generator in SOURCES.tsv); every GAN source is measured against each.
AUC and TPR at FPR 1 % and 0.5 % (thresholds from that set's reals); a check that cannot
judge an image scores it 0 for its own row. Verdict shares per source use the shipped
thresholds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA, is_aligned_real, read_sources, roc_metrics, table  # noqa: E402
from ganscreen import Screener  # noqa: E402
from ganscreen._assets import load_json  # noqa: E402
from ganscreen._records import outcome, read_records  # noqa: E402
from ganscreen.images import ImageLoadError, InputFile, load_image  # noqa: E402
from ganscreen.pipeline import platform_copy  # noqa: E402

SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
VARIANTS = ("as_found", "recropped", "degraded")


class Item:
    __slots__ = ("path", "key", "label", "source", "aligned", "generator")

    def __init__(self, path: Path, key: str, label: int, source: str, aligned: bool, generator: str = "") -> None:
        self.path, self.key, self.label, self.source, self.aligned = path, key, label, source, aligned
        self.generator = generator


def generator_family(generator: str) -> str:
    """A generator's family, the first word of its SOURCES.tsv name: ``stylegan2-ada-ffhq`` →
    ``stylegan2``, ``diffusion-sd21`` → ``diffusion``; ``unknown`` when none is named."""
    return generator.strip().lower().split("-", 1)[0] or "unknown"


def list_items(roots: list[Path], include: set[str] | None) -> list[Item]:
    out = []
    for root in roots:
        sources = read_sources(root)
        for label_name, label in (("real", 0), ("gan", 1)):
            folder = root / label_name
            if not folder.is_dir():
                continue
            for path in sorted(folder.rglob("*")):
                if not path.is_file() or path.suffix.lower() not in SUFFIXES:
                    continue
                rel = path.relative_to(folder)
                prefix = rel.parts[0] if len(rel.parts) > 1 else rel.name.split("__", 1)[0]
                source = f"{label_name}/{prefix}"
                key = f"{label_name}/{rel.as_posix()}"
                if include is not None and source not in include:
                    continue
                aligned = is_aligned_real(key, sources)
                out.append(Item(path, key, label, source, aligned, sources.get(key, {}).get("generator", "")))
    return out


def recrop(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    kw, kh = rng.uniform(0.70, 0.95), rng.uniform(0.70, 0.95)
    cw, ch = max(8, round(w * kw)), max(8, round(h * kh))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return img.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.Resampling.LANCZOS)


def file_rng(key: str, seed: int = 0) -> np.random.Generator:
    """The random draws of one file's variant: a function of its 'label/file' key alone, so a
    file's re-crop does not change when other files join or leave the set."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big"))


def variant_files(items: list[Item], variant: str, folder: Path, seed: int = 0) -> Iterator[tuple[Item, Path]]:
    for item in items:
        if variant == "as_found":
            yield item, item.path
            continue
        suffix = ".png" if variant == "recropped" else ".jpg"
        target = folder / (item.key.replace("/", "__") + suffix)
        try:
            img = load_image(item.path).pil()
        except ImageLoadError:
            # An empty variant file: the scan records an error for this variant. Never the
            # file itself, which would put as-found scores under another variant's name.
            target.write_bytes(b"")
            yield item, target
            continue
        if variant == "recropped":
            recrop(img, file_rng(item.key, seed)).save(target)
        else:
            target.write_bytes(platform_copy(img, 256, 60))
        yield item, target


def screen(items: list[Item], variant: str, screener: Screener, seed: int = 0,
           records: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Each item's scores in ``variant``; ``records``, when given, also receives each file's
    whole scan record (its ``path`` the item's own file) with its key, label, source, stratum
    and variant."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        pairs = list(variant_files(items, variant, Path(tmp), seed))
        by_path = {str(p): it for it, p in pairs}
        for report in screener.scan_inputs(InputFile(p) for _, p in pairs):
            item = by_path[str(report.path)]
            rec = report.to_record()
            rows.append(_row(rec, item))
            if records is not None:
                records.append({**rec, "path": str(item.path), "key": item.key, "label": item.label,
                                "source": item.source, "aligned": item.aligned, "variant": variant})
    return rows


def _row(rec: dict[str, Any], item: Item) -> dict[str, Any]:
    """What the table needs of one scan record of ``item``."""
    scores = {"fused": rec["score"]}
    scores.update({n: c.get("score") for n, c in rec["checks"].items()})
    return {"key": item.key, "label": item.label, "source": item.source, "aligned": item.aligned,
            "generator": item.generator, "status": rec["status"], "verdict": rec["verdict"], "scores": scores}


def rows_from_records(records: list[dict[str, Any]], items: list[Item]) -> dict[str, list[dict[str, Any]]]:
    """The rows :func:`screen` gave, per variant, rebuilt from the records ``--records`` wrote,
    for the files of ``items`` (so the set, strata and generators are today's); a record of a
    file not in ``items`` is left out, and a file without a record in a variant is an error."""
    by_key = {item.key: item for item in items}
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        item = by_key.get(rec.get("key", ""))
        if item is not None:
            out.setdefault(rec["variant"], []).append(_row(rec, item))
    for variant, rows in out.items():
        missing = len(by_key) - len({r["key"] for r in rows})
        if missing:
            raise SystemExit(f"{variant}: {missing} of {len(by_key)} files have no record")
    return out


def metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    names = ["fused", *sorted({n for r in rows for n in r["scores"] if n != "fused"})]
    y = np.array([r["label"] for r in rows])
    aligned = np.array([r["aligned"] for r in rows])
    sources = np.array([r["source"] for r in rows])
    negatives = {"ordinary": (y == 0) & ~aligned, "aligned": (y == 0) & aligned}
    families = np.array([generator_family(r.get("generator", "")) if r["label"] == 1 else "" for r in rows])
    gan_families = sorted(set(families[y == 1]))
    # All GAN faces, then each generator family (when there are several), then each source.
    gan_sources = ["all GAN", *(f"family {f}" for f in (gan_families if len(gan_families) > 1 else [])),
                   *sorted({s for s in sources if s.startswith("gan/")})]
    out: dict[str, Any] = {"n": len(rows), "status": dict(Counter(r["status"] for r in rows)), "table": []}
    for neg_name, neg in negatives.items():
        if not neg.any():
            continue
        for gan in gan_sources:
            if gan == "all GAN":
                pos = y == 1
            elif gan.startswith("family "):
                pos = (y == 1) & (families == gan.removeprefix("family "))
            else:
                pos = sources == gan
            sel = pos | neg
            entry: dict[str, Any] = {"gan": gan, "vs": neg_name, "n_gan": int(pos.sum()), "n_real": int(neg.sum())}
            for name in names:
                s = np.array([r["scores"].get(name) or 0.0 for r in rows])
                entry[name] = roc_metrics(y[sel], s[sel])
            out["table"].append(entry)
    verdicts: dict[str, dict[str, float]] = {}
    for src in sorted(set(sources)):
        m = sources == src
        counts = Counter(outcome(rows[i]["status"], rows[i]["verdict"]) for i in np.flatnonzero(m))
        verdicts[src] = {k: round(v / int(m.sum()), 3) for k, v in sorted(counts.items())}
    out["verdicts"] = verdicts
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = []
    for variant, result in results["variants"].items():
        names = [n for n in result["table"][0] if isinstance(result["table"][0][n], dict)] if result["table"] else []
        lines.append(f"\n### {variant.replace('_', ' ')} ({result['n']} images, {result['status']})\n")
        rows = []
        for entry in result["table"]:
            row = {"GAN": entry["gan"], "vs reals": f"{entry['vs']} ({entry['n_real']})", "n GAN": entry["n_gan"]}
            for name in names:
                m = entry[name]
                row[name] = (f"{m.get('auc', float('nan')):.3f} / {100 * m.get('tpr_at_fpr_0.01', 0):.0f} % / "
                             f"{100 * m.get('tpr_at_fpr_0.005', 0):.0f} %")
            rows.append(row)
        lines.append(table(rows, ["GAN", "vs reals", "n GAN", *names]))
        vrows = [{"source": s, **{k: f"{100 * v:.0f} %" for k, v in d.items()}} for s, d in result["verdicts"].items()]
        cols = sorted({k for d in result["verdicts"].values() for k in d})
        lines.append("verdicts per source:\n\n" + table(vrows, ["source", *cols]))
    return ("cells: AUC / TPR at 1 % FPR / TPR at 0.5 % FPR\n" + "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, nargs="+", default=[DEFAULT_DATA])
    ap.add_argument("--include", nargs="*", default=None, help="only these sources ('gan/x', 'real/y')")
    ap.add_argument("--heldout", action="store_true",
                    help="only sources the shipped CNN never trained on (not in cnn.json's train_sources)")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--recrop-seed", type=int, default=0,
                    help="seed of the re-crops (with each file's name; default 0): other seeds measure their spread")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--markdown", type=Path, default=None)
    ap.add_argument("--records", type=Path, default=None,
                    help="also write every file's scan record per variant (JSON Lines), to inspect or refit on")
    ap.add_argument("--from-records", type=Path, default=None, metavar="RECORDS",
                    help="make the tables from the records an earlier --records run wrote, without screening")
    args = ap.parse_args()

    include = set(args.include) if args.include is not None else None
    items = list_items(args.data, include)
    if args.heldout:  # every source the shipped CNN did not train on
        trained = set(load_json("cnn.json").get("train_sources", []))
        items = [i for i in items if i.source not in trained]
    if not items:
        raise SystemExit("no images found")
    fusion = load_json("fusion.json")
    results: dict[str, Any] = {"thresholds": fusion["thresholds"], "fusion": fusion["version"],
                               "sources": sorted({i.source for i in items}), "variants": {}}
    if args.recrop_seed:  # absent: seed 0
        results["recrop_seed"] = args.recrop_seed
    if args.from_records:
        read = read_records(args.from_records, accept=lambda v: isinstance(v, dict) and "variant" in v)
        stored = rows_from_records(read.records, items)
        for variant in args.variants:
            if variant in stored:
                results["variants"][variant] = metrics(stored[variant])
        _write(results, args)
        return
    screener = Screener(device=args.device, workers=args.workers, torch_threads="auto")
    if args.records:
        args.records.write_text("", encoding="utf-8")
    for variant in args.variants:
        records: list[dict[str, Any]] | None = [] if args.records else None
        results["variants"][variant] = metrics(screen(items, variant, screener, args.recrop_seed, records))
        print(f"{variant}: done", file=sys.stderr)
        if args.records and records:  # after each variant: a stopped run keeps what it finished
            with args.records.open("a", encoding="utf-8") as out:
                out.writelines(json.dumps(r) + "\n" for r in records)
    _write(results, args)


def _write(results: dict[str, Any], args: argparse.Namespace) -> None:
    text = markdown(results)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
