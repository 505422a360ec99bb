"""Make samples/: images this project may redistribute, each showing one behaviour.

Sources: scikit-image's public-domain astronaut photo (Eileen Collins, NASA) and its CC0
photo of Chelsea the cat; everything else is synthesised from them here.

    pip install scikit-image   # only needed to regenerate the samples
    python scripts/make_samples.py
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ganscreen.faces import FaceDetector, ffhq_align, ffhq_quad

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "samples"


def main() -> None:
    from skimage import data

    OUT.mkdir(exist_ok=True)
    astronaut = data.astronaut()
    detector = FaceDetector(device="cpu")
    face = detector.detect(astronaut)[0]

    save(astronaut, "astronaut.png")
    # 1. The astronaut framed exactly as FFHQ (StyleGAN's training data) was framed.
    aligned = ffhq_align(astronaut, face, size=512)
    save(aligned, "astronaut_ffhq_aligned.jpg", quality=92)
    # 2. The same, re-cropped off-centre and rescaled: the alignment is gone.
    h = aligned.shape[0]
    recrop = cv2.resize(aligned[h // 10: h, 0: int(h * 0.85)], (384, 416), interpolation=cv2.INTER_AREA)
    save(recrop, "astronaut_recropped.jpg", quality=90)
    # 3. Asymmetric eyeglasses drawn onto the aligned face.
    face_aligned = detector.detect(aligned)[0]
    save(draw_asymmetric_glasses(aligned, face_aligned), "astronaut_asymmetric_glasses.jpg", quality=92)
    # 4. A tighter FFHQ-style crop whose missing border is filled by reflection and blurred,
    #    as FFHQ's preprocessing did: mirrored, smeared backdrop.
    save(reflect_padded(astronaut, face), "astronaut_mirrored_backdrop.jpg", quality=92)
    # 5. The astronaut stored sideways with an EXIF orientation tag (a phone photo).
    save_exif_rotated(astronaut, "astronaut_exif_rotated.jpg")
    # 6. No face at all (CC0 photo of a cat).
    save(data.chelsea(), "chelsea_no_face.jpg", quality=90)
    # 7. A broken file: the first 2 kB of a JPEG.
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, format="JPEG", quality=90)
    (OUT / "broken_truncated.jpg").write_bytes(buf.getvalue()[:2048])
    print("\n".join(sorted(p.name for p in OUT.iterdir())))


def save(rgb: np.ndarray, name: str, **kwargs: int) -> None:
    Image.fromarray(rgb).save(OUT / name, **kwargs)


def save_exif_rotated(rgb: np.ndarray, name: str) -> None:
    """Store the pixels rotated 90° counter-clockwise, tagged so viewers turn them back."""
    img = Image.fromarray(np.ascontiguousarray(np.rot90(rgb, k=1)))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    img.save(OUT / name, quality=90, exif=exif.tobytes())


def draw_asymmetric_glasses(image: np.ndarray, face) -> np.ndarray:  # noqa: ANN001
    """Eyeglasses whose halves disagree: a thick round rim with a temple arm and hinge on
    one side, a thin square rim without them on the other."""
    out = image.copy()
    (lx, ly), (rx, ry) = face.landmarks[0], face.landmarks[1]
    d = float(np.hypot(rx - lx, ry - ly))
    r = int(0.36 * d)
    dark = (25, 20, 20)
    cv2.circle(out, (int(lx), int(ly)), r, dark, max(2, int(0.09 * d)), cv2.LINE_AA)
    half = int(0.33 * d)
    cv2.rectangle(out, (int(rx) - half, int(ry) - int(0.8 * half)), (int(rx) + half, int(ry) + int(0.8 * half)),
                  dark, max(1, int(0.025 * d)), cv2.LINE_AA)
    cv2.line(out, (int(lx) + r, int(ly)), (int(rx) - half, int(ry)), dark, max(1, int(0.04 * d)), cv2.LINE_AA)
    # Temple arm and hinge on the left lens only.
    cv2.line(out, (int(lx) - r, int(ly) - 2), (int(lx) - int(1.3 * d), int(ly) - int(0.05 * d)), dark,
             max(2, int(0.07 * d)), cv2.LINE_AA)
    cv2.rectangle(out, (int(lx) - r - int(0.1 * d), int(ly) - int(0.08 * d)),
                  (int(lx) - r + int(0.02 * d), int(ly) + int(0.05 * d)), (180, 170, 40), -1)
    return out


def reflect_padded(image: np.ndarray, face) -> np.ndarray:  # noqa: ANN001
    """FFHQ-style crop of a tight head shot, its missing outside reflected and blurred."""
    x1, y1, x2, y2 = (int(v) for v in face.box)
    w, h = x2 - x1, y2 - y1
    left, top = max(0, x1 - w // 3), max(0, y1 - h // 3)
    image = image[top: y2 + h // 6, left: x2 + w // 3]  # a tight head shot
    quad = ffhq_quad(face) - np.array([left, top])  # the FFHQ square runs past its borders
    size = 512
    dst = np.array([[0, 0], [0, size], [size, size]], np.float32)
    matrix = cv2.getAffineTransform(quad[:3].astype(np.float32), dst)
    warped = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT)
    inside = cv2.warpAffine(np.full(image.shape[:2], 255, np.uint8), matrix, (size, size),
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    blurred = cv2.GaussianBlur(warped, (0, 0), 6)
    # Blend towards the blurred copy with distance from the photo's edge, as FFHQ did.
    dist = cv2.distanceTransform((inside == 0).astype(np.uint8), cv2.DIST_L2, 3)
    weight = np.clip(dist / 40.0, 0, 1)[:, :, None]
    return (warped * (1 - weight) + blurred * weight).astype(np.uint8)



if __name__ == "__main__":
    main()
