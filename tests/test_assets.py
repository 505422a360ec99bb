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


@pytest.fixture()
def mtcnn_copy(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    copy = tmp_path / "mtcnn"
    shutil.copytree(_assets.mtcnn_dir(), copy)
    monkeypatch.setattr(_assets, "mtcnn_dir", lambda: copy)
    _assets.verify_mtcnn.cache_clear()
    _assets.verify_all.cache_clear()
    yield copy
    _assets.verify_mtcnn.cache_clear()
    _assets.verify_all.cache_clear()


def test_installed_mtcnn_weights_match_the_pinned_wheel_digests() -> None:
    assert set(_assets.MTCNN_WEIGHTS) == {"pnet.pt", "rnet.pt", "onet.pt"}
    for name, digest in _assets.MTCNN_WEIGHTS.items():
        assert _assets.sha256_file(_assets.mtcnn_dir() / name) == digest


def test_zeroed_mtcnn_weights_are_refused(mtcnn_copy) -> None:  # noqa: ANN001
    path = mtcnn_copy / "onet.pt"
    path.write_bytes(b"\0" * path.stat().st_size)
    with pytest.raises(_assets.AssetError, match="onet.pt fails its checksum"):
        _assets.verify_all()


def test_missing_mtcnn_weights_are_refused(mtcnn_copy) -> None:  # noqa: ANN001
    (mtcnn_copy / "pnet.pt").unlink()
    with pytest.raises(_assets.AssetError, match="pnet.pt is missing"):
        _assets.verify_mtcnn()


@pytest.mark.parametrize("which", ["mtcnn", "cnn"])
def test_cli_refuses_altered_weights_in_one_line_with_exit_2(which, mtcnn_copy, models_copy,  # noqa: ANN001
                                                             samples) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from ganscreen.cli import app

    path = mtcnn_copy / "pnet.pt" if which == "mtcnn" else models_copy / "cnn.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    path.write_bytes(bytes(data))
    result = CliRunner().invoke(app, ["scan", str(samples / "astronaut.png"), "--device", "cpu",
                                      "--no-progress"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "fails its checksum" in lines[0] and "Traceback" not in result.stderr
    assert result.stdout == ""
