from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganscreen.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def scan_samples(samples):  # noqa: ANN001, ANN201
    result = runner.invoke(app, ["scan", str(samples), "--device", "cpu", "--fail-on", "never"])
    assert result.exit_code == 0, result.output
    return result


def test_help_explains_every_option() -> None:
    result = runner.invoke(app, ["scan", "--help"])
    assert result.exit_code == 0
    for option in ("--output", "--format", "--device", "--fail-on", "--batch-size",
                   "--all-files", "--follow-symlinks", "--progress"):
        assert option in result.output


def test_jsonl_to_stdout_one_record_per_file(scan_samples, samples) -> None:  # noqa: ANN001
    lines = scan_samples.stdout.splitlines()
    records = [json.loads(line) for line in lines]
    images = sorted(p for p in samples.iterdir() if p.suffix in (".png", ".jpg"))
    assert [r["path"] for r in records] == [str(p) for p in images]
    by_name = {r["path"].rsplit("/", 1)[1]: r for r in records}
    assert by_name["broken_truncated.jpg"]["status"] == "error"
    assert by_name["chelsea_no_face.jpg"]["status"] == "no_face"
    assert by_name["astronaut.png"]["verdict"] == "real"
    assert "ffhq_alignment" in by_name["astronaut_ffhq_aligned.jpg"]["flags"]
    # Progress and the summary go to stderr, never into the records.
    assert "scanning" in scan_samples.stderr and "error" in scan_samples.stderr


def test_exit_codes_follow_fail_on(scan_samples, samples) -> None:  # noqa: ANN001
    records = [json.loads(line) for line in scan_samples.stdout.splitlines()]
    verdicts = {r["path"]: r["verdict"] for r in records}
    paths = list(verdicts)
    expected = {
        "gan": 1 if "gan" in verdicts.values() else 0,
        "uncertain": 1 if {"gan", "uncertain"} & set(verdicts.values()) else 0,
        "never": 0,
    }
    assert expected["uncertain"] == 1  # the samples include faces the tool will not clear
    for level, code in expected.items():
        assert runner.invoke(app, ["scan", *paths, "--fail-on", level, "--no-progress"]).exit_code == code
    # Photos judged real, a no-face photo and a broken file: nothing to fail on.
    clean = [p for p, v in verdicts.items() if v in ("real", None)]
    assert any(v == "real" for p, v in verdicts.items() if p in clean)
    assert runner.invoke(app, ["scan", *clean, "--fail-on", "uncertain"]).exit_code == 0


def test_usage_errors_exit_2(samples, tmp_path) -> None:  # noqa: ANN001
    assert runner.invoke(app, ["scan"]).exit_code == 2
    assert runner.invoke(app, ["scan", str(samples), "--format", "xml"]).exit_code == 2
    unwritable = tmp_path / "no" / "such" / "dir" / "out.jsonl"
    result = runner.invoke(app, ["scan", str(samples), "-o", str(unwritable)])
    assert result.exit_code == 2 and "cannot write" in result.stderr


def test_csv_output_file(samples, tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "scan.csv"
    result = runner.invoke(app, ["scan", str(samples), "-o", str(out), "--format", "csv",
                                 "--fail-on", "never", "--no-progress"])
    assert result.exit_code == 0 and result.stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 8
    assert {"path", "status", "score", "verdict", "reason", "flags", "geometry.eye_error"} <= set(rows[0])
    assert all(row["reason"] for row in rows)  # every row says why
    aligned = next(r for r in rows if r["path"].endswith("astronaut_ffhq_aligned.jpg"))
    assert "ffhq_alignment" in aligned["flags"].split(";") and float(aligned["geometry.eye_error"]) < 0.03


def test_python_dash_m_entry_point() -> None:
    result = subprocess.run([sys.executable, "-m", "ganscreen", "--version"], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith("ganscreen ")


def test_a_missing_path_exits_2_after_recording_what_exists(samples, tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "scan.jsonl"
    missing = tmp_path / "typo"
    result = runner.invoke(app, ["scan", str(samples / "astronaut.png"), str(missing), "-o", str(out),
                                 "--device", "cpu", "--fail-on", "never", "--no-progress"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: no such file or folder: {missing} (records written for the other inputs)")
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok", "error"] and records[1]["error"] == "file not found"
    # Even when nothing would be flagged: a mistyped path must not pass a CI step.
    assert runner.invoke(app, ["scan", str(missing), "--fail-on", "never", "--no-progress"]).exit_code == 2


def test_no_input_found_exits_2(tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "notes.txt").write_text("not an image suffix")
    result = runner.invoke(app, ["scan", str(tmp_path), "--device", "cpu", "--fail-on", "never", "--no-progress"])
    assert result.exit_code == 2 and "no input files found in" in result.stderr
    assert result.stdout == ""


def test_a_terminal_gets_a_table_and_the_flagged_files_by_name(scan_samples, samples,  # noqa: ANN001
                                                               monkeypatch) -> None:  # noqa: ANN001
    from ganscreen import cli

    monkeypatch.setattr(cli, "_stdout_is_terminal", lambda: True)
    result = runner.invoke(app, ["scan", str(samples), "--device", "cpu", "--fail-on", "never", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "{" not in result.stdout, "no JSON for a person at a terminal"
    header = result.stdout.splitlines()[0].split()
    assert header == ["file", "verdict", "score", "flags"]
    records = [json.loads(line) for line in scan_samples.stdout.splitlines()]
    flagged = [r["path"] for r in records if r["verdict"] in ("gan", "uncertain")]
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"flagged ({len(flagged)}): ")
    for path in flagged:
        assert path in summary
    assert "FFHQ-aligned eyes" in result.stdout  # flags in words, not identifiers
    # Asked for explicitly, JSON Lines it is, terminal or not.
    asked = runner.invoke(app, ["scan", str(samples / "astronaut.png"), "--format", "jsonl", "--device", "cpu",
                                "--no-progress"])
    assert json.loads(asked.stdout)["path"].endswith("astronaut.png")


def test_help_does_not_import_torch_and_shows_brackets() -> None:
    code = ("import sys; from typer.testing import CliRunner; from ganscreen.cli import app; "
            "r = CliRunner().invoke(app, ['scan', '--help']); "
            "print('torch' in sys.modules, \"'ganscreen[ray]'\" in r.output, r.exit_code)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.split() == ["False", "True", "0"], result.stderr


def test_debug_adds_the_traceback_to_the_one_line_message(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from ganscreen import cli

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("something unforeseen")

    monkeypatch.setattr(cli, "_scan", broken)
    plain = runner.invoke(app, ["scan", str(tmp_path)])
    assert plain.exit_code == 2 and plain.stderr.strip() == "error: RuntimeError: something unforeseen"
    debug = runner.invoke(app, ["--debug", "scan", str(tmp_path)])
    assert debug.exit_code == 2 and "Traceback" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == "error: RuntimeError: something unforeseen"
    cli._State.debug = False


def test_max_memory_takes_sizes_and_refuses_nonsense(samples, monkeypatch) -> None:  # noqa: ANN001
    from ganscreen import cli, pipeline

    assert cli._parse_bytes("4G") == 4 * 2**30 and cli._parse_bytes("512MiB") == 512 * 2**20
    assert cli._parse_bytes("1.5k") == 1536 and cli._parse_bytes(None) is None
    bad = runner.invoke(app, ["scan", str(samples), "--max-memory", "lots"])
    assert bad.exit_code == 2 and "not a size such as 4G" in bad.stderr
    seen = {}
    real_init = pipeline.Screener.__init__

    def spy(self, **kwargs):  # noqa: ANN001, ANN003, ANN202
        real_init(self, **kwargs)
        seen.update(workers=self.workers, budget=self.max_memory)

    monkeypatch.setattr(pipeline.Screener, "__init__", spy)
    result = runner.invoke(app, ["scan", str(samples / "astronaut.png"), "--max-memory", "1200M", "--workers", "8",
                                 "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert seen == {"workers": 1, "budget": 1200 * 2**20}  # 1 GB for the models leaves one worker


def test_report_says_it_left_out_a_torn_last_line(samples: Path, tmp_path: Path) -> None:
    records = tmp_path / "scan.jsonl"
    result = runner.invoke(app, ["scan", str(samples / "astronaut.png"), "-o", str(records), "--device", "cpu",
                                 "--fail-on", "never", "--no-progress"])
    assert result.exit_code == 0, result.output
    with records.open("a", encoding="utf-8") as fh:
        fh.write('{"path": "cut off')  # a scan killed in the middle of a record
    page = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(records), "-o", str(page), "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "note: " in said and "ends in a torn line (line 2," in said and "left out" in said
    assert page.read_text().count('class="card') >= 1
