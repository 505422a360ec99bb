"""Image loading and input discovery.

Every supported input (path, bytes or PIL image) becomes a :class:`LoadedImage` holding
8-bit RGB pixels with EXIF orientation applied, or raises :class:`ImageLoadError` with a
one-line message fit for a report record.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# Profile photos are rarely above 50 MP; 100 MP leaves room for scans and panoramas while
# refusing the classic "tiny file, gigantic header" decompression bomb before decoding.
MAX_PIXELS = 100_000_000

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff",
     ".gif", ".ppm", ".pgm", ".pbm", ".pnm"}
)  # fmt: skip

ImageFile.LOAD_TRUNCATED_IMAGES = False
# Our own header check (_check_size) is the size gate; Pillow's warning threshold
# (89.5 MP) is only lifted to our limit so the two never disagree below it.
if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageLoadError(Exception):
    """An input could not be turned into an RGB image; the message is one line."""


@dataclass(frozen=True, slots=True)
class LoadedImage:
    """An input image as 8-bit RGB, oriented as a person would see it."""

    rgb: np.ndarray  # H x W x 3, uint8, C-contiguous
    format: str | None  # the container format Pillow detected (JPEG, PNG, ...), if any

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    def pil(self) -> Image.Image:
        return Image.fromarray(self.rgb, mode="RGB")


ImageSource = str | os.PathLike[str] | bytes | Image.Image


def load_image(source: ImageSource, *, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Decode ``source`` into a :class:`LoadedImage`.

    Raises :class:`ImageLoadError` for anything that is not a readable still image:
    missing, empty, truncated or non-image files, and images over ``max_pixels``.
    """
    if isinstance(source, Image.Image):
        return _from_pil(source, max_pixels=max_pixels)
    if isinstance(source, bytes):
        if not source:
            raise ImageLoadError("empty input (0 bytes)")
        return _decode(io.BytesIO(source), max_pixels=max_pixels)
    path = Path(source)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageLoadError("file not found") from None
    except OSError as exc:
        raise ImageLoadError(f"cannot read file: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageLoadError("is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise ImageLoadError("not a regular file")
    if st.st_size == 0:
        raise ImageLoadError("empty file (0 bytes)")
    try:
        with path.open("rb") as fh:
            return _decode(fh, max_pixels=max_pixels)
    except PermissionError:
        raise ImageLoadError("permission denied") from None
    except OSError as exc:  # only reached for errors opening the file itself
        raise ImageLoadError(f"cannot read file: {exc.strerror or exc}") from None


def _decode(fh: io.BufferedIOBase | io.BytesIO, *, max_pixels: int) -> LoadedImage:
    try:
        with warnings.catch_warnings():
            # Pillow warns between MAX_IMAGE_PIXELS and twice that; _check_size decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fh) as img:
                fmt = img.format
                _check_size(img.size, max_pixels)
                img.load()
                return _from_pil(img, max_pixels=max_pixels, fmt=fmt)
    except Image.DecompressionBombError:
        raise ImageLoadError("image too large, refused as a possible decompression bomb") from None
    except UnidentifiedImageError:
        raise ImageLoadError("not a recognised image format") from None
    except ImageLoadError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, MemoryError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "truncated" in message.lower():
            raise ImageLoadError("truncated image file") from None
        raise ImageLoadError(f"corrupt image: {message}") from None


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"invalid image size {width}x{height}")
    if width * height > max_pixels:
        raise ImageLoadError(
            f"image too large: {width}x{height} px exceeds the {max_pixels:,} pixel limit "
            "(possible decompression bomb)"
        )


def _from_pil(img: Image.Image, *, max_pixels: int, fmt: str | None = None) -> LoadedImage:
    _check_size(img.size, max_pixels)
    fmt = fmt if fmt is not None else img.format
    # is_animated, not n_frames > 1: counting frames walks the whole file (GIF), which a
    # file with a million tiny frames turns into a stall.
    if getattr(img, "is_animated", False):
        img.seek(0)  # animated GIF/WebP/TIFF: judge the first frame
    try:
        oriented = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block must not cost us the pixels
        oriented = img
    source = oriented if oriented is not None else img
    try:
        rgb = _to_rgb_array(source)
    except ValueError:  # Pillow has no conversion for this mode: say so, not "crash"
        raise ImageLoadError(f"unsupported image mode {source.mode}") from None
    return LoadedImage(rgb=np.ascontiguousarray(rgb), format=fmt)


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _high_depth_to_rgb(img)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode == "La":  # premultiplied grey + alpha: Pillow converts it only to LA
        img = img.convert("LA")
        mode = "LA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent pixels hold arbitrary colours: composite on white as a viewer would.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    if mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img)


def _high_depth_to_rgb(img: Image.Image) -> np.ndarray:
    """Scale 16-bit, 32-bit integer and float greyscale to 8 bits (Pillow would clip)."""
    values = np.asarray(img).astype(np.float64)
    if img.mode.startswith("I;16"):
        scaled = values / 257.0
    else:
        lo, hi = float(np.min(values)), float(np.max(values))
        if img.mode == "I" and lo >= 0 and hi <= 255:
            scaled = values
        elif img.mode == "I" and lo >= 0 and hi <= 65535:
            scaled = values / 257.0
        else:
            scaled = (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)
    grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


# --------------------------------------------------------------------------- discovery


def file_stamp(path: str | os.PathLike[str]) -> dict[str, int | float] | None:
    """Size and modification time of ``path`` as records carry them (``None`` if unstat-able).

    ``scan --resume`` treats a file as already screened when its recorded stamp equals this
    one, so the pipeline and the resume logic must both use this function: the rounding to
    milliseconds is what survives a round trip through JSON and CSV text exactly.
    """
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # ValueError: a path with an embedded NUL
        return None
    return {"size": st.st_size, "mtime": round(st.st_mtime, 3)}


@dataclass(frozen=True, slots=True)
class InputFile:
    """One input to screen; ``error`` is set when it must be reported without decoding."""

    path: Path
    error: str | None = None


def iter_inputs(
    paths: Iterable[str | os.PathLike[str]],
    *,
    all_files: bool = False,
    follow_symlinks: bool = False,
) -> Iterator[InputFile]:
    """Yield every input file under ``paths`` in a stable (sorted, depth-first) order.

    Files named explicitly are always inputs. Inside folders, files with an image suffix are
    inputs (every file with ``all_files``). Symbolic links are not followed out of the
    scanned tree unless ``follow_symlinks``: a file link that points outside becomes an input
    with an error, so it is reported rather than silently dropped; folder links are entered
    only with ``follow_symlinks``. Symlink loops are never entered.
    """
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            root = path.resolve()
            yield from _walk(path, root=root, all_files=all_files,
                             follow_symlinks=follow_symlinks, seen={root})
        else:
            yield InputFile(path)


def _walk(
    folder: Path, *, root: Path, all_files: bool, follow_symlinks: bool, seen: set[Path]
) -> Iterator[InputFile]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        yield InputFile(folder, error=f"cannot list folder: {exc.strerror or exc}")
        return
    for entry in entries:
        path = Path(entry.path)
        try:
            is_link = entry.is_symlink()
            is_dir = entry.is_dir(follow_symlinks=True)
        except OSError:
            is_link, is_dir = True, False
        if is_link:
            target = _resolve(path)
            outside = target is None or not (follow_symlinks or _is_within(target, root))
            if is_dir:
                if target is None or target in seen or outside or not follow_symlinks:
                    continue  # loops, escapes and (by default) folder links are not entered
                seen.add(target)
                yield from _walk(path, root=root, all_files=all_files,
                                 follow_symlinks=follow_symlinks, seen=seen)
                continue
            if not (all_files or _is_image_name(entry.name)):
                continue
            if target is None:
                yield InputFile(path, error="broken or looping symbolic link")
            elif outside:
                yield InputFile(path, error="symbolic link points outside the scanned folder "
                                            "(use --follow-symlinks to allow)")
            else:
                yield InputFile(path)
            continue
        if is_dir:
            real = _resolve(path)
            if real is None or real in seen:
                continue
            seen.add(real)
            yield from _walk(path, root=root, all_files=all_files,
                             follow_symlinks=follow_symlinks, seen=seen)
        elif all_files or _is_image_name(entry.name):
            yield InputFile(path)


def _resolve(path: Path) -> Path | None:
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES
