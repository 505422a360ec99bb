"""scripts/evaluate.py: a file's re-crop depends on the file alone, not on the rest of the set."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
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


def test_generator_family_is_the_first_word_of_the_generator() -> None:
    assert evaluate.generator_family("stylegan2-ada-ffhq") == "stylegan2"
    assert evaluate.generator_family("diffusion-sd21") == "diffusion"
    assert evaluate.generator_family("StyleGAN3") == "stylegan3"
    assert evaluate.generator_family("") == "unknown"


def _row(key: str, label: int, source: str, generator: str, fused: float, aligned: bool = False) -> dict:
    return {"key": key, "label": label, "source": source, "aligned": aligned, "generator": generator,
            "status": "ok", "verdict": "gan" if fused > 0.5 else "real", "scores": {"fused": fused}}


def test_table_has_a_row_per_generator_family_counting_only_its_faces() -> None:
    rows = [_row("gan/a__1.png", 1, "gan/a", "stylegan2-ffhq", 0.9),
            _row("gan/a__2.png", 1, "gan/a", "stylegan2-ada-custom", 0.2),
            _row("gan/b__1.png", 1, "gan/b", "diffusion-sd21", 0.8),
            _row("real/r__1.png", 0, "real/r", "real-misc", 0.3),
            _row("real/r__2.png", 0, "real/r", "real-misc", 0.1)]
    table = {(e["gan"], e["vs"]): e for e in evaluate.metrics(rows)["table"]}
    assert [g for g, vs in table if vs == "ordinary"] == ["all GAN", "family diffusion", "family stylegan2",
                                                          "gan/a", "gan/b"]
    assert table[("family stylegan2", "ordinary")]["n_gan"] == 2
    assert table[("family diffusion", "ordinary")]["fused"]["auc"] == 1.0  # 0.8 above both reals
    assert table[("family stylegan2", "ordinary")]["fused"]["auc"] == 0.75  # 0.9 above both reals, 0.2 above one
    # One family only: no family rows.
    one = [r for r in rows if r["source"] != "gan/b"]
    assert all(not e["gan"].startswith("family ") for e in evaluate.metrics(one)["table"])


def test_tables_from_stored_records_equal_the_tables_of_the_scan(tmp_path: Path) -> None:
    items = _items(tmp_path, ["a"])
    records = [{"key": "gan/a.png", "variant": "as_found", "score": 0.7, "status": "ok", "verdict": "gan",
                "checks": {"cnn": {"score": 0.6}}},
               {"key": "gan/gone.png", "variant": "as_found", "score": 0.1, "status": "ok", "verdict": "real",
                "checks": {}}]
    rows = evaluate.rows_from_records(records, items)
    assert list(rows) == ["as_found"]
    assert rows["as_found"] == [{"key": "gan/a.png", "label": 1, "source": "gan/x", "aligned": False,
                                 "generator": "", "status": "ok", "verdict": "gan",
                                 "scores": {"fused": 0.7, "cnn": 0.6}}]
    # A file of the set with no record in a variant stops it: the table would silently shrink.
    items += _items(tmp_path, ["b"])
    with pytest.raises(SystemExit, match="1 of 2 files have no record"):
        evaluate.rows_from_records(records, items)


def test_a_file_unreadable_when_its_variant_is_made_is_an_error_not_the_original(tmp_path: Path) -> None:
    items = _items(tmp_path, ["a", "b"])
    items[1].path.write_bytes(b"not an image")  # readable once, broken when the variant is made
    out = tmp_path / "variants"
    out.mkdir()
    pairs = dict((item.key, path) for item, path in evaluate.variant_files(items, "recropped", out))
    assert pairs["gan/a.png"].parent == out and pairs["gan/a.png"].stat().st_size > 0
    assert pairs["gan/b.png"] != items[1].path and pairs["gan/b.png"].stat().st_size == 0
    from ganscreen import Screener

    rows = evaluate.screen(items, "recropped", Screener(device="cpu", workers=1, torch_threads=1))
    assert [r["status"] for r in rows] == ["no_face", "error"]
