from __future__ import annotations

import shutil

import pytest

from ganscreen import _assets


@pytest.fixture()
def models_copy(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    copy = tmp_path / "models"
    shutil.copytree(_assets.MODELS_DIR, copy)
    monkeypatch.setattr(_assets, "MODELS_DIR", copy)
    _assets.manifest.cache_clear()
    _assets.load_json.cache_clear()
    yield copy
    _assets.manifest.cache_clear()
    _assets.load_json.cache_clear()


def test_every_shipped_file_matches_its_manifest_entry() -> None:
    names = _assets.manifest()
    assert {"ffhq_template.json", "checks.json", "fusion.json"} <= set(names)
    for name in names:
        _assets.asset_path(name)  # raises on a mismatch


def test_altered_file_is_refused_with_a_clear_message(models_copy) -> None:  # noqa: ANN001
    path = models_copy / "fusion.json"
    path.write_text(path.read_text().replace('"bias"', '"bias" ', 1))
    with pytest.raises(_assets.AssetError, match="fails its checksum"):
        _assets.load_json("fusion.json")


def test_missing_file_is_refused(models_copy) -> None:  # noqa: ANN001
    (models_copy / "checks.json").unlink()
    with pytest.raises(_assets.AssetError, match="missing"):
        _assets.asset_path("checks.json")


def test_unlisted_file_is_refused(models_copy) -> None:  # noqa: ANN001
    (models_copy / "extra.json").write_text("{}")
    with pytest.raises(_assets.AssetError, match="not listed"):
        _assets.asset_path("extra.json")
