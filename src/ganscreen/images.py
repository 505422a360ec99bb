"""Image decoding: every input (path, bytes or PIL image) to 8-bit RGB.

Every supported input becomes a :class:`LoadedImage` holding 8-bit RGB pixels with EXIF
orientation applied, or raises :class:`ImageLoadError` with a one-line message fit for a
report record. A path is read by the one reading rule (:func:`read_file`, in
:mod:`ganscreen._inputs` with the input walk, both re-exported here), and its bytes are
decoded only if their content is one of :data:`ALLOWED_FORMATS`.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ganscreen._inputs import (
    IMAGE_SUFFIXES,
    MAX_FILE_BYTES,
    OUTSIDE_MESSAGE,
    FileRead,
    ImageLoadError,
    InputFile,
    file_stamp,
    input_stamp,
    iter_inputs,
    read_file,
)

_log = logging.getLogger("ganscreen")

__all__ = [
    "ALLOWED_FORMATS",
    "IMAGE_SUFFIXES",
    "MAX_ANALYSIS_PIXELS",
    "MAX_DECODE_BYTES",
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "OUTSIDE_MESSAGE",
    "FileRead",
    "ImageLoadError",
    "ImageSource",
    "InputFile",
    "LoadedImage",
    "decode_cost",
    "file_stamp",
    "header_cost",
    "input_stamp",
    "iter_inputs",
    "load_file",
    "load_image",
    "load_recorded",
    "read_file",
]

# Profile photos are rarely above 50 MP; 100 MP leaves room for scans and panoramas while
# refusing the classic "tiny file, gigantic header" decompression bomb before decoding.
MAX_PIXELS = 100_000_000

# The formats decoded, recognised by content (Pillow's format ids), whatever the suffix:
# an EPS (Ghostscript), PSD or any other Pillow plugin in a file named .jpg is refused.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
# Decoded bytes one image may take (pixels x bytes per pixel of its decoded mode, read from
# the header before decoding). JPEGs above it are decoded reduced (DCT scaling); other
# formats are refused. Photos above MAX_ANALYSIS_PIXELS are reduced right after decoding,
# so every later stage works on at most that many pixels.
MAX_DECODE_BYTES = 512 * 2**20
MAX_ANALYSIS_PIXELS = 16_777_216  # 4096 x 4096

ImageFile.LOAD_TRUNCATED_IMAGES = False
# Our own header check (_check_size) is the size gate; Pillow's warning threshold
# (89.5 MP) is only lifted to our limit so the two never disagree below it.
if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS


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


def load_image(source: ImageSource, *, max_pixels: int = MAX_PIXELS,
               max_decode_bytes: int = MAX_DECODE_BYTES) -> LoadedImage:
    """Decode ``source`` into a :class:`LoadedImage`.

    A path is read by :func:`read_file`. Raises :class:`ImageLoadError` for anything that
    is not a readable still image of an allowed format: missing, empty, truncated or
    non-image files, images over ``max_pixels``, and images whose decoding would take over
    ``max_decode_bytes`` (JPEGs are decoded reduced instead).
    """
    if isinstance(source, Image.Image):
        return _from_pil(source, max_pixels=max_pixels)
    data = source if isinstance(source, bytes) else read_file(source).data
    if not data:
        raise ImageLoadError("empty input (0 bytes)")
    return _decode(io.BytesIO(data), max_pixels=max_pixels, max_decode_bytes=max_decode_bytes)


def load_file(path: str | os.PathLike[str], *, root: Path | None = None,
              max_pixels: int = MAX_PIXELS, max_decode_bytes: int = MAX_DECODE_BYTES,
              ) -> tuple[LoadedImage, FileRead]:
    """Read ``path`` by :func:`read_file` and decode it; the image and what was read."""
    read = read_file(path, root=root)
    image = _decode(io.BytesIO(read.data), max_pixels=max_pixels, max_decode_bytes=max_decode_bytes)
    return image, read


def load_recorded(record: Mapping[str, Any]) -> LoadedImage:
    """Re-read the image of a scan record (report, evidence, campaign) by the same rule.

    Refused with :class:`ImageLoadError` when the scan refused the file (an error record)
    and when the bytes on disk are no longer those the scan read (its sha256 differs), so
    nothing the scan did not judge is ever shown as if it had been.
    """
    path = record.get("path")
    if not isinstance(path, str):
        raise ImageLoadError("the record names no file")
    if record.get("status") == "error":
        raise ImageLoadError("not shown: the scan refused this file")
    image, read = load_file(path)
    file = record.get("file")
    expected = file.get("sha256") if isinstance(file, dict) else None
    if isinstance(expected, str) and expected != read.stamp["sha256"]:
        raise ImageLoadError("not shown: the file's content changed after the scan")
    return image


def _decode(fh: io.BytesIO, *, max_pixels: int,
            max_decode_bytes: int = MAX_DECODE_BYTES) -> LoadedImage:
    try:
        with warnings.catch_warnings():
            # Pillow warns between MAX_IMAGE_PIXELS and twice that; _check_size decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fh, formats=ALLOWED_FORMATS) as img:
                fmt = img.format
                _check_size(img.size, max_pixels)
                _limit_decode(img, max_decode_bytes)
                img.load()
                return _from_pil(img, max_pixels=max_pixels, fmt=fmt)
    except Image.DecompressionBombError:
        raise ImageLoadError("image too large, refused as a possible decompression bomb") from None
    except UnidentifiedImageError:
        raise ImageLoadError("not a recognised image format (allowed: JPEG, PNG, WebP, GIF, BMP, TIFF)") from None
    except ImageLoadError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, MemoryError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "truncated" in message.lower():
            raise ImageLoadError("truncated image file") from None
        raise ImageLoadError(f"corrupt image: {message}") from None


# Bytes per pixel of Pillow's decoded modes (the header tells the mode before decoding).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "La": 2, "PA": 2, "I;16": 2, "I;16B": 2, "I;16L": 2,
               "I;16N": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3, "RGBA": 4, "RGBa": 4, "RGBX": 4,
               "CMYK": 4, "I": 4, "F": 4}


def decode_cost(size: tuple[int, int], mode: str) -> int:
    """Bytes the decoded pixels of an image of ``size`` and ``mode`` take."""
    return size[0] * size[1] * _MODE_BYTES.get(mode, 4)


def header_cost(data: bytes) -> int:
    """Bytes decoding ``data`` may take at its peak, from the header alone (0 when the header
    cannot be read: the decoder will refuse the file at once anyway). Twice the decoded
    pixels: decoding, then reducing or converting to RGB, briefly holds two copies."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as img:
                return 2 * decode_cost(img.size, img.mode)
    except Exception as exc:  # any header Pillow cannot read: nothing to reserve
        # The decode that follows refuses such a file with its own message (the record's).
        _log.debug("no decode cost from the header: %s", exc)
        return 0


def _limit_decode(img: Image.Image, max_decode_bytes: int) -> None:
    """Refuse, or (JPEG) decode reduced, an image whose pixels would take too much memory."""
    cost = decode_cost(img.size, img.mode)
    if cost <= max_decode_bytes:
        return
    if img.format == "JPEG":
        width, height = img.size
        for scale in (2, 4, 8):  # libjpeg's DCT scaling: decode at 1/2, 1/4 or 1/8
            if decode_cost((-(-width // scale), -(-height // scale)), img.mode) <= max_decode_bytes:
                img.draft(img.mode, (-(-width // scale), -(-height // scale)))
                return
    width, height = img.size
    raise ImageLoadError(
        f"image too large to decode: {width}x{height} px in mode {img.mode} needs about "
        f"{cost / 2**20:,.0f} MB, over the {max_decode_bytes / 2**20:,.0f} MB limit per image")


def _reduce(img: Image.Image) -> Image.Image:
    """``img`` shrunk by a whole factor (box filter) to at most MAX_ANALYSIS_PIXELS."""
    pixels = img.size[0] * img.size[1]
    if pixels <= MAX_ANALYSIS_PIXELS:
        return img
    factor = 2
    while pixels / (factor * factor) > MAX_ANALYSIS_PIXELS:
        factor += 1
    if img.mode in _HIGH_DEPTH:
        return _reduce_high_depth(img, factor)
    try:
        return img.reduce(factor)
    except (ValueError, NotImplementedError):  # modes reduce() lacks: resize does the same
        size = (max(1, img.size[0] // factor), max(1, img.size[1] // factor))
        return img.resize(size, Image.Resampling.BOX)


_HIGH_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _reduce_high_depth(img: Image.Image, factor: int) -> Image.Image:
    """Box-reduce a 16/32-bit greyscale image strip by strip: Pillow's reduce() refuses these
    modes and resize() would first convert the whole image to 32 bits (twice its memory)."""
    width, height = (img.size[0] // factor) * factor, (img.size[1] // factor) * factor
    rows = factor * max(1, 1_048_576 // max(1, width))  # strips of about a million pixels
    dtype = {"I": np.int32, "F": np.float32}.get(img.mode, np.uint16)  # I;16 stays 16 bits
    out = np.empty((height // factor, width // factor), dtype)
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        strip = np.asarray(img.crop((0, top, width, bottom)), dtype=np.float32)
        means = strip.reshape((bottom - top) // factor, factor, width // factor, factor).mean(axis=(1, 3))
        out[top // factor:bottom // factor] = means if dtype is np.float32 else np.rint(means)
    return Image.fromarray(out)  # mode I;16, I or F, as the input


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
    except Exception as exc:  # a broken EXIF block must not cost us the pixels
        _log.warning("EXIF orientation ignored (unreadable EXIF block): %s", " ".join(str(exc).split()))
        oriented = img
    source = _reduce(oriented if oriented is not None else img)
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
    if img.mode.startswith("I;16"):
        # Integer arithmetic, 4 bytes a pixel: rint(v / 257) exactly (257 is odd, so no ties).
        grey = ((np.asarray(img).astype(np.uint32) * 2 + 257) // 514).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    values = np.asarray(img).astype(np.float64)
    lo, hi = float(np.min(values)), float(np.max(values))
    if img.mode == "I" and lo >= 0 and hi <= 255:
        scaled = values
    elif img.mode == "I" and lo >= 0 and hi <= 65535:
        scaled = values / 257.0
    else:
        scaled = (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)
    grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)
