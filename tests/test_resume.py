"""Never lose a result: interrupted scans keep complete records and `scan --resume` finishes them.

The scan runs as a real subprocess (``python -m ganscreen scan``) that is killed with SIGKILL,
then resumed and stopped with SIGINT and SIGTERM, then resumed to the end. The whole story
runs once (module fixture); each test checks one promise about it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

from ganscreen.cli import app
from ganscreen.report import RecordWriter, Report, ResumeError, portable_text, read_output

# On a small machine shared with other work, torch's default thread pool can make each image
# many times slower; one thread keeps these tests fast and their timing predictable.
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SCORE_TOLERANCE = 1e-4
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- the scanned folder


def _make_folder(root: Path, samples: Path) -> list[Path]:
    """Fourteen inputs: face images of several sizes and formats, and three broken files
    placed among them, so every interruption lands in the middle of the scan."""
    root.mkdir()
    face = Image.open(samples / "astronaut.png").convert("RGB")
    made: list[Path] = []
    for i, size in enumerate((128, 144, 160, 176, 192, 208, 224, 240, 256, 272, 288)):
        variant = face.resize((size, size))
        if i % 2:
            variant = ImageOps.mirror(variant)
        path = root / f"{2 * i:02d}_face.{'png' if i % 3 == 0 else 'jpg'}"
        variant.save(path)
        made.append(path)
    (root / "03_empty.jpg").write_bytes(b"")
    (root / "07_text.jpg").write_text("not a picture\n")
    jpeg = (root / "02_face.jpg").read_bytes()
    (root / "11_truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    made += [root / "03_empty.jpg", root / "07_text.jpg", root / "11_truncated.jpg"]
    return sorted(made)


def _command(folder: Path, out: Path, *extra: str) -> list[str]:
    return ["scan", str(folder), "-o", str(out), "--no-progress", "--batch-size", "1", "--device", "cpu",
            "--fail-on", "never", *extra]


# The scan, run through a wrapper that holds it still after its N-th record: RecordWriter.write
# writes and flushes the record, says so on one pipe and waits on another until the test has
# sent its signal. The signal lands at a known point however fast or slow the machine is,
# so no timing is involved; the record is written inside the scan's own signal-deferring
# block, exactly where a real signal would most often find it.
GATED = """
import os, runpy, sys
from ganscreen import report

after, told, wait = (int(v) for v in os.environ["GANSCREEN_TEST_GATE"].split(","))
write = report.RecordWriter.write
written = 0

def gated(self, record):
    global written
    text = write(self, record)
    written += 1
    if written == after:
        os.write(told, b"!")
        os.read(wait, 1)  # returns when the test closes its end, after signalling
    return text

report.RecordWriter.write = gated
sys.argv = ["ganscreen", *sys.argv[1:]]
runpy.run_module("ganscreen", run_name="__main__", alter_sys=True)
"""


@dataclass
class Run:
    returncode: int
    stderr: str
    lines: list[bytes]  # the output file's lines after the run, the last one maybe torn


def _run(folder: Path, out: Path, *extra: str, stop_after: int | None = None,
         sig: int = signal.SIGKILL) -> Run:
    """Run a scan; with ``stop_after``, send ``sig`` once this run has written that many records."""
    if stop_after is None:
        proc = subprocess.Popen([sys.executable, "-m", "ganscreen", *_command(folder, out, *extra)],
                                env=SUBPROCESS_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _, stderr = proc.communicate()
        return Run(proc.returncode, stderr, out.read_bytes().splitlines(keepends=True))
    told_r, told_w = os.pipe()
    wait_r, wait_w = os.pipe()
    env = {**SUBPROCESS_ENV, "GANSCREEN_TEST_GATE": f"{stop_after},{told_w},{wait_r}"}
    try:
        proc = subprocess.Popen([sys.executable, "-c", GATED, *_command(folder, out, *extra)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                pass_fds=(told_w, wait_r))
    finally:
        os.close(told_w)
        os.close(wait_r)
    try:
        # Blocks until the scan has written its stop_after-th record, or has ended (end of file).
        reached = os.read(told_r, 1) == b"!"
        if reached:
            proc.send_signal(sig)
    finally:
        os.close(told_r)
        os.close(wait_w)  # lets a held scan go on, now with the signal pending
    _, stderr = proc.communicate()
    assert reached, (f"the scan ended (exit status {proc.returncode}) before writing {stop_after} "
                     f"records, so the signal could not land in the middle of it:\n{stderr}")
    return Run(proc.returncode, stderr, out.read_bytes().splitlines(keepends=True))


def _records(lines: list[bytes]) -> list[dict]:
    assert all(line.endswith(b"\n") for line in lines), "a line is torn"
    return [json.loads(line) for line in lines]


@dataclass
class Story:
    inputs: list[Path]
    fresh: Run
    killed: Run
    kept: list[bytes]  # the complete lines left before the torn one
    torn: bytes  # the half line left at the end of the file, as a killed write would
    resumed_sigint: Run
    resumed_sigterm: Run
    finished: Run


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> Story:
    base = tmp_path_factory.mktemp("resume")
    folder = base / "photos"
    inputs = _make_folder(folder, samples)
    fresh = _run(folder, base / "fresh.jsonl")
    out = base / "scan.jsonl"
    killed = _run(folder, out, stop_after=3, sig=signal.SIGKILL)
    # Tear the last complete record in half: what a SIGKILL in the middle of a write leaves
    # (a real torn line, if the kill made one, is replaced by this one).
    complete = [line for line in killed.lines if line.endswith(b"\n")]
    kept, torn = complete[:-1], complete[-1][: len(complete[-1]) // 2]
    out.write_bytes(b"".join(kept) + torn)
    # The first record a resumed scan writes is the torn one's, written again.
    resumed_sigint = _run(folder, out, "--resume", stop_after=2, sig=signal.SIGINT)
    resumed_sigterm = _run(folder, out, "--resume", stop_after=2, sig=signal.SIGTERM)
    finished = _run(folder, out, "--resume")
    return Story(inputs, fresh, killed, kept, torn, resumed_sigint, resumed_sigterm, finished)


# --------------------------------------------------------------------------- the subprocess story


def test_sigkill_leaves_complete_records_and_at_most_one_torn_line(story: Story) -> None:
    assert story.killed.returncode == -signal.SIGKILL
    complete = [line for line in story.killed.lines if line.endswith(b"\n")]
    assert len(complete) >= len(story.killed.lines) - 1
    assert len(complete) == 3, "the kill lands right after the third record"
    _records(complete)


@pytest.mark.parametrize("which, sig", [("resumed_sigint", signal.SIGINT),
                                        ("resumed_sigterm", signal.SIGTERM)])
def test_signal_stops_cleanly_with_a_one_line_message(story: Story, which: str, sig: int) -> None:
    run: Run = getattr(story, which)
    assert run.returncode == 128 + sig, run.stderr
    records = _records(run.lines)  # every line complete, every line JSON
    before = len(story.kept) if which == "resumed_sigint" else len(story.resumed_sigint.lines)
    # The signal came while the second record was being written: held until it was complete,
    # then the scan stopped without writing another.
    assert len(records) == before + 2 < len(story.inputs)
    message = [line for line in run.stderr.splitlines() if line.startswith("interrupted")]
    assert len(message) == 1, run.stderr
    assert signal.Signals(sig).name in message[0] and "--resume" in message[0]
    assert "Traceback" not in run.stderr


def test_resume_cuts_the_torn_line_and_says_so(story: Story) -> None:
    assert story.torn and not story.torn.endswith(b"\n"), "the story must leave a torn line"
    after = story.resumed_sigint.lines
    assert "torn last line" in story.resumed_sigint.stderr
    assert after[: len(story.kept)] == story.kept
    # The torn record's file was screened again: its whole record follows the kept ones.
    assert after[len(story.kept)].startswith(story.torn) and after[len(story.kept)].endswith(b"}\n")


def test_each_resume_appends_without_rewriting(story: Story) -> None:
    runs = [story.resumed_sigint, story.resumed_sigterm, story.finished]
    for before, after in zip(runs, runs[1:], strict=False):
        assert after.lines[: len(before.lines)] == before.lines
        assert len(after.lines) > len(before.lines)


def test_resumed_scan_has_one_record_per_file_equal_to_a_fresh_scan(story: Story) -> None:
    assert story.fresh.returncode == 0 and story.finished.returncode == 0, story.finished.stderr
    fresh = {r["path"]: r for r in _records(story.fresh.lines)}
    resumed = _records(story.finished.lines)
    assert Counter(r["path"] for r in resumed) == Counter(str(p) for p in story.inputs)
    assert set(fresh) == {str(p) for p in story.inputs}
    for record in resumed:
        expected = fresh[record["path"]]
        for key in ("status", "verdict", "error", "flags", "file"):
            assert record[key] == expected[key], (record["path"], key)
        if expected["score"] is None:
            assert record["score"] is None
        else:
            assert record["score"] == pytest.approx(expected["score"], abs=SCORE_TOLERANCE)
    assert {r["status"] for r in resumed} == {"ok", "error"}


# --------------------------------------------------------------------------- in-process CLI


def test_resume_without_output_file_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["scan", str(tmp_path), "--resume"])
    assert result.exit_code == 2
    assert "--resume needs -o" in result.stderr


def test_resume_refuses_a_file_that_is_not_a_scan(tmp_path: Path) -> None:
    out = tmp_path / "notes.jsonl"
    out.write_text('{"path": "a.jpg", "status": "ok"}\nnot json\n{"path": "b.jpg", "status": "ok"}\n')
    result = runner.invoke(app, ["scan", str(tmp_path), "-o", str(out), "--resume", "--device", "cpu"])
    assert result.exit_code == 2
    assert "line 2 is not JSON" in result.stderr
    assert out.read_text().count("\n") == 3, "a file we cannot resume must be left untouched"


def test_csv_resume_repairs_and_matches_a_fresh_scan(tmp_path: Path, samples: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    face = Image.open(samples / "astronaut.png").convert("RGB")
    for size in (128, 160, 192):
        face.resize((size, size)).save(folder / f"face {size}.jpg")
    (folder / "line\nbreak.png").write_bytes(b"")  # a quoted CSV field spanning two lines
    args = ["--format", "csv", "--device", "cpu", "--fail-on", "never", "--no-progress"]
    full, out = tmp_path / "full.csv", tmp_path / "scan.csv"
    assert runner.invoke(app, ["scan", str(folder), "-o", str(full), *args]).exit_code == 0
    data = full.read_bytes()
    cut = data.index(b"line\n") + len(b"line\n")  # torn right after the embedded newline
    out.write_bytes(data[:cut])
    result = runner.invoke(app, ["scan", str(folder), "-o", str(out), "--resume", *args])
    assert result.exit_code == 0, result.output
    assert "torn last line" in result.stderr
    assert sorted(out.read_bytes().split(b"\r\n")) == sorted(data.split(b"\r\n"))

    # A file touched since it was recorded is screened again, and its old record replaced.
    changed = folder / "face 160.jpg"
    os.utime(changed, (time.time() - 60, time.time() - 60))
    result = runner.invoke(app, ["scan", str(folder), "-o", str(out), "--resume", *args])
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_bytes().decode("utf-8"), newline="")))
    assert Counter(r["path"] for r in rows)[str(changed)] == 1
    assert [r["path"] for r in rows] == sorted(str(p) for p in folder.iterdir())
    assert next(r for r in rows if r["path"] == str(changed))["file_mtime"] == str(round(changed.stat().st_mtime, 3))


# --------------------------------------------------------------------------- reading back


def _jsonl(reports: list[Report]) -> bytes:
    buf = io.StringIO()
    writer = RecordWriter(buf, "jsonl")
    for report in reports:
        writer.write(report)
    return buf.getvalue().encode("utf-8")


def _report(path: str, size: int = 10, mtime: float = 1.5) -> Report:
    return Report(path=path, status="error", error="truncated image file",
                  file={"size": size, "mtime": mtime})


def test_read_output_stops_before_a_torn_last_line(tmp_path: Path) -> None:
    data = _jsonl([_report("a.jpg"), _report("b.jpg")])
    path = tmp_path / "scan.jsonl"
    path.write_bytes(data + b'{"path": "c.jpg", "sta')
    existing = read_output(path, "jsonl", check_columns=[])
    assert [r.path for r in existing.records] == ["a.jpg", "b.jpg"]
    assert existing.complete_bytes == len(data) and existing.torn_bytes == 22
    assert existing.records[0].key == ("a.jpg", 10, 1.5, None)
    assert existing.records[1].text == data.decode("utf-8").splitlines(keepends=True)[1]


def test_read_output_refuses_damage_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "scan.jsonl"
    path.write_bytes(_jsonl([_report("a.jpg")]) + b"\x00\x00\n" + _jsonl([_report("b.jpg")]))
    with pytest.raises(ResumeError, match="line 2"):
        read_output(path, "jsonl", check_columns=[])


def test_undecodable_file_names_survive_json_and_csv(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.jpg")  # Latin-1 bytes: not UTF-8, so Python holds a surrogate
    line = _report(name).to_json()
    line.encode("utf-8")  # writable to any UTF-8 stream
    assert json.loads(line)["path"] == name  # and exact: the bytes come back
    for fmt in ("jsonl", "csv"):
        path = tmp_path / f"scan.{fmt}"
        with path.open("w", encoding="utf-8", newline="") as fh:
            RecordWriter(fh, fmt).write(_report(name))
        [record] = read_output(path, fmt, check_columns=[]).records
        assert record.path == portable_text(name)


def test_csv_torn_header_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "scan.csv"
    path.write_bytes(b"path,status,err")
    existing = read_output(path, "csv", check_columns=[])
    assert existing.records == [] and existing.complete_bytes == 0


# --------------------------------------------------------------------------- exact resume


def _faces(folder: Path, samples: Path, sizes: tuple[int, ...] = (128, 160, 192)) -> list[Path]:
    folder.mkdir()
    face = Image.open(samples / "astronaut.png").convert("RGB")
    paths = []
    for size in sizes:
        path = folder / f"face_{size}.png"
        face.resize((size, size)).save(path)
        paths.append(path)
    return paths


def _scan_args(folder: Path, out: Path, *extra: str) -> list[str]:
    return ["scan", str(folder), "-o", str(out), "--device", "cpu", "--fail-on", "never",
            "--no-progress", "--workers", "1", *extra]


def _jsonl_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_resume_after_edit_rescans_it_and_drops_the_old_and_the_vanished(tmp_path: Path,
                                                                         samples: Path) -> None:
    folder = tmp_path / "photos"
    first, edited, gone = _faces(folder, samples)
    out = tmp_path / "scan.jsonl"
    assert runner.invoke(app, _scan_args(folder, out)).exit_code == 0
    before = {r["path"]: r for r in _jsonl_records(out)}
    # Same size and modification time, other content: only the content hash can tell.
    stat = edited.stat()
    data = bytearray(edited.read_bytes())
    data[-20] ^= 0xFF  # inside the last chunk's CRC: still the same length
    edited.write_bytes(bytes(data))
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert edited.stat().st_size == stat.st_size
    gone.unlink()
    added = folder / "face_100.png"
    Image.open(first).resize((100, 100)).save(added)
    result = runner.invoke(app, _scan_args(folder, out, "--resume"))
    assert result.exit_code == 0, result.output
    after = _jsonl_records(out)
    assert [r["path"] for r in after] == [str(added), str(first), str(edited)]  # input order, once each
    by_path = {r["path"]: r for r in after}
    assert by_path[str(first)] == before[str(first)]  # unchanged: kept as it was
    assert by_path[str(edited)]["file"]["sha256"] != before[str(edited)]["file"]["sha256"]
    assert by_path[str(edited)]["status"] == "error"  # its CRC no longer matches
    assert "1 records of files that are gone dropped" in result.stderr
    assert not list(tmp_path.glob(".scan.jsonl.*")), "no temporary or lock file left behind"


def test_resume_into_the_output_of_other_inputs_exits_2_unless_forced(tmp_path: Path,
                                                                    samples: Path) -> None:
    one = _faces(tmp_path / "one", samples, (128,))
    two = _faces(tmp_path / "two", samples, (144,))
    out = tmp_path / "scan.jsonl"
    assert runner.invoke(app, _scan_args(tmp_path / "one", out)).exit_code == 0
    kept = out.read_bytes()
    result = runner.invoke(app, _scan_args(tmp_path / "two", out, "--resume"))
    assert result.exit_code == 2
    assert "made from other inputs" in result.stderr and "--force" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert out.read_bytes() == kept, "a refused resume leaves the file alone"
    result = runner.invoke(app, _scan_args(tmp_path / "two", out, "--resume", "--force"))
    assert result.exit_code == 0, result.output
    assert [r["path"] for r in _jsonl_records(out)] == [str(two[0])]
    assert one[0].exists()


def test_resume_of_records_from_another_model_version_exits_2_unless_forced(tmp_path: Path,
                                                                          samples: Path) -> None:
    [photo] = _faces(tmp_path / "photos", samples, (128,))
    out = tmp_path / "scan.jsonl"
    assert runner.invoke(app, _scan_args(tmp_path / "photos", out)).exit_code == 0
    [record] = _jsonl_records(out)
    current = record["model"]["version"]
    record["model"]["version"] = "ganscreen-0.0.1/old"
    out.write_text(json.dumps(record) + "\n")
    result = runner.invoke(app, _scan_args(tmp_path / "photos", out, "--resume"))
    assert result.exit_code == 2 and "model version ganscreen-0.0.1/old" in result.stderr
    result = runner.invoke(app, _scan_args(tmp_path / "photos", out, "--resume", "--force"))
    assert result.exit_code == 0, result.output
    [again] = _jsonl_records(out)
    assert again["model"]["version"] == current and again["path"] == str(photo)
