"""Property tests: mangled image bytes never escape as anything but a clean outcome.

Small valid JPEG and PNG files are damaged the way disks, uploads and attackers damage them
(bit flips, cut-off ends, inserted and deleted bytes). ``load_image`` must return 8-bit RGB
or raise ImageLoadError, and ``Screener.screen`` must always return a report.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ganscreen import Screener
from ganscreen.images import ImageLoadError, load_image
from ganscreen.report import STATUSES, Report

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _valid(fmt: str) -> bytes:
    """A small real photo (a face, so damaged copies still reach detection and the checks)."""
    face = Image.open(SAMPLES / "astronaut.png").convert("RGB").crop((150, 30, 300, 210))
    buf = io.BytesIO()
    face.resize((72, 86)).save(buf, format=fmt)
    return buf.getvalue()


VALID = {"JPEG": _valid("JPEG"), "PNG": _valid("PNG")}

# Positions favour the first bytes, where headers (sizes, modes, chunk lengths) live and a
# single change does the most damage; the rest of the file is reachable too.
_position = st.one_of(st.integers(0, 128), st.integers(0, 1 << 16))
_mutation = st.one_of(
    st.tuples(st.just("flip"), _position, st.integers(1, 255)),
    st.tuples(st.just("truncate"), _position, st.just(b"")),
    st.tuples(st.just("insert"), _position, st.binary(min_size=1, max_size=24)),
    st.tuples(st.just("delete"), _position, st.integers(1, 64)),
)
mutations = st.lists(_mutation, min_size=1, max_size=6)
# PNG guards every chunk with a CRC, so nearly any change is caught before the parser looks
# at the content. Files crafted on purpose carry valid CRCs: re-sign half the PNG cases so
# the damage reaches header fields (size, bit depth, colour type) and the decoder itself.
resign = st.booleans()


def _mutate(data: bytes, steps: list[tuple[str, int, object]]) -> bytes:
    out = bytearray(data)
    for kind, raw_position, arg in steps:
        position = raw_position % (len(out) + 1)
        if kind == "flip" and position < len(out):
            out[position] ^= int(arg)  # type: ignore[call-overload]
        elif kind == "truncate":
            del out[position:]
        elif kind == "insert":
            out[position:position] = arg  # type: ignore[assignment]
        elif kind == "delete":
            del out[position:position + int(arg)]  # type: ignore[call-overload]
    return bytes(out)


def _resign_png(data: bytes) -> bytes:
    """``data`` with the CRC of every complete chunk recomputed (a malformed tail is kept)."""
    out = bytearray(data)
    position = 8  # after the signature
    while position + 12 <= len(out):
        (length,) = struct.unpack(">I", out[position:position + 4])
        end = position + 8 + length
        if end + 4 > len(out):
            break
        out[end:end + 4] = struct.pack(">I", zlib.crc32(out[position + 4:end]))
        position = end + 4
    return bytes(out)


def _damaged(fmt: str, steps: list, resigned: bool) -> bytes:
    data = _mutate(VALID[fmt], steps)
    return _resign_png(data) if fmt == "PNG" and resigned else data


@pytest.mark.parametrize("fmt", sorted(VALID))
@settings(max_examples=60, deadline=None)
@given(steps=mutations, resigned=resign)
def test_load_image_returns_rgb_or_raises_image_load_error(fmt: str, steps: list, resigned: bool) -> None:
    data = _damaged(fmt, steps, resigned)
    try:
        loaded = load_image(data)
    except ImageLoadError as exc:
        message = str(exc)
        assert message and "\n" not in message
        return
    assert loaded.rgb.dtype == np.uint8 and loaded.rgb.ndim == 3 and loaded.rgb.shape[2] == 3
    assert loaded.rgb.shape[0] >= 1 and loaded.rgb.shape[1] >= 1


@pytest.mark.parametrize("fmt", sorted(VALID))
@settings(max_examples=60, deadline=None)
@given(steps=mutations, resigned=resign)
def test_screen_always_returns_a_report(screener: Screener, fmt: str, steps: list, resigned: bool) -> None:
    report = screener.screen(_damaged(fmt, steps, resigned))
    assert isinstance(report, Report)
    assert report.status in STATUSES
    if report.status == "error":
        assert report.error and "\n" not in report.error and "\r" not in report.error
    else:
        assert report.error is None and report.image is not None
    report.to_json()  # serialisable, whatever came out


# Every mode Pillow can create, including in-memory-only ones (La, RGBa, HSV) that no file
# yields but a caller may hand over; La once escaped as a bare ValueError.
PILLOW_MODES = ["1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "I", "F", "LA",
                "PA", "RGBX", "RGBa", "La", "I;16", "I;16B", "I;16L", "I;16N"]


@pytest.mark.parametrize("mode", PILLOW_MODES)
def test_every_pillow_mode_loads_or_is_refused_cleanly(mode: str) -> None:
    try:
        loaded = load_image(Image.new(mode, (3, 2)))
    except ImageLoadError as exc:
        assert "\n" not in str(exc)
        return
    assert loaded.rgb.shape == (2, 3, 3) and loaded.rgb.dtype == np.uint8
