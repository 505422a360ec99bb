"""Data files shipped with the package (templates, fitted parameters, weights).

They live in ``ganscreen/models/`` (the repository's ``models/`` links there) so that an
installed wheel carries them. ``MANIFEST.json`` lists each file's SHA-256; a file that does
not match is refused rather than silently used.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

MODELS_DIR = Path(__file__).resolve().parent / "models"
MANIFEST = "MANIFEST.json"


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
        actual = sha256_file(path)
        if actual != expected:
            raise AssetError(
                f"model file {name!r} fails its checksum (sha256 {actual[:12]}…, expected "
                f"{expected[:12]}…): it was altered or corrupted; reinstall ganscreen"
            )
    return path


@cache
def load_json(name: str) -> dict[str, Any]:
    return json.loads(asset_path(name).read_text())


def bundle_digest() -> str:
    """One SHA-256 over the manifest, identifying the exact set of shipped model files."""
    return sha256_file(MODELS_DIR / MANIFEST)
