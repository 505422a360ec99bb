"""The check registry: a check is one module's spec, and everything else iterates it.

The toy check here is registered by the test alone (no other file knows it), and must then
appear in every output: JSON Lines, CSV, the HTML report and the evidence files.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ganscreen.checks import (
    BatchedCheck,
    CheckContext,
    CheckResult,
    CheckSpec,
    Drawing,
    DrawingCheck,
    Flag,
    Presentation,
    build_checks,
    csv_columns,
    flags,
    register,
    registered,
    unregister,
)
from ganscreen.cli import app

runner = CliRunner()
TOY_FLAG = "toy_bright_face"


class ToyCheck:
    """Scores a face by its mean brightness and draws its box in red."""

    name = "toy"

    def run(self, ctx: CheckContext) -> CheckResult:
        if ctx.face is None:
            return CheckResult(score=None, reason="no face")
        x1, y1, x2, y2 = (max(0, int(v)) for v in ctx.face.box)
        brightness = float(ctx.image[y1:y2, x1:x2].mean() / 255)
        return CheckResult(score=brightness, measures={"brightness": brightness}, flags=(TOY_FLAG,))

    def draw(self, ctx: CheckContext) -> Drawing:
        canvas = ctx.image.copy()
        canvas[:4] = (255, 0, 0)
        return Drawing(image=canvas, measures=(("toy drawing marker", "drawn-by-toy"),))


TOY = CheckSpec(
    name="toy",
    build=lambda device="cpu": ToyCheck(),
    flags=(Flag(TOY_FLAG, description="toy flag: the face is bright", words="toy words",
                campaign="are toy-bright"),),
    csv_columns=("score", "brightness"),
    presentation=Presentation(title="Toy: how bright is the face?", labels={"brightness": "toy brightness"},
                              legend="Toy legend: a red bar on top.", file="toy.png",
                              file_legend="toy file legend"),
)


@pytest.fixture
def toy() -> Iterator[CheckSpec]:
    register(TOY)
    try:
        yield TOY
    finally:
        unregister(TOY.name)


def test_shipped_checks_declare_themselves() -> None:
    specs = registered()
    assert [s.name for s in specs] == ["geometry", "glasses", "backdrop", "cnn"]
    assert list(flags()) == ["ffhq_alignment", "ffhq_recrop", "glasses_asymmetry", "backdrop_distortion", "cnn_artifacts"]
    assert all(s.presentation is not None and s.presentation.file for s in specs)
    checks = build_checks("cpu")
    assert [c.name for c in checks] == [s.name for s in specs]
    # Batching is a typed protocol: only the model-holding CNN batches; every check draws.
    assert [isinstance(c, BatchedCheck) for c in checks] == [False, False, False, True]
    assert all(isinstance(c, DrawingCheck) for c in checks)


def test_a_name_registers_once(toy: CheckSpec) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(toy)
    with pytest.raises(ValueError, match="already registered"):
        register(CheckSpec(name="geometry", build=lambda device="cpu": ToyCheck()))


def test_unregistered_toy_is_gone() -> None:
    assert "toy" not in [s.name for s in registered()]
    assert not any(c.startswith("toy.") for c in csv_columns())


def test_a_registered_check_reaches_every_output(toy: CheckSpec, samples: Path, tmp_path: Path) -> None:
    photo = str(samples / "astronaut.png")
    common = ["--device", "cpu", "--fail-on", "never", "--no-progress", "--workers", "1"]

    jsonl = tmp_path / "scan.jsonl"
    assert runner.invoke(app, ["scan", photo, "-o", str(jsonl), *common]).exit_code == 0
    [record] = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert list(record["checks"]) == ["geometry", "glasses", "backdrop", "cnn", "toy"]
    assert 0 < record["checks"]["toy"]["brightness"] == record["checks"]["toy"]["score"] < 1
    assert TOY_FLAG in record["flags"]

    table = tmp_path / "scan.csv"
    assert runner.invoke(app, ["scan", photo, "-o", str(table), "--format", "csv", *common]).exit_code == 0
    with table.open(newline="") as fh:
        [row] = list(csv.DictReader(fh))
    assert float(row["toy.brightness"]) == pytest.approx(record["checks"]["toy"]["brightness"], abs=1e-4)
    assert TOY_FLAG in row["flags"].split(";")

    page, evidence = tmp_path / "report.html", tmp_path / "evidence"
    result = runner.invoke(app, ["scan", photo, "-o", str(page), "--format", "html",
                                 "--evidence-dir", str(evidence), *common])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    for text in ("Toy: how bright is the face?", "toy brightness", "Toy legend: a red bar on top.",
                 "toy flag: the face is bright", "drawn-by-toy"):
        assert text in html
    [folder] = list(evidence.iterdir())
    drawn = folder / "toy.png"
    assert drawn.is_file()
    from PIL import Image

    with Image.open(drawn) as img:
        assert np.asarray(img.convert("RGB"))[0, 0].tolist() == [255, 0, 0]
    legend = (folder / "evidence.txt").read_text()
    assert "toy.png: toy file legend" in legend and "toy drawing marker: drawn-by-toy" in legend
    assert f"flag {TOY_FLAG}: toy flag: the face is bright" in legend


def test_resuming_a_csv_made_with_other_checks_is_refused_clearly(toy: CheckSpec, samples: Path,
                                                                   tmp_path: Path) -> None:
    common = ["--device", "cpu", "--fail-on", "never", "--no-progress", "--format", "csv"]
    table = tmp_path / "scan.csv"
    assert runner.invoke(app, ["scan", str(samples / "astronaut.png"), "-o", str(table), *common]).exit_code == 0
    unregister(toy.name)
    result = runner.invoke(app, ["scan", str(samples), "-o", str(table), "--resume", *common])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "toy.score" in message and "toy.brightness" in message and "new file" in message
