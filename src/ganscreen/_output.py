"""Output files: where they really go, who may write them, and how they are replaced.

- :func:`output_target` decides what writing ``-o PATH`` touches: a regular file (existing
  or new). A symbolic link is followed (the file it leads to is written, the link stays);
  devices, FIFOs, sockets and folders are refused, so ``-o /dev/full`` cannot replace a
  device node.
- :class:`OutputLock` holds an exclusive OS lock (``fcntl.flock``) for a scan's whole life
  on a lock file beside each output, holding the writer's pid: a second scan writing the
  same file stops at once with :class:`OutputBusy` instead of interleaving records.
- :func:`open_records` opens a records file to read back, refusing FIFOs and devices.
- :func:`replace_file` writes a whole file to a temporary file in the same folder and
  renames it over the target, so a reader sees the old file or the new one, never half.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # not POSIX: no locking, the rest works
    fcntl = None  # type: ignore[assignment]


class OutputError(OSError):
    """An output that must not or cannot be written; the message is one line."""


class OutputBusy(OutputError):
    """Another scan holds the lock of an output."""


def output_target(path: Path) -> Path:
    """The file that writing ``path`` replaces or creates (a symlink's target).

    Raises :class:`OutputError` for anything but a regular file or a missing one in an
    existing folder.
    """
    target = Path(os.path.realpath(path))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        if not target.parent.is_dir():
            raise OutputError(f"cannot write {path}: its folder {target.parent} does not exist") from None
        return target
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"cannot write {path}: it is a folder")
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"refusing to write {path}: it is not a regular file (a device, FIFO or "
                          "socket); give a file path")
    return target


def open_records(path: Path) -> IO[bytes]:
    """Open a records file to read, refusing (without blocking) anything but a regular file:
    ``ganscreen report FIFO`` must not wait forever for a writer."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OutputError("not a regular file (a FIFO, device or socket)")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock")


class OutputLock:
    """Exclusive locks on outputs (resolved targets) for as long as the ``with`` block runs."""

    def __init__(self, targets: Iterable[Path]) -> None:
        self.targets = list(dict.fromkeys(targets))
        self._held: list[tuple[Path, int]] = []

    def __enter__(self) -> OutputLock:
        try:
            for target in self.targets:
                self._held.append((lock_path(target), self._acquire(target)))
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    @staticmethod
    def _acquire(target: Path) -> int:
        path = lock_path(target)
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0),
                             0o644)
            except OSError as exc:
                raise OutputError(f"cannot lock {target} (lock file {path}): {exc.strerror or exc}") from None
            if fcntl is None:
                return fd
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                who = f" (pid {pid})" if pid else ""
                raise OutputBusy(f"{target} is being written by another scan{who}") from None
            # The holder before us may have removed the lock file after we opened it: a lock
            # on a file no longer at ``path`` protects nothing, so take the new one.
            try:
                same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode("ascii"))
                return fd
            os.close(fd)

    def release(self) -> None:
        while self._held:
            path, fd = self._held.pop()
            with contextlib.suppress(OSError):
                path.unlink()  # removed while still locked: the next scan makes a fresh one
            with contextlib.suppress(OSError):
                os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


def replace_file(target: Path, write: Callable[[IO[str]], object], *, newline: str | None = "",
                 errors: str = "strict") -> None:
    """Write ``target`` whole: ``write`` fills a temporary file in the same folder, which is
    then synced and renamed over ``target`` (``target`` as :func:`output_target` gives it).
    On any failure the temporary file is removed and ``target`` is left as it was."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline, errors=errors) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, _mode_for(target))  # mkstemp makes it 0600
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _mode_for(target: Path) -> int:
    """The permissions the replacement gets: the replaced file's, or what ``open`` gives."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        mask = os.umask(0)  # read the umask (there is no other way); restored at once
        os.umask(mask)
        return 0o666 & ~mask
