from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

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
