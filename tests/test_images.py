"""Tests for ganscreen.images: decoding every input to 8-bit RGB (finding inputs: test_inputs.py).

Every image used here is generated in ``tmp_path`` (or in memory) with Pillow and numpy.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganscreen import images
from ganscreen.images import (
    MAX_PIXELS,
    ImageLoadError,
    LoadedImage,
    load_image,
)

WHITE = (255, 255, 255)


# --------------------------------------------------------------------------- helpers


def _save(img: Image.Image, path: Path, fmt: str | None = None, **kwargs) -> Path:
    img.save(path, format=fmt, **kwargs)
    return path


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _px(loaded: LoadedImage, x: int, y: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in loaded.rgb[y, x])


def _assert_close(actual, expected, tol: int) -> None:
    diff = np.abs(np.asarray(actual, dtype=int) - np.asarray(expected, dtype=int))
    assert diff.max() <= tol, f"{tuple(actual)} differs from {tuple(expected)} by more than {tol}"


def _assert_valid(loaded: LoadedImage, width: int, height: int) -> None:
    assert isinstance(loaded, LoadedImage)
    assert loaded.rgb.shape == (height, width, 3)
    assert loaded.rgb.dtype == np.uint8
    assert loaded.rgb.flags["C_CONTIGUOUS"]
    assert (loaded.width, loaded.height) == (width, height)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png_header_only(width: int, height: int) -> bytes:
    """A well-formed PNG (valid CRCs) whose IHDR claims ``width`` x ``height`` 8-bit grey
    pixels, followed by a tiny IDAT that holds only a few rows' worth of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + _png_chunk(b"IEND", b"")
    )


def _load_error(source, **kwargs) -> str:
    with pytest.raises(ImageLoadError) as excinfo:
        load_image(source, **kwargs)
    message = str(excinfo.value)
    assert message, "ImageLoadError must carry a message"
    assert "\n" not in message and "\r" not in message, repr(message)
    return message


def _probe(path: Path) -> tuple[str, tuple[int, int], int, dict]:
    """Mode, size, frame count and info of ``path`` as Pillow stores it (file closed)."""
    with Image.open(path) as img:
        return img.mode, img.size, getattr(img, "n_frames", 1), dict(img.info)


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


# --------------------------------------------------------------------------- modes


def test_mode_L_greyscale_is_replicated_to_three_channels(tmp_path):
    arr = np.array([[0, 77], [200, 255]], dtype=np.uint8)
    path = _save(Image.fromarray(arr, "L"), tmp_path / "grey.png")
    loaded = load_image(path)
    _assert_valid(loaded, 2, 2)
    assert np.array_equal(loaded.rgb, np.repeat(arr[:, :, None], 3, axis=2))
    assert loaded.format == "PNG"


def test_mode_LA_composites_transparent_pixels_on_white(tmp_path):
    la = Image.new("LA", (3, 1))
    la.putpixel((0, 0), (40, 0))  # fully transparent dark grey -> white
    la.putpixel((1, 0), (40, 255))  # opaque -> unchanged
    la.putpixel((2, 0), (0, 128))  # half-transparent black -> mid grey
    path = _save(la, tmp_path / "la.png")
    assert _probe(path)[0] == "LA"
    loaded = load_image(path)
    _assert_valid(loaded, 3, 1)
    assert _px(loaded, 0, 0) == WHITE
    assert _px(loaded, 1, 0) == (40, 40, 40)
    _assert_close(_px(loaded, 2, 0), (127, 127, 127), 2)


def test_mode_P_palette_is_expanded(tmp_path):
    pal = Image.new("P", (2, 1))
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * (256 * 3 - 6))
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    path = _save(pal, tmp_path / "pal.png")
    assert _probe(path)[0] == "P"
    loaded = load_image(path)
    assert _px(loaded, 0, 0) == (10, 20, 30)
    assert _px(loaded, 1, 0) == (200, 100, 50)


@pytest.mark.parametrize("fmt, suffix", [("PNG", "png"), ("GIF", "gif")])
def test_mode_P_with_transparency_composites_on_white(tmp_path, fmt, suffix):
    pal = Image.new("P", (2, 1))
    # index 1 is black but transparent: must come out white, not black
    pal.putpalette([10, 20, 30, 0, 0, 0] + [0] * (256 * 3 - 6))
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    path = _save(pal, tmp_path / f"pal_t.{suffix}", fmt, transparency=1)
    mode, _, _, info = _probe(path)
    assert mode == "P" and "transparency" in info
    loaded = load_image(path)
    assert _px(loaded, 0, 0) == (10, 20, 30)
    assert _px(loaded, 1, 0) == WHITE


def test_mode_P_with_transparency_from_pil_image():
    pal = Image.new("P", (2, 1))
    pal.putpalette([10, 20, 30, 0, 0, 0] + [0] * (256 * 3 - 6))
    pal.putpixel((1, 0), 1)
    pal.info["transparency"] = 1
    loaded = load_image(pal)
    assert _px(loaded, 0, 0) == (10, 20, 30)
    assert _px(loaded, 1, 0) == WHITE


def test_mode_RGBA_transparent_becomes_white(tmp_path):
    rgba = Image.new("RGBA", (3, 1))
    rgba.putpixel((0, 0), (255, 0, 0, 0))  # transparent red -> white
    rgba.putpixel((1, 0), (0, 0, 255, 255))  # opaque blue
    rgba.putpixel((2, 0), (0, 0, 0, 128))  # half black over white
    path = _save(rgba, tmp_path / "rgba.png")
    loaded = load_image(path)
    assert _px(loaded, 0, 0) == WHITE
    assert _px(loaded, 1, 0) == (0, 0, 255)
    _assert_close(_px(loaded, 2, 0), (127, 127, 127), 2)


def test_mode_CMYK_jpeg_keeps_colour(tmp_path):
    colour = (200, 30, 40)
    cmyk = Image.new("RGB", (16, 16), colour).convert("CMYK")
    path = _save(cmyk, tmp_path / "cmyk.jpg", "JPEG", quality=95)
    assert _probe(path)[0] == "CMYK"
    loaded = load_image(path)
    _assert_valid(loaded, 16, 16)
    assert loaded.format == "JPEG"
    _assert_close(_px(loaded, 8, 8), colour, 12)


def test_mode_I16_png_is_scaled_not_clipped(tmp_path):
    arr = np.array([[65535, 32896], [0, 257], [1000, 12850]], dtype=np.uint16)
    path = _save(Image.fromarray(arr), tmp_path / "deep.png")
    assert _probe(path)[0].startswith("I")
    loaded = load_image(path)
    _assert_valid(loaded, 2, 3)
    grey = loaded.rgb[:, :, 0]
    assert np.array_equal(loaded.rgb[:, :, 1], grey) and np.array_equal(loaded.rgb[:, :, 2], grey)
    assert grey[0, 0] == 255
    assert 127 <= grey[0, 1] <= 129  # 32896 / 65535 of full scale, not clipped to 255
    assert grey[1, 0] == 0
    assert grey[1, 1] == 1
    assert grey[2, 0] == 4  # 1000 / 257 -> 3.9 rounds to 4 (clipping would give 255)
    assert grey[2, 1] == 50


def test_mode_1_bit_is_black_and_white(tmp_path):
    bw = Image.new("1", (2, 1), 0)
    bw.putpixel((1, 0), 1)
    path = _save(bw, tmp_path / "bw.png")
    assert _probe(path)[0] == "1"
    loaded = load_image(path)
    assert _px(loaded, 0, 0) == (0, 0, 0)
    assert _px(loaded, 1, 0) == WHITE


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    "fmt, suffix, kwargs, tol",
    [
        ("JPEG", "jpg", {"quality": 95}, 8),
        ("PNG", "png", {}, 0),
        ("WEBP", "webp", {"lossless": True}, 0),
        ("BMP", "bmp", {}, 0),
        ("TIFF", "tiff", {}, 0),
        ("GIF", "gif", {}, 0),
    ],
)
def test_formats_decode_with_right_colour_and_format(tmp_path, fmt, suffix, kwargs, tol):
    colour = (200, 60, 20)
    img = Image.new("RGB", (24, 16), colour)
    img.paste((20, 40, 220), (0, 0, 8, 8))  # a blue block top-left keeps orientation honest
    path = _save(img, tmp_path / f"img.{suffix}", fmt, **kwargs)
    loaded = load_image(path)
    _assert_valid(loaded, 24, 16)
    assert loaded.format == fmt
    _assert_close(_px(loaded, 20, 12), colour, tol)
    _assert_close(_px(loaded, 3, 3), (20, 40, 220), tol)


def test_path_may_be_str_or_pathlike(tmp_path):
    path = _save(Image.new("RGB", (5, 4), (1, 2, 3)), tmp_path / "a.png")
    assert _px(load_image(str(path)), 0, 0) == (1, 2, 3)
    assert _px(load_image(path), 4, 3) == (1, 2, 3)


def test_animated_gif_returns_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert _probe(path)[2] == 3
    loaded = load_image(path)
    _assert_valid(loaded, 8, 8)
    assert loaded.format == "GIF"
    assert _px(loaded, 4, 4) == (255, 0, 0)


def test_animated_webp_returns_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    path = tmp_path / "anim.webp"
    frames[0].save(path, save_all=True, append_images=frames[1:], lossless=True, duration=50)
    assert _probe(path)[2] == 2
    loaded = load_image(path)
    assert loaded.format == "WEBP"
    assert _px(loaded, 4, 4) == (255, 0, 0)


def test_animated_pil_image_seeked_away_returns_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    with Image.open(path) as img:
        img.seek(1)
        loaded = load_image(img)
    assert _px(loaded, 4, 4) == (255, 0, 0)


def test_load_from_bytes():
    data = _encode(Image.new("RGB", (7, 5), (9, 99, 199)), "PNG")
    loaded = load_image(data)
    _assert_valid(loaded, 7, 5)
    assert loaded.format == "PNG"
    assert _px(loaded, 3, 2) == (9, 99, 199)


def test_load_from_pil_image():
    img = Image.new("RGBA", (6, 3), (10, 20, 30, 255))
    img.putpixel((0, 0), (0, 0, 0, 0))
    loaded = load_image(img)
    _assert_valid(loaded, 6, 3)
    assert loaded.format is None
    assert _px(loaded, 0, 0) == WHITE
    assert _px(loaded, 5, 2) == (10, 20, 30)
    # round trip through LoadedImage.pil()
    back = loaded.pil()
    assert back.mode == "RGB" and back.size == (6, 3)
    assert back.getpixel((5, 2)) == (10, 20, 30)


def test_load_from_opened_pil_image_keeps_format(tmp_path):
    path = _save(Image.new("RGB", (4, 4), (5, 6, 7)), tmp_path / "x.bmp")
    with Image.open(path) as img:
        loaded = load_image(img)
    assert loaded.format == "BMP"
    assert _px(loaded, 1, 1) == (5, 6, 7)


# --------------------------------------------------------------------------- EXIF


def _oriented_jpeg(path: Path, orientation: int) -> Path:
    img = Image.new("RGB", (40, 20), (255, 255, 255))
    img.paste((255, 0, 0), (0, 0, 8, 8))  # red marker in the stored top-left corner
    exif = img.getexif()
    exif[0x0112] = orientation
    img.save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


def test_exif_orientation_6_rotates_clockwise(tmp_path):
    path = _oriented_jpeg(tmp_path / "rot.jpg", 6)
    assert _probe(path)[1] == (40, 20)  # stored landscape
    loaded = load_image(path)
    _assert_valid(loaded, 20, 40)  # displayed portrait
    # rotating 90 degrees clockwise moves the stored top-left corner to the top-right
    _assert_close(_px(loaded, 16, 3), (255, 0, 0), 40)
    for x, y in ((3, 3), (3, 36), (16, 36)):
        _assert_close(_px(loaded, x, y), WHITE, 20)


def test_exif_orientation_from_bytes_and_pil(tmp_path):
    path = _oriented_jpeg(tmp_path / "rot.jpg", 6)
    from_bytes = load_image(path.read_bytes())
    with Image.open(path) as img:
        from_pil = load_image(img)
    for loaded in (from_bytes, from_pil):
        assert (loaded.width, loaded.height) == (20, 40)
        _assert_close(_px(loaded, 16, 3), (255, 0, 0), 40)


def test_exif_orientation_1_leaves_image_alone(tmp_path):
    loaded = load_image(_oriented_jpeg(tmp_path / "up.jpg", 1))
    assert (loaded.width, loaded.height) == (40, 20)
    _assert_close(_px(loaded, 3, 3), (255, 0, 0), 40)


# --------------------------------------------------------------------------- errors


def test_zero_byte_file_is_empty(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    assert "empty" in _load_error(path)


def test_zero_bytes_input_is_empty():
    assert "empty" in _load_error(b"")


def test_text_file_named_jpg_is_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a JPEG\nsecond line\n")
    assert "not a recognised image" in _load_error(path)
    assert "not a recognised image" in _load_error(path.read_bytes())


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image_is_reported(tmp_path, fmt):
    data = _encode(_noise(64, 64), fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    message = _load_error(path)
    assert "truncated" in message or "corrupt" in message


def test_corrupt_png_data_is_reported(tmp_path):
    data = bytearray(_encode(_noise(32, 32), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 4 : idat + 64] = b"\xff" * 60  # garble the compressed stream
    message = _load_error(bytes(data))
    assert "truncated" in message or "corrupt" in message


def test_huge_png_header_is_refused_as_too_large(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(100_000, 100_000))
    assert "too large" in _load_error(path)


def test_missing_file_is_not_found(tmp_path):
    assert "not found" in _load_error(tmp_path / "nope.jpg")


def test_broken_symlink_is_not_found(tmp_path):
    link = tmp_path / "dangling.jpg"
    link.symlink_to(tmp_path / "gone.jpg")
    assert "not found" in _load_error(link)


def test_directory_is_refused(tmp_path):
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    assert "directory" in _load_error(folder)


def test_max_pixels_is_respected_for_every_source(tmp_path):
    img = Image.new("RGB", (100, 100), (1, 2, 3))
    path = _save(img, tmp_path / "hundred.png")
    for source in (path, path.read_bytes(), img):
        assert "too large" in _load_error(source, max_pixels=9_999)
        assert load_image(source, max_pixels=10_000).rgb.shape == (100, 100, 3)


def test_images_under_max_pixels_are_not_refused_as_too_large():
    """An image within the documented limit must be decoded, not refused for its size.

    The PNG header claims 10000x9000 = 90 MP, under MAX_PIXELS (100 MP), but holds only a
    few rows of data: the right outcome is a truncation error, not a size refusal.
    """
    assert MAX_PIXELS > 10_000 * 9_000
    message = _load_error(_png_header_only(10_000, 9_000))
    assert "too large" not in message
    assert "truncated" in message or "corrupt" in message


def test_max_pixels_above_pillow_default_is_honoured():
    """Raising max_pixels must let a bigger image through (here 150 MP under 200 MP)."""
    message = _load_error(_png_header_only(15_000, 10_000), max_pixels=200_000_000)
    assert "too large" not in message
    assert "truncated" in message or "corrupt" in message


def test_error_is_a_plain_exception_subclass():
    assert issubclass(ImageLoadError, Exception)
    with pytest.raises(ImageLoadError):
        load_image(b"GIF89a garbage")


# --------------------------------------------------------------------------- bounded decoding


def test_decode_cost_comes_from_the_header_before_decoding() -> None:
    assert images.decode_cost((1000, 500), "I;16") == 1_000_000
    assert images.decode_cost((1000, 500), "RGB") == 1_500_000
    assert images.decode_cost((1000, 500), "RGBA") == 2_000_000


def test_a_16_bit_png_over_the_decode_limit_is_refused_with_its_cost() -> None:
    data = _encode(Image.fromarray(np.zeros((400, 500), np.uint16)), "PNG")
    message = _load_error(data, max_decode_bytes=300_000)  # needs 400 000 bytes
    assert "too large to decode" in message and "500x400" in message and "I;16" in message
    assert load_image(data, max_decode_bytes=400_000).rgb.shape == (400, 500, 3)


def test_a_jpeg_over_the_decode_limit_is_decoded_reduced() -> None:
    data = _encode(_noise(800, 600), "JPEG", quality=90)
    loaded = load_image(data, max_decode_bytes=800 * 600 * 3 // 3)  # a third of its cost
    assert loaded.rgb.shape == (300, 400, 3)  # DCT-scaled to 1/2, the largest that fits
    assert load_image(data).rgb.shape == (600, 800, 3)


def test_photos_over_the_analysis_size_are_reduced_after_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_ANALYSIS_PIXELS", 100 * 100)
    loaded = load_image(_encode(_noise(300, 200), "PNG"))
    # Reduced by 3, the smallest whole factor that fits (a partial last row may be kept).
    assert loaded.rgb.shape[1] == 100 and loaded.rgb.shape[0] in (66, 67)
    grey16 = Image.fromarray((np.arange(300 * 200, dtype=np.uint16) % 65535).reshape(200, 300))
    reduced = load_image(_encode(grey16, "PNG")).rgb
    assert reduced.shape[1] == 100 and reduced.shape[0] in (66, 67)


def test_only_allowed_formats_are_decoded_by_content(tmp_path: Path) -> None:
    face = _noise(16, 16)
    for fmt in ("PCX", "ICO", "TGA", "PPM"):
        path = tmp_path / f"x_{fmt}.jpg"
        path.write_bytes(_encode(face, fmt))
        assert "not a recognised image format" in _load_error(path), fmt
    png_named_jpg = tmp_path / "really_png.jpg"
    png_named_jpg.write_bytes(_encode(face, "PNG"))
    assert load_image(png_named_jpg).format == "PNG"
