"""Image loading and input discovery.

Every supported input (path, bytes or PIL image) becomes a :class:`LoadedImage` holding
8-bit RGB pixels with EXIF orientation applied, or raises :class:`ImageLoadError` with a
one-line message fit for a report record.

Files are read by one rule (:func:`read_file`), for the scan and for everything that reads
an image again later (report, evidence, campaign): opened once with ``O_NOFOLLOW`` and
``O_NONBLOCK``, checked with ``fstat`` on the open descriptor (a regular file, inside the
scanned tree), read whole and hashed, then decoded from those bytes only if their content
is one of :data:`ALLOWED_FORMATS`. Whatever is swapped in after the check is never read.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import struct
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# Profile photos are rarely above 50 MP; 100 MP leaves room for scans and panoramas while
# refusing the classic "tiny file, gigantic header" decompression bomb before decoding.
MAX_PIXELS = 100_000_000

# The formats decoded, recognised by content (Pillow's format ids), whatever the suffix:
# an EPS (Ghostscript), PSD or any other Pillow plugin in a file named .jpg is refused.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
)  # fmt: skip
# Larger files are refused before reading: a profile photo is a few megabytes.
MAX_FILE_BYTES = 256 * 2**20
# Decoded bytes one image may take (pixels x bytes per pixel of its decoded mode, read from
# the header before decoding). JPEGs above it are decoded reduced (DCT scaling); other
# formats are refused. Photos above MAX_ANALYSIS_PIXELS are reduced right after decoding,
# so every later stage works on at most that many pixels.
MAX_DECODE_BYTES = 512 * 2**20
MAX_ANALYSIS_PIXELS = 16_777_216  # 4096 x 4096
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0))

ImageFile.LOAD_TRUNCATED_IMAGES = False
# Our own header check (_check_size) is the size gate; Pillow's warning threshold
# (89.5 MP) is only lifted to our limit so the two never disagree below it.
if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageLoadError(Exception):
    """An input could not be turned into an RGB image; the message is one line.

    ``stamp`` is the file's size and mtime when it was opened and judged by ``fstat``
    before being refused (an empty file, a FIFO), else ``None``.
    """

    stamp: dict[str, int | float | str] | None = None


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


@dataclass(frozen=True, slots=True)
class FileRead:
    """A file's bytes as :func:`read_file` read them, and the stamp records carry."""

    data: bytes
    stamp: dict[str, int | float | str]  # size, mtime (ms) and sha256 of ``data``


def read_file(path: str | os.PathLike[str], *, root: Path | None = None) -> FileRead:
    """Read ``path`` by the one reading rule, or raise :class:`ImageLoadError`.

    Symbolic links are resolved once; the file they lead to is then opened with
    ``O_NOFOLLOW`` (a link swapped in afterwards is refused, not followed) and
    ``O_NONBLOCK`` (a FIFO cannot block the reader), and judged by ``fstat`` on the open
    descriptor: only a non-empty regular file is read. With ``root`` (a resolved folder),
    the file must lie inside it, both as resolved and as opened.
    """
    try:
        real = os.path.realpath(path, strict=True)
    except FileNotFoundError:
        raise ImageLoadError("file not found") from None
    except ValueError:  # an embedded NUL
        raise ImageLoadError("file not found") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageLoadError("broken or looping symbolic link") from None
        raise ImageLoadError(f"cannot read file: {exc.strerror or exc}") from None
    if root is not None and not _is_within(Path(real), root):
        raise ImageLoadError(OUTSIDE_MESSAGE)
    try:
        # Not a verdict (fstat on the descriptor is), only so that a device node is not even
        # opened in the ordinary case: opening some devices does something.
        before = os.lstat(real)
    except OSError:
        before = None
    if before is not None and stat.S_ISLNK(before.st_mode):
        raise ImageLoadError(_SWAPPED_LINK)
    if before is not None and not (stat.S_ISREG(before.st_mode) or stat.S_ISDIR(before.st_mode)):
        error = ImageLoadError("not a regular file (a FIFO, device or socket)")
        error.stamp = {"size": before.st_size, "mtime": round(before.st_mtime, 3)}
        raise error
    try:
        fd = os.open(real, _OPEN_FLAGS)
    except FileNotFoundError:
        raise ImageLoadError("file not found") from None
    except PermissionError:
        raise ImageLoadError("permission denied") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageLoadError(_SWAPPED_LINK) from None
        if exc.errno == errno.ENXIO:
            raise ImageLoadError("not a regular file (a socket or device)") from None
        raise ImageLoadError(f"cannot read file: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        try:
            _check_opened(fd, st, root)
        except ImageLoadError as exc:
            exc.stamp = {"size": st.st_size, "mtime": round(st.st_mtime, 3)}
            raise
        data = _read_all(fd, st.st_size)
    except OSError as exc:
        raise ImageLoadError(f"cannot read file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    stamp: dict[str, int | float | str] = {"size": st.st_size, "mtime": round(st.st_mtime, 3),
                                           "sha256": hashlib.sha256(data).hexdigest()}
    return FileRead(data=data, stamp=stamp)


OUTSIDE_MESSAGE = "symbolic link points outside the scanned folder (use --follow-symlinks to allow)"
_SWAPPED_LINK = "replaced by a symbolic link while scanning; not followed"


def _check_opened(fd: int, st: os.stat_result, root: Path | None) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise ImageLoadError("is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise ImageLoadError("not a regular file (a FIFO, device or socket)")
    if st.st_size == 0:
        raise ImageLoadError("empty file (0 bytes)")
    if st.st_size > MAX_FILE_BYTES:
        raise ImageLoadError(f"file too large: {st.st_size:,} bytes, over the {MAX_FILE_BYTES:,} byte limit")
    if root is not None:
        # Where the descriptor really is: a folder on the way may have been swapped for a
        # link after the path was resolved. (/proc is Linux; elsewhere the resolved path stands.)
        try:
            opened = Path(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return
        if not _is_within(opened, root):
            raise ImageLoadError("moved outside the scanned folder while scanning; not read")


def _read_all(fd: int, size: int) -> bytes:
    chunks = []
    left = min(size, MAX_FILE_BYTES) + 1  # a file that grew past the limit is cut, then fails to decode
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


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


def load_recorded(record: dict | Any) -> LoadedImage:
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
    file = record.get("file") if isinstance(record.get("file"), dict) else {}
    expected = file.get("sha256")
    if isinstance(expected, str) and expected != read.stamp["sha256"]:
        raise ImageLoadError("not shown: the file's content changed after the scan")
    return image


def _decode(fh: io.BufferedIOBase | io.BytesIO, *, max_pixels: int,
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
    except Exception:  # any header Pillow cannot read: nothing to reserve
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
    except Exception:  # a broken EXIF block must not cost us the pixels
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
    root: Path | None = None  # the resolved folder it was found in, which it must stay inside


def input_stamp(item: InputFile) -> dict[str, int | float | str] | None:
    """The stamp (size, mtime, sha256) the scan records for ``item``; ``None`` when it is
    refused before or while reading. ``scan --resume`` compares records with this."""
    if item.error is not None:
        return None
    try:
        return read_file(item.path, root=item.root).stamp
    except ImageLoadError as exc:
        return exc.stamp


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
                             follow_symlinks=follow_symlinks, seen={root},
                             keep_inside=None if follow_symlinks else root)
        else:
            yield InputFile(path)


def _walk(
    folder: Path, *, root: Path, all_files: bool, follow_symlinks: bool, seen: set[Path],
    keep_inside: Path | None,
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
                                 follow_symlinks=follow_symlinks, seen=seen, keep_inside=keep_inside)
                continue
            if not (all_files or _is_image_name(entry.name)):
                continue
            if target is None:
                yield InputFile(path, error="broken or looping symbolic link")
            elif outside:
                yield InputFile(path, error=OUTSIDE_MESSAGE)
            else:
                yield InputFile(path, root=keep_inside)
            continue
        if is_dir:
            real = _resolve(path)
            if real is None or real in seen:
                continue
            seen.add(real)
            yield from _walk(path, root=root, all_files=all_files,
                             follow_symlinks=follow_symlinks, seen=seen, keep_inside=keep_inside)
        elif all_files or _is_image_name(entry.name):
            yield InputFile(path, root=keep_inside)


def _resolve(path: Path) -> Path | None:
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES
