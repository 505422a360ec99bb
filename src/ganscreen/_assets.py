"""Data files shipped with the package (templates, fitted parameters, weights).

They live in ``ganscreen/models/`` (the repository's ``models/`` links there) so that an
installed wheel carries them. ``MANIFEST.json`` lists each file's SHA-256; a file that does
not match is refused rather than silently used.

MTCNN's weights are not ours: they ship inside the facenet-pytorch wheel this package pins.
Their digests, taken from that wheel's RECORD, are pinned here (:data:`MTCNN_WEIGHTS`) and
checked before the detector loads them, since zeroed or altered weights would silently turn
every photo into ``no_face``. :func:`verify_all` checks every shipped file at start-up.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

MODELS_DIR = Path(__file__).resolve().parent / "models"
MANIFEST = "MANIFEST.json"
# facenet-pytorch 2.5.3 (pinned in pyproject.toml): facenet_pytorch/data/*.pt, from the wheel's RECORD.
MTCNN_VERSION = "2.5.3"
MTCNN_WEIGHTS = {
    "pnet.pt": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    "rnet.pt": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    "onet.pt": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
}


class AssetError(RuntimeError):
    """A shipped data file is missing or does not match its recorded checksum."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@cache
def manifest() -> dict[str, str]:
    path = MODELS_DIR / MANIFEST
    if not path.exists():
        raise AssetError(f"{path} is missing: the package's model files are incomplete")
    return dict(json.loads(path.read_text())["files"])


def asset_path(name: str, *, verify: bool = True) -> Path:
    """Path of a shipped file, checked against the manifest."""
    path = MODELS_DIR / name
    if not path.exists():
        raise AssetError(f"model file {name!r} is missing from {MODELS_DIR}")
    if verify:
        expected = manifest().get(name)
        if expected is None:
            raise AssetError(f"model file {name!r} is not listed in {MANIFEST}")
        _check_digest(path, expected, what=f"model file {name!r}", remedy="reinstall ganscreen")
    return path


def _check_digest(path: Path, expected: str, *, what: str, remedy: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise AssetError(f"{what} fails its checksum (sha256 {actual[:12]}…, expected {expected[:12]}…): "
                         f"it was altered or corrupted; {remedy}")


@cache
def load_json(name: str) -> dict[str, Any]:
    return json.loads(asset_path(name).read_text())


def bundle_digest() -> str:
    """One SHA-256 over the manifest, identifying the exact set of shipped model files."""
    return sha256_file(MODELS_DIR / MANIFEST)


def mtcnn_dir() -> Path:
    """Where the installed facenet-pytorch keeps MTCNN's weights (found without importing it)."""
    from importlib.util import find_spec

    spec = find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise AssetError("facenet-pytorch is not installed: MTCNN's weights are missing")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@cache
def verify_mtcnn(folder: Path | None = None) -> None:
    """Check MTCNN's weight files against :data:`MTCNN_WEIGHTS`; raises :class:`AssetError`."""
    folder = mtcnn_dir() if folder is None else folder
    for name, expected in MTCNN_WEIGHTS.items():
        path = folder / name
        if not path.is_file():
            raise AssetError(f"MTCNN weight file {path} is missing: reinstall facenet-pytorch=={MTCNN_VERSION}")
        _check_digest(path, expected, what=f"MTCNN weight file {path}",
                      remedy=f"reinstall facenet-pytorch=={MTCNN_VERSION}")


@cache
def verify_all() -> None:
    """Check every shipped model file and MTCNN's weights; raises :class:`AssetError`."""
    for name in manifest():
        asset_path(name)
    verify_mtcnn()
