"""The one reading rule for input files, and the walk that finds them.

Every file is read by :func:`read_file`, for the scan and for everything that reads an image
again later (report, evidence, campaign): opened once with ``O_NOFOLLOW`` and
``O_NONBLOCK``, checked with ``fstat`` on the open descriptor (a regular file, inside the
scanned tree), read whole and hashed. Whatever is swapped in after the check is never read.
Decoding those bytes is :mod:`ganscreen.images`' job, which re-exports the names here.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_FILE_BYTES",
    "OUTSIDE_MESSAGE",
    "FileRead",
    "ImageLoadError",
    "InputFile",
    "file_stamp",
    "input_stamp",
    "iter_inputs",
    "read_file",
]

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
)  # fmt: skip
# Larger files are refused before reading: a profile photo is a few megabytes.
MAX_FILE_BYTES = 256 * 2**20
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0))


class ImageLoadError(Exception):
    """An input could not be turned into an RGB image; the message is one line.

    ``stamp`` is the file's size and mtime when it was opened and judged by ``fstat``
    before being refused (an empty file, a FIFO), else ``None``.
    """

    stamp: dict[str, int | float | str] | None = None


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
