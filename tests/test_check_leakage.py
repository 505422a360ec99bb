"""scripts/check_leakage.py: one photo under two roles is found, even mirrored and resized."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import check_leakage  # noqa: E402

SAMPLES = ROOT / "samples"


def _picture(n: int) -> Image.Image:
    """The n-th of 8 distinct natural pictures: quarters of the two sample photos."""
    photo = Image.open(SAMPLES / ("astronaut.png" if n < 4 else "chelsea_no_face.jpg")).convert("RGB")
    w, h = photo.size
    x, y = (n % 4) % 2, (n % 4) // 2
    return photo.crop((x * w // 2, y * h // 2, (x + 1) * w // 2, (y + 1) * h // 2))


def _collection(root: Path, pictures: dict[str, Image.Image]) -> Path:
    for key, picture in pictures.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        picture.save(root / key)
    return root


def test_cross_role_copies_are_leaks_and_same_role_copies_are_not(tmp_path: Path) -> None:
    leaked, mirrored, kept, other = _picture(0), _picture(1), _picture(2), _picture(4)
    shared = _collection(tmp_path / "shared", {
        "real/headshotcls__a.jpg": leaked.resize((180, 180)),   # train: a smaller JPEG of an E photo
        "gan/sg3perc__b.png": ImageOps.mirror(mirrored),       # fit: a mirrored copy of an E photo
        "gan/headshotcls__c.png": kept,                        # train twice: a duplicate, not a leak
        "gan/hardfakevsreal__c.jpg": kept,
    })
    round3 = _collection(tmp_path / "round3", {
        "real/asiimov__a.png": leaked,
        "gan/tedigan__b.png": mirrored,
        "gan/kenton__d.png": other,
    })
    (round3 / "real" / "asiimov__broken.png").write_bytes(b"not an image")

    listed, counts, errors = check_leakage.leaks(check_leakage.images([shared, round3]), threshold=4)

    pairs = {frozenset((Path(p["a"]).name, Path(p["b"]).name)) for p in listed}
    assert pairs == {frozenset(("headshotcls__a.jpg", "asiimov__a.png")),
                     frozenset(("sg3perc__b.png", "tedigan__b.png"))}
    assert all(p["verified"] for p in listed)  # real copies pass the keypoint check
    assert counts == {"train/unseen": 1, "fit/unseen": 1, "train/train": 1}
    assert len(errors) == 1 and "asiimov__broken.png" in errors[0]


def test_distinct_pictures_give_no_pairs(tmp_path: Path) -> None:
    shared = _collection(tmp_path / "shared", {f"gan/headshotcls__{i}.png": _picture(i) for i in range(4)})
    round3 = _collection(tmp_path / "round3", {f"gan/tedigan__{i}.png": _picture(i) for i in range(4, 8)})
    listed, counts, _ = check_leakage.leaks(check_leakage.images([shared, round3]), threshold=4)
    assert listed == [] and not counts


def test_a_hash_candidate_that_is_not_a_copy_is_not_a_leak(tmp_path: Path) -> None:
    picture = _picture(0)
    pixels = np.asarray(picture).copy()
    # the same coarse layout (so the perceptual hash is close) but other fine detail
    rng = np.random.default_rng(0)
    noisy = np.clip(pixels.astype(int) + rng.integers(-60, 61, pixels.shape), 0, 255).astype(np.uint8)
    shared = _collection(tmp_path / "shared", {"gan/headshotcls__x.png": picture})
    round3 = _collection(tmp_path / "round3", {"gan/tedigan__x.png": Image.fromarray(noisy).filter(ImageFilter.GaussianBlur(4))})
    listed, _, _ = check_leakage.leaks(check_leakage.images([shared, round3]), threshold=8)
    assert len(listed) == 1 and not listed[0]["verified"]
