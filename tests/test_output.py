"""Outputs: real targets only, one writer at a time, whole files or nothing, one-line errors.

The lock test uses two real processes; the full-disk tests a 64 KiB tmpfs (mounting needs
root: without it, the disk filling up is simulated by a stream that raises ENOSPC). No test
ever writes to a device node.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganscreen import _output
from ganscreen._output import OutputBusy, OutputError, OutputLock, output_target, replace_file
from ganscreen.cli import app

runner = CliRunner()
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SCAN = ["--device", "cpu", "--fail-on", "never", "--no-progress", "--workers", "1"]


def _one_line_error(result, *needles: str) -> None:  # noqa: ANN001
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[-1], lines[-1]


# --------------------------------------------------------------------------- targets


def test_a_fifo_target_is_refused_and_left_a_fifo(tmp_path: Path, samples: Path) -> None:
    fifo = tmp_path / "out.jsonl"
    os.mkfifo(fifo)
    result = runner.invoke(app, ["scan", str(samples / "astronaut.png"), "-o", str(fifo), *SCAN])
    _one_line_error(result, "not a regular file")
    assert fifo.is_fifo()
    with pytest.raises(OutputError, match="not a regular file"):
        output_target(fifo)


def test_a_folder_target_or_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="is a folder"):
        output_target(tmp_path)
    with pytest.raises(OutputError, match="does not exist"):
        output_target(tmp_path / "no" / "out.jsonl")


def test_a_symlink_target_writes_the_file_it_leads_to(tmp_path: Path, samples: Path) -> None:
    real = tmp_path / "real.jsonl"
    real.write_text("")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    assert output_target(link) == real.resolve()
    result = runner.invoke(app, ["scan", str(samples / "astronaut.png"), "-o", str(link), *SCAN])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and json.loads(real.read_text())["path"].endswith("astronaut.png")
    assert f"note: {link} is a symbolic link: writing the file it leads to, {real.resolve()}" in result.stderr
    # The HTML page too: the link stays a link, the page lands in its target.
    page, page_link = tmp_path / "page.html", tmp_path / "page_link.html"
    page.write_text("old")
    page_link.symlink_to(page)
    result = runner.invoke(app, ["report", str(real), "-o", str(page_link), "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert page_link.is_symlink() and page.read_text().startswith("<!DOCTYPE html>")


def test_replace_file_is_all_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "page.html"
    target.write_text("old page")

    def fails(fh) -> None:  # noqa: ANN001
        fh.write("half a ")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError):
        replace_file(target, fails)
    assert target.read_text() == "old page"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]
    target.chmod(0o600)  # private results stay private when the file is replaced
    replace_file(target, lambda fh: fh.write("new page"))
    assert target.read_text() == "new page" and (target.stat().st_mode & 0o777) == 0o600


# --------------------------------------------------------------------------- the lock


_HOLDER = """
import sys
from pathlib import Path
from ganscreen._output import OutputLock
with OutputLock([Path(sys.argv[1])]):
    print("locked", flush=True)
    sys.stdin.readline()
"""


@contextlib.contextmanager
def _holder(target: Path) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(target)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=SUBPROCESS_ENV)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.communicate(timeout=60)  # closes its stdin (it lets go) and stdout


def test_a_second_writer_exits_2_naming_the_scan_that_holds_the_output(tmp_path: Path, samples: Path) -> None:
    out = tmp_path / "scan.jsonl"
    out.write_text("")
    with _holder(out.resolve()) as holder:
        result = subprocess.run([sys.executable, "-m", "ganscreen", "scan", str(samples), "-o", str(out), *SCAN],
                                capture_output=True, text=True, env=SUBPROCESS_ENV, check=False)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == (f"error: {out.resolve()} is being written by another scan "
                                         f"(pid {holder.pid})")
        assert out.read_text() == "", "the second writer wrote nothing"
        with pytest.raises(OutputBusy, match=f"pid {holder.pid}"):
            OutputLock([out.resolve()]).__enter__()
    # Released when its holder ends: the next writer gets it, and leaves no lock file behind.
    with OutputLock([out.resolve()]):
        assert _output.lock_path(out.resolve()).read_text().strip() == str(os.getpid())
    assert not _output.lock_path(out.resolve()).exists()


def test_a_running_scan_holds_its_output_and_the_html_sidecar(tmp_path: Path, samples: Path) -> None:
    page = tmp_path / "report.html"
    proc = subprocess.Popen([sys.executable, "-m", "ganscreen", "scan", str(samples), "-o", str(page),
                             "--format", "html", *SCAN], stderr=subprocess.PIPE, text=True, env=SUBPROCESS_ENV)
    try:
        locks = [_output.lock_path(page.resolve()), _output.lock_path(tmp_path.resolve() / "report.html.jsonl")]
        deadline = time.monotonic() + 120  # a guard against a hang, not a speed test
        # A lock file exists a moment before its flock is taken; its holder's pid is written
        # only after, so wait for the pid: then both outputs are held.
        held = f"{proc.pid}\n"
        while (not all(p.exists() and p.read_text() == held for p in locks) and proc.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.01)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        for target in (page, tmp_path / "report.html.jsonl"):
            with pytest.raises(OutputBusy, match=f"pid {proc.pid}"):
                OutputLock([target.resolve()]).__enter__()
    finally:
        _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert page.read_text().startswith("<!DOCTYPE html>")


# --------------------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, nearly full; skipped where mounting is not permitted (see the
    simulated test below, which covers the same path without a mount)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
        (mount / "filler").write_bytes(b"x" * max(0, free - 4096))  # one page left
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_exit_2(small_disk: Path, samples: Path) -> None:
    out = small_disk / "scan.jsonl"
    result = runner.invoke(app, ["scan", str(samples), "-o", str(out), *SCAN])
    _one_line_error(result, "No space left on device", "records written")
    assert "records written)" in result.stderr
    # Every record that made it is complete: the file ends on a newline or is a torn tail.
    lines = out.read_bytes().splitlines(keepends=True)
    assert all(json.loads(line) for line in lines if line.endswith(b"\n"))


def test_a_full_disk_leaves_an_existing_page_whole(small_disk: Path, samples: Path, tmp_path: Path) -> None:
    records = tmp_path / "scan.jsonl"
    assert runner.invoke(app, ["scan", str(samples), "-o", str(records), *SCAN]).exit_code == 0
    page = small_disk / "report.html"
    page.write_text("the old page")
    result = runner.invoke(app, ["report", str(records), "-o", str(page), "--device", "cpu", "--no-progress"])
    _one_line_error(result, "No space left on device")
    assert page.read_text() == "the old page"
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "report.html"]


def test_a_write_error_simulated_in_process_is_one_line_and_exit_2(tmp_path: Path, samples: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC without a mount: the record writer's stream fails on its second record."""
    from ganscreen.report import RecordWriter

    real_write = RecordWriter.write

    def full(self, report):  # noqa: ANN001, ANN202
        if self.count >= 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(self, report)

    monkeypatch.setattr(RecordWriter, "write", full)
    out = tmp_path / "scan.jsonl"
    result = runner.invoke(app, ["scan", str(samples), "-o", str(out), *SCAN])
    _one_line_error(result, f"cannot write {out}: No space left on device (1 records written)")
    assert len(out.read_text().splitlines()) == 1


def test_report_refuses_a_fifo_page_in_one_line(tmp_path: Path) -> None:
    records = tmp_path / "scan.jsonl"
    records.write_text(json.dumps({"path": "gone.jpg", "status": "error", "error": "file not found"}) + "\n")
    fifo = tmp_path / "page.html"
    os.mkfifo(fifo)
    result = runner.invoke(app, ["report", str(records), "-o", str(fifo), "--device", "cpu", "--no-progress"])
    _one_line_error(result, f"refusing to write {fifo}: it is not a regular file")
    assert fifo.is_fifo()


def test_report_and_campaign_refuse_a_fifo_as_records_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "scan.jsonl"
    os.mkfifo(fifo)  # nobody writes to it: opening it the usual way would wait forever
    result = runner.invoke(app, ["report", str(fifo), "-o", str(tmp_path / "r.html"), "--device", "cpu",
                                 "--no-progress"])
    _one_line_error(result, f"cannot read {fifo}: not a regular file")
    result = runner.invoke(app, ["campaign", "--from-scan", str(fifo), "--no-progress"])
    _one_line_error(result, f"cannot read {fifo}: not a regular file")
