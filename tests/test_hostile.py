"""Hostile inputs: each one becomes exactly one record (with a clear one-line message when it
cannot be screened), and the scan goes on to the next file.

Everything is generated in a temporary folder; the same folder is scanned through the Python
API and once through the CLI.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ganscreen import Screener
from ganscreen.cli import app
from ganscreen.images import ImageLoadError, iter_inputs, read_file
from ganscreen.report import Report

runner = CliRunner()
FACE_SIZE = 160  # big enough for MTCNN to find the face, small enough to keep the test fast


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass(frozen=True)
class Expect:
    status: str  # "ok", "no_face" or "error"
    message: str | None = None  # a word the error message must contain


# --------------------------------------------------------------------------- the inputs


def _encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG with valid CRCs whose header claims ``width`` x ``height`` and holds almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\0" * 100)) + _png_chunk(b"IEND", b""))


def _exif_rotated(face: Image.Image) -> bytes:
    """The face stored sideways with EXIF Orientation 6, as phones write portraits."""
    sideways = face.transpose(Image.Transpose.ROTATE_90)
    exif = sideways.getexif()
    exif[0x0112] = 6
    return _encode(sideways, "JPEG", quality=92, exif=exif.tobytes())


def _animated_gif(face: Image.Image) -> bytes:
    frames = [face, face.transpose(Image.Transpose.FLIP_TOP_BOTTOM)]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)


def _make_inputs(root: Path, face: Image.Image) -> dict[str, Expect]:
    """Write every hostile input into ``root``; returns what each must become."""
    jpeg, png = _encode(face, "JPEG", quality=90), _encode(face, "PNG")
    grey16 = (np.asarray(face.convert("L")).astype(np.uint16) * 257)
    files: dict[str, tuple[bytes, Expect]] = {
        "empty.jpg": (b"", Expect("error", "empty")),
        "notes.jpg": (b"just some text\nsecond line\n", Expect("error", "not a recognised image")),
        "page.jpg": (b"<!doctype html><html><body><h1>404 Not Found</h1></body></html>\n",
                     Expect("error", "not a recognised image")),
        "cut.jpg": (jpeg[: len(jpeg) // 2], Expect("error", "truncated")),
        "cut.png": (png[: len(png) // 2], Expect("error", "truncated")),
        "bomb.png": (_png_claiming(100_000, 100_000), Expect("error", "too large")),
        "dot.png": (_encode(Image.new("RGB", (1, 1), (90, 60, 40)), "PNG"), Expect("no_face")),
        "strip.png": (_encode(Image.new("RGB", (20_000, 10), (90, 60, 40)), "PNG"), Expect("no_face")),
        "deep16.png": (_encode(Image.fromarray(grey16), "PNG"), Expect("ok")),
        "cmyk.jpg": (_encode(face.convert("CMYK"), "JPEG", quality=92), Expect("ok")),
        "palette.png": (_encode(face.convert("P"), "PNG", transparency=0), Expect("ok")),
        "animated.gif": (_animated_gif(face), Expect("ok")),
        "rotated.jpg": (_exif_rotated(face), Expect("ok")),
        "face.webp": (_encode(face, "WEBP", quality=90), Expect("ok")),
        "face.tiff": (_encode(face, "TIFF"), Expect("ok")),
        "locked.jpg": (jpeg, Expect("error", "permission denied")),
        "with space.jpg": (jpeg, Expect("ok")),
        "ünïcödé 写真.jpg": (jpeg, Expect("ok")),
        "new\nline.jpg": (jpeg, Expect("ok")),
        "<img src=x onerror=alert(1)>.jpg": (jpeg, Expect("ok")),
        # Formats Pillow could open but the scan does not allow, whatever the suffix says.
        "ghost.jpg": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n",
                      Expect("error", "not a recognised image format (allowed")),
        "icon.png": (_encode(face.resize((32, 32)), "ICO"), Expect("error", "not a recognised image")),
        "photo.pcx.jpg": (_encode(face, "PCX"), Expect("error", "not a recognised image")),
    }
    for name, (data, _) in files.items():
        (root / name).write_bytes(data)
    expected = {name: expect for name, (_, expect) in files.items()}
    # File names are bytes on POSIX: one that is not UTF-8 (Latin-1 here) must not break output.
    latin1 = os.fsdecode(b"caf\xe9.jpg")
    (root / latin1).write_bytes(jpeg)
    expected[latin1] = Expect("ok")
    # A folder named like an image is a folder: walked, its files screened, no record itself.
    (root / "x.jpg").mkdir()
    (root / "x.jpg" / "inside.png").write_bytes(png)
    expected[os.path.join("x.jpg", "inside.png")] = Expect("ok")
    # Symbolic link loops: a link to itself and a pair pointing at each other.
    (root / "self.jpg").symlink_to(root / "self.jpg")
    (root / "ping.jpg").symlink_to(root / "pong.jpg")
    (root / "pong.jpg").symlink_to(root / "ping.jpg")
    for name in ("self.jpg", "ping.jpg", "pong.jpg"):
        expected[name] = Expect("error", "looping")
    (root / "again").symlink_to(root, target_is_directory=True)  # a folder loop: never entered
    os.mkfifo(root / "pipe.jpg")  # a FIFO nobody writes to: refused at once, never waited on
    expected["pipe.jpg"] = Expect("error", "not a regular file")
    return expected


@pytest.fixture
def hostile(tmp_path: Path, samples: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, Expect]]:
    root = tmp_path / "hostile"
    root.mkdir()
    face = Image.open(samples / "astronaut.png").convert("RGB").resize((FACE_SIZE, FACE_SIZE))
    expected = _make_inputs(root, face)
    _lock(root / "locked.jpg", monkeypatch)
    return root, expected


def _lock(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``path`` unreadable. chmod 000 does that for a normal user; root reads through
    it, so as root opening that one file is made to fail the way the kernel would."""
    path.chmod(0)
    if os.geteuid() != 0:
        return
    real_open = os.open

    def guarded_open(target: object, *args: object, **kwargs: object) -> int:
        if os.path.basename(os.fsdecode(target)) == path.name:  # type: ignore[arg-type]
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(target))
        return real_open(target, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", guarded_open)


# --------------------------------------------------------------------------- checks


def _check_report(report: Report, expect: Expect) -> None:
    name = report.path
    assert report.status == expect.status, (name, report.status, report.error)
    if expect.status == "error":
        assert report.error and "\n" not in report.error and "\r" not in report.error, name
        assert expect.message in report.error.lower(), (name, report.error)
        assert report.verdict is None and report.score is None
    else:
        assert report.error is None, (name, report.error)
    if expect.status == "ok":
        assert report.verdict in ("gan", "uncertain", "real"), name
    line = report.to_json()
    assert "\n" not in line
    line.encode("utf-8")  # writable to any UTF-8 file, whatever the file name


def test_every_hostile_input_gets_exactly_one_clear_record(
        screener: Screener, hostile: tuple[Path, dict[str, Expect]]) -> None:
    root, expected = hostile
    reports = list(screener.scan([root]))
    got = [os.path.relpath(r.path, root) for r in reports]
    assert sorted(got) == sorted(expected), "every input once, nothing else"
    for report, rel in zip(reports, got, strict=True):
        _check_report(report, expected[rel])
    rotated = reports[got.index("rotated.jpg")]
    assert rotated.image is not None and (rotated.image.width, rotated.image.height) == (FACE_SIZE, FACE_SIZE)


def test_a_directory_named_like_an_image_is_an_error_when_screened_directly(
        screener: Screener, hostile: tuple[Path, dict[str, Expect]]) -> None:
    root, _ = hostile
    report = screener.screen(root / "x.jpg")
    assert report.status == "error" and report.error == "is a directory, not an image file"


def test_cli_writes_one_json_line_per_hostile_input(hostile: tuple[Path, dict[str, Expect]],
                                                    tmp_path: Path) -> None:
    root, expected = hostile
    out = tmp_path / "scan.jsonl"
    result = runner.invoke(app, ["scan", str(root), "-o", str(out), "--device", "cpu",
                                 "--fail-on", "never", "--no-progress"])
    assert result.exit_code == 0, result.output
    lines = out.read_bytes().decode("utf-8").splitlines()  # strict UTF-8: no raw surrogates
    records = [json.loads(line) for line in lines]
    assert sorted(os.path.relpath(r["path"], root) for r in records) == sorted(expected)
    by_name = {os.path.relpath(r["path"], root): r for r in records}
    for name, expect in expected.items():
        assert by_name[name]["status"] == expect.status, (name, by_name[name]["error"])
    assert by_name["locked.jpg"]["error"] == "permission denied"
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.endswith(f"{sum(e.status == 'error' for e in expected.values())} error")


def test_files_swapped_after_listing_are_refused_not_followed(screener: Screener, tmp_path: Path,
                                                              samples: Path) -> None:
    """Between listing and reading, a photo becomes a FIFO, a link to a file outside the
    tree, or a folder on the way becomes a link outside: none is read, none blocks."""
    outside = tmp_path / "outside"
    outside.mkdir()
    face = (samples / "astronaut.png").read_bytes()
    (outside / "secret.png").write_bytes(face)
    (outside / "sub").mkdir()
    (outside / "sub" / "b.png").write_bytes(face)
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    for name in ("fifo.png", "link.png", "kept.png", "sub/b.png"):
        (root / name).write_bytes(face)
    items = list(iter_inputs([root]))
    assert [i.error for i in items] == [None] * 4
    (root / "fifo.png").unlink()
    os.mkfifo(root / "fifo.png")
    (root / "link.png").unlink()
    (root / "link.png").symlink_to(outside / "secret.png")
    (root / "sub" / "b.png").unlink()
    (root / "sub").rmdir()
    (root / "sub").symlink_to(outside / "sub", target_is_directory=True)
    reports = {os.path.relpath(r.path, root): r for r in screener.scan_inputs(items)}
    assert reports["kept.png"].status == "ok"
    assert "not a regular file" in reports["fifo.png"].error
    assert "outside the scanned folder" in reports["link.png"].error
    assert "outside the scanned folder" in reports["sub/b.png"].error
    # Refused before opening: no stamp. The FIFO was opened and judged by fstat: its stamp.
    assert reports["link.png"].file is None and reports["sub/b.png"].file is None
    assert reports["fifo.png"].file is not None and reports["fifo.png"].file["size"] == 0


def test_read_file_refuses_a_descriptor_outside_its_root(tmp_path: Path) -> None:
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    (outside / "a.png").write_bytes(b"x")
    with pytest.raises(ImageLoadError, match="outside"):
        read_file(outside / "a.png", root=inside.resolve())
    read = read_file(outside / "a.png")
    assert read.data == b"x" and read.stamp["sha256"] == hashlib.sha256(b"x").hexdigest()


def test_a_fifo_swapped_in_after_the_lstat_is_refused_by_fstat_without_blocking(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race the descriptor check exists for: the path was a regular file when looked at
    (lstat), and is a FIFO nobody writes to when opened. O_NONBLOCK returns at once and
    fstat on the descriptor refuses it."""
    regular = tmp_path / "was_a_photo.jpg"
    regular.write_bytes(b"\xff\xd8")
    fifo = tmp_path / "now_a_fifo.jpg"
    os.mkfifo(fifo)
    real_lstat = os.lstat

    def looked_earlier(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        return real_lstat(regular) if os.fspath(path) == str(fifo) else real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", looked_earlier)
    with pytest.raises(ImageLoadError, match="not a regular file") as caught:
        read_file(fifo, root=tmp_path.resolve())
    assert caught.value.stamp is not None and caught.value.stamp["size"] == 0


def test_a_link_swapped_in_after_resolving_is_not_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The path was resolved while it was a plain file; by the time it is opened it is a link
    to a file outside: O_NOFOLLOW refuses it rather than reading the outside file."""
    secret = tmp_path / "outside.png"
    secret.write_bytes(b"\x89PNG secret")
    root = tmp_path / "tree"
    root.mkdir()
    link = root / "photo.png"
    link.symlink_to(secret)
    monkeypatch.setattr(os.path, "realpath", lambda path, strict=False: os.path.abspath(path))
    with pytest.raises(ImageLoadError, match="replaced by a symbolic link while scanning"):
        read_file(link, root=root.resolve())
    # And when the swap lands between that last look (lstat) and the open: O_NOFOLLOW.
    real_lstat = os.lstat
    monkeypatch.setattr(os, "lstat", lambda path, *a, **k: real_lstat(secret) if os.fspath(path) == str(link)
                        else real_lstat(path, *a, **k))
    with pytest.raises(ImageLoadError, match="replaced by a symbolic link while scanning"):
        read_file(link, root=root.resolve())
