#!/usr/bin/env python3
"""Lay out the leave-sources-out protocol's folders from the built collections.

Developer script, never used by ganscreen at run time. The model card (Data: Round 3) gives
every source one role; this script makes the folders the card's commands name, each with
``gan/``, ``real/`` (both always present, perhaps empty) and a ``SOURCES.tsv`` holding the
rows of its files:

| folder | card's name | what |
|---|---|---|
| ``unseen`` | ``UNSEEN`` (``E``) | the 22 sources of ``_common.UNSEEN_SOURCES``: the evaluation table only |
| ``unseen2`` | ``UNSEEN2`` (``E2``) | round 4's sources (``_common.UNSEEN2_SOURCES``): the evaluation table only |
| ``fit`` | ``FIT`` (``F``) | the sources of ``_common.FIT_SOURCES`` from every collection |
| ``round3-fit`` | ``R3FIT`` | the ``F`` sources of round 3 alone (``train_cnn.py`` reads the shared ones itself) |
| ``ailab140k`` | ``AILAB140K`` | the 140k set's StyleGAN1 fakes and FFHQ photos (round-3 training) |
| ``utkface`` | ``UTK`` | UTKFace's tight crops (flag rates on low-quality real photos) |

With ``--exclude-leaks LEAKS.json`` (written by ``check_leakage.py --json``), the held-out
side of every verified leak is left out: a copy of a training or `F` image is not an unseen
image (nor is a copy of a training image an `F` one), so it stays out of ``unseen``
(``fit``); the training side keeps its copy.

Files are hard links into the collections (copies where the file system refuses a link), so
the folders cost no space. A source that no role names is an error: a new source must be
given a role in ``_common.py`` before anything is laid out, so it cannot slip into a
folder unnoticed.

Example (after ``build_collection.py --out /work/data/round3``):
    python scripts/make_splits.py --collections ../shared/data/faces /work/data/round3 --out /work/data
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    DEFAULT_DATA,
    FIT_SOURCES,
    ROUND3_TRAIN_SOURCES,
    UNSEEN2_SOURCES,
    UNSEEN_SOURCES,
    source_of,
)

LABELS = ("gan", "real")
HELD_OUT_ORDER = {"unseen2": 3, "unseen": 2, "fit": 1, "train": 0}  # the more held-out side of a leak is dropped


def folder_sources(collection: Path, shared: bool) -> dict[str, frozenset[str]]:
    """The folders to make and, for each, the sources it takes from ``collection``.

    ``shared`` is the round-2 collection (``../shared/data/faces``): every source of it that
    is not an ``F`` source is a training source, so only ``fit`` takes from it."""
    fit = frozenset(FIT_SOURCES)
    if shared:
        return {"fit": fit}
    return {
        "unseen": frozenset(UNSEEN_SOURCES),
        "unseen2": frozenset(UNSEEN2_SOURCES),
        "fit": fit,
        "round3-fit": fit,
        "ailab140k": frozenset({"gan/ailab140k", "real/ailab140k"}),
        "utkface": frozenset({"real/utkface"}),
    }


def unassigned(keys: list[str], shared: bool) -> Counter[str]:
    """Files per source of a round-3-style collection that no role names."""
    if shared:
        return Counter()
    known = set(FIT_SOURCES) | set(UNSEEN_SOURCES) | set(UNSEEN2_SOURCES) | ROUND3_TRAIN_SOURCES
    return Counter(source_of(k) for k in keys if source_of(k) not in known)


def leaked_keys(leaks_json: Path) -> frozenset[tuple[str, str]]:
    """(folder name, 'label/file') of the held-out side of each verified leak."""
    data = json.loads(leaks_json.read_text(encoding="utf-8"))
    out: set[tuple[str, str]] = set()
    for leak in data["leaks"]:
        sides = [(leak["a_role"], leak["a"]), (leak["b_role"], leak["b"])]
        role, path = max(sides, key=lambda side: HELD_OUT_ORDER[side[0]])
        out.add((role, "/".join(Path(path).parts[-2:])))
    return frozenset(out)


def read_table(collection: Path) -> tuple[list[str], list[list[str]]]:
    with (collection / "SOURCES.tsv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[0], rows[1:]


def link(src: Path, dst: Path) -> None:
    if dst.exists():
        if os.path.samefile(src, dst):
            return
        raise SystemExit(f"error: {dst} exists and is not {src}; use an empty --out")
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def lay_out(collections: list[Path], shared_dir: Path, out: Path,
            exclude: frozenset[tuple[str, str]] = frozenset()) -> dict[str, Counter[str]]:
    """Make every folder under ``out``, leaving out the (role, 'label/file') of ``exclude``
    (``unseen`` and ``fit``: ``round3-fit`` is a part of ``fit``); return the files per label
    written to each."""
    header: list[str] | None = None
    picked: dict[str, list[tuple[Path, list[str]]]] = {}
    missing: Counter[str] = Counter()
    for collection in collections:
        shared = collection.resolve() == shared_dir.resolve()
        head, rows = read_table(collection)
        if header is None:
            header = head
        elif head != header:
            raise SystemExit(f"error: {collection}/SOURCES.tsv has other columns than the first collection")
        present = [r[0] for r in rows if (collection / r[0]).is_file()]
        missing.update(unassigned(present, shared))
        by_key = {r[0]: r for r in rows}
        for name, sources in folder_sources(collection, shared).items():
            role = "fit" if name == "round3-fit" else name
            chosen = [k for k in present if source_of(k) in sources and (role, k) not in exclude]
            picked.setdefault(name, []).extend((collection, by_key[k]) for k in chosen)
    if missing:
        listed = ", ".join(f"{s} ({n})" for s, n in sorted(missing.items()))
        raise SystemExit(f"error: sources without a role in _common.py: {listed}")
    assert header is not None
    counts: dict[str, Counter[str]] = {}
    for name, items in picked.items():
        folder = out / name
        for label in LABELS:
            (folder / label).mkdir(parents=True, exist_ok=True)
        for collection, row in items:
            link(collection / row[0], folder / row[0])
        with (folder / "SOURCES.tsv").open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE, escapechar="\\")
            writer.writerow(header)
            writer.writerows(row for _, row in items)
        counts[name] = Counter(row[0].split("/", 1)[0] for _, row in items)
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--collections", type=Path, nargs="+", required=True,
                    help="built collections (the shared one and round 3's), each with SOURCES.tsv")
    ap.add_argument("--shared", type=Path, default=DEFAULT_DATA,
                    help="which of them is the round-2 collection (default: ../shared/data/faces)")
    ap.add_argument("--out", type=Path, required=True, help="folder to lay the role folders out in")
    ap.add_argument("--exclude-leaks", type=Path, metavar="LEAKS_JSON",
                    help="check_leakage.py --json output: leave the held-out side of each leak out")
    args = ap.parse_args(argv)
    for collection in args.collections:
        if not (collection / "SOURCES.tsv").is_file():
            ap.error(f"{collection} has no SOURCES.tsv")
    exclude = leaked_keys(args.exclude_leaks) if args.exclude_leaks else frozenset()
    counts = lay_out(args.collections, args.shared, args.out, exclude)
    if exclude:
        print(f"left out {len(exclude)} held-out copies of other roles' images ({args.exclude_leaks})")
    for name, c in counts.items():
        print(f"{args.out / name}: {c['gan']} gan, {c['real']} real")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
