"""scripts/evaluate.py: a file's re-crop depends on the file alone, not on the rest of the set."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import evaluate  # noqa: E402


def _items(tmp_path: Path, names: list[str]) -> list[evaluate.Item]:
    rng = np.random.default_rng(0)
    items = []
    for name in names:
        path = tmp_path / f"{name}.png"
        Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(path)
        items.append(evaluate.Item(path, f"gan/{name}.png", 1, "gan/x", False))
    return items


def _recrops(items: list[evaluate.Item], folder: Path) -> dict[str, bytes]:
    folder.mkdir()
    return {item.key: np.asarray(Image.open(p)).tobytes()
            for item, p in evaluate.variant_files(items, "recropped", folder)}


def test_recrop_of_a_file_does_not_change_when_another_leaves_the_set(tmp_path: Path) -> None:
    items = _items(tmp_path, ["a", "b", "c"])
    whole = _recrops(items, tmp_path / "whole")
    without_a = _recrops(items[1:], tmp_path / "without_a")
    assert without_a == {k: v for k, v in whole.items() if k != "gan/a.png"}
    # and the draws differ between files (not one crop for all)
    boxes = {tuple(evaluate.file_rng(k).uniform(0.70, 0.95, 2)) for k in whole}
    assert len(boxes) == 3
    first = np.asarray(Image.open(items[0].path)).tobytes()
    assert whole["gan/a.png"] != first  # it is a re-crop, not the file


def test_records_name_each_file_and_variant_and_match_the_scores(tmp_path: Path) -> None:
    from ganscreen import Screener

    items = _items(tmp_path, ["a", "b"])
    face = tmp_path / "face.png"
    face.write_bytes((ROOT / "samples" / "astronaut.png").read_bytes())
    items.append(evaluate.Item(face, "real/face.png", 0, "real/y", False))
    screener = Screener(device="cpu", workers=1, torch_threads=1)
    records: list[dict] = []
    rows = evaluate.screen(items, "recropped", screener, seed=0, records=records)
    assert [r["key"] for r in records] == [r["key"] for r in rows] == [i.key for i in items]
    assert all(r["variant"] == "recropped" for r in records)
    # Each record is the scan record of the variant, filed under the item's own file.
    assert [r["path"] for r in records] == [str(i.path) for i in items]
    for rec, row in zip(records, rows, strict=True):
        assert rec["score"] == row["scores"]["fused"] and rec["verdict"] == row["verdict"]
    judged = records[-1]
    assert judged["status"] == "ok" and judged["checks"]["cnn"]["score"] == rows[-1]["scores"]["cnn"]
