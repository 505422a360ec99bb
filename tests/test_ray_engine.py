"""The Ray engine gives the local engine's records, survives bad files and killed actors.

Runs on a local Ray instance started (``num_cpus=2``) and stopped by this module.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import ray
import ray.data
from typer.testing import CliRunner

from ganscreen import Screener
from ganscreen._options import ScanOptions
from ganscreen.cli import app
from ganscreen.images import InputFile, iter_inputs
from ganscreen.ray_engine import RECORD_SCHEMA, ScreenBatch, inputs_dataset, screen_dataset

runner = CliRunner()

# Deadlines for waits on Ray: generous, so a loaded machine never trips them; only a hang
# (an actor never started, never killed, never restarted) should.
WAIT_S = 600.0

GOOD = ("astronaut.png", "astronaut_ffhq_aligned.jpg", "astronaut_exif_rotated.jpg", "chelsea_no_face.jpg")


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> Path:
    """Sample photos and the files that break pipelines: truncated, empty, not an image."""
    folder = tmp_path_factory.mktemp("photos")
    for name in (*GOOD, "broken_truncated.jpg"):
        shutil.copy(samples / name, folder / name)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("not an image, whatever the suffix says\n")
    (folder / "nested").mkdir()
    (folder / "nested" / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(3000))
    return folder


@pytest.fixture(scope="module")
def local_records(screener: Screener, photos: Path, one_torch_thread: None) -> dict[str, dict[str, Any]]:
    # One torch thread, as in each actor (Ray gives an actor as many threads as its CPUs).
    return by_path(report.to_record() for report in screener.scan(photos))


def by_path(records: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for record in records:
        assert record["path"] not in out, f"duplicate record for {record['path']}"
        out[record["path"]] = record
    return out


def assert_same(ray_value: Any, local_value: Any, where: str = "") -> None:
    """Equal records; floats equal to 2e-4 (scores) or 1e-3 (measures).

    Actors run torch on one thread and batch rows as they arrive, so the last digits of
    the arithmetic may differ from the local engine's; verdicts and flags may not.
    """
    if isinstance(local_value, float) and isinstance(ray_value, float):
        tolerance = 2e-4 if where.endswith("score") else 1e-3
        assert ray_value == pytest.approx(local_value, abs=tolerance), where
    elif isinstance(local_value, dict):
        assert isinstance(ray_value, dict) and list(ray_value) == list(local_value), where
        for key in local_value:
            assert_same(ray_value[key], local_value[key], f"{where}.{key}")
    elif isinstance(local_value, list):
        assert isinstance(ray_value, list) and len(ray_value) == len(local_value), where
        for i, (a, b) in enumerate(zip(ray_value, local_value, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert ray_value == local_value, where


def assert_same_records(ray_records: dict[str, dict], local: dict[str, dict]) -> None:
    assert sorted(ray_records) == sorted(local)
    for path, record in local.items():
        assert_same(ray_records[path], record, path)


def records_of(ds: ray.data.Dataset) -> list[dict[str, Any]]:
    return [json.loads(row["record"]) for row in ds.take_all()]


# --------------------------------------------------------------------------- screen_dataset


def test_bytes_rows_give_the_local_engines_records(photos: Path, local_records: dict) -> None:
    ds = ray.data.read_binary_files(str(photos), include_paths=True)
    screened = screen_dataset(ds, options=ScanOptions(device="cpu", batch_size=3), actors=1).materialize()
    assert screened.schema().base_schema == RECORD_SCHEMA
    rows = screened.take_all()
    records = by_path(json.loads(row["record"]) for row in rows)
    assert_same_records(records, local_records)
    statuses = {Path(p).name: r["status"] for p, r in records.items()}
    assert statuses == {"astronaut.png": "ok", "astronaut_ffhq_aligned.jpg": "ok",
                        "astronaut_exif_rotated.jpg": "ok", "chelsea_no_face.jpg": "no_face",
                        "broken_truncated.jpg": "error", "empty.jpg": "error", "notes.png": "error",
                        "garbage.jpg": "error"}
    # The flat columns say what the record says.
    for row in rows:
        record = json.loads(row["record"])
        assert (row["path"], row["status"], row["verdict"], row["error"], list(row["flags"])) == (
            record["path"], record["status"], record["verdict"], record["error"], record["flags"])
        assert row["score"] == record["score"] or (row["score"] is None and record["score"] is None)
        assert (row["file_size"], row["file_mtime"]) == (record["file"]["size"], record["file"]["mtime"])


def test_path_rows_report_unreadable_inputs_as_the_local_engine_does(
        screener: Screener, photos: Path, tmp_path: Path) -> None:
    odd = tmp_path / os.fsdecode(b"caf\xe9.jpg")  # a name that is not UTF-8
    shutil.copy(photos / "astronaut.png", odd)
    inputs = [*iter_inputs([photos]), InputFile(odd), InputFile(tmp_path / "missing.jpg"),
              InputFile(tmp_path), InputFile(photos / "astronaut.png", error="refused by discovery")]
    local = [r.to_record() for r in screener.scan_inputs(inputs)]
    screened = screen_dataset(inputs_dataset(inputs, rows_per_block=2), options=ScanOptions(device="cpu", batch_size=2))
    records = records_of(screened)
    # The same file twice (once refused) and the odd name: compare as sorted lists.
    key = lambda r: (r["path"], r["status"], r["error"] or "")  # noqa: E731
    assert len(records) == len(local)
    for ray_record, local_record in zip(sorted(records, key=key), sorted(local, key=key), strict=True):
        assert_same(ray_record, local_record, ray_record["path"])
    errors = {r["path"]: r["error"] for r in records if r["status"] == "error"}
    assert errors[str(tmp_path / "missing.jpg")] == "file not found"
    assert errors[str(tmp_path)] == "is a directory, not an image file"
    assert "refused by discovery" in errors.values()
    assert next(r for r in records if r["path"] == str(odd))["status"] == "ok"


def test_image_rows_from_read_images(photos: Path, local_records: dict, tmp_path: Path) -> None:
    for name in ("astronaut.png", "astronaut_ffhq_aligned.jpg"):
        shutil.copy(photos / name, tmp_path / name)
    ds = ray.data.read_images(str(tmp_path), include_paths=True)
    records = by_path(records_of(screen_dataset(ds, options=ScanOptions(device="cpu", batch_size=2))))
    assert len(records) == 2
    for path, record in records.items():
        local = local_records[str(photos / Path(path).name)]
        # Ray decoded the pixels, so the container format is unknown; the verdict is the same.
        assert record["image"] == {**local["image"], "format": None}
        assert (record["status"], record["verdict"], record["flags"]) == (
            local["status"], local["verdict"], local["flags"])
        assert record["score"] == pytest.approx(local["score"], abs=1e-3)


def test_cuda_without_gpus_is_refused() -> None:
    with pytest.raises(ValueError, match="num_gpus"):
        screen_dataset(ray.data.from_items([{"path": "x.jpg"}]), options=ScanOptions(device="cuda"), num_gpus=0)


def test_actors_screen_one_batch_at_a_time_with_the_options_given() -> None:
    actor = ScreenBatch(options=ScanOptions(device="cpu", batch_size=3, workers=4, torch_threads=2,
                                            robustness=True))
    screener = actor.screener
    assert (screener.batch_size, screener.workers, screener.plan.torch_threads) == (3, 1, None)
    assert screener.options.robustness is True


# --------------------------------------------------------------------------- killed actor


def dies_once(marker: Path) -> type[ScreenBatch]:
    """A ScreenBatch whose first call, in the first actor only, waits to be killed."""

    class DiesOnce(ScreenBatch):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            with (marker / "starts").open("a") as fh:
                fh.write(f"{os.getpid()}\n")

        def __call__(self, batch: Any) -> Any:
            try:
                os.close(os.open(marker / "claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return super().__call__(batch)
            (marker / "pid.tmp").write_text(str(os.getpid()))
            os.replace(marker / "pid.tmp", marker / "pid")
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline:  # the test SIGKILLs this process now
                time.sleep(0.1)
            raise RuntimeError(f"the test did not kill this actor within {WAIT_S:.0f} s")

    return DiesOnce


def test_killed_actor_is_restarted_and_its_batches_redone(photos: Path, local_records: dict,
                                                          tmp_path: Path) -> None:
    inputs = list(iter_inputs([photos]))
    killed: list[int] = []
    problems: list[str] = []

    def killer() -> None:
        deadline = time.monotonic() + WAIT_S
        while not (tmp_path / "pid").exists():
            if time.monotonic() > deadline:
                problems.append(f"no actor claimed the first batch within {WAIT_S:.0f} s")
                return
            time.sleep(0.05)
        pid = int((tmp_path / "pid").read_text())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    screened = screen_dataset(inputs_dataset(inputs, rows_per_block=2), options=ScanOptions(device="cpu", batch_size=2),
                              actors=1, callable_class=dies_once(tmp_path))
    records = records_of(screened.materialize())
    thread.join(timeout=WAIT_S)
    assert not thread.is_alive(), f"the killer thread did not finish within {WAIT_S:.0f} s"
    assert not problems, problems
    starts = [int(pid) for pid in (tmp_path / "starts").read_text().split()]
    assert killed and killed[0] in starts, (killed, starts)
    # Ray may start the actor more than once on a loaded machine; what matters is that a new
    # process took over after the killed one.
    later = starts[starts.index(killed[0]) + 1:]
    assert later and all(pid != killed[0] for pid in later), f"the actor was not restarted in a new process: {starts}"
    # Every input exactly once (by_path refuses duplicates), with the local engine's content.
    assert_same_records(by_path(records), local_records)


# --------------------------------------------------------------------------- CLI


def read_jsonl_folder(folder: Path) -> list[dict[str, Any]]:
    parts = sorted(folder.glob("*.jsonl"))
    assert parts and {p.suffix for p in folder.iterdir()} == {".jsonl"}
    return [json.loads(line) for part in parts for line in part.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def cli_inputs(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The photos, a folder with a link that leads outside it, and a file that is not there."""
    links = tmp_path_factory.mktemp("links")
    outside = tmp_path_factory.mktemp("outside") / "elsewhere.jpg"
    shutil.copy(photos / "astronaut.png", outside)
    (links / "escape.jpg").symlink_to(outside)
    return [str(photos), str(links), str(links / "gone.jpg")]


@pytest.fixture(scope="module")
def cli_local(cli_inputs: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("local") / "scan.jsonl"
    result = runner.invoke(app, ["scan", *cli_inputs, "-o", str(out), "--device", "cpu",
                                 "--fail-on", "never", "--no-progress"])
    assert result.exit_code == 2, result.output  # gone.jpg does not exist: the records are written
    assert "no such file or folder" in result.stderr
    records = by_path(json.loads(line) for line in out.read_text(encoding="utf-8").splitlines())
    assert len(records) == 10
    return records


def test_cli_ray_jsonl_folder_holds_the_local_records(cli_inputs: list[str], cli_local: dict,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "scan.jsonl"
    result = runner.invoke(app, ["scan", "--engine", "ray", *cli_inputs, "-o", str(out), "--device", "cpu",
                                 "--actors", "2", "--batch-size", "3", "--fail-on", "uncertain",
                                 "--no-progress"])
    # The aligned astronaut is flagged, but gone.jpg does not exist: that fails louder.
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1].startswith("error: no such file or folder:")
    assert result.stdout == ""
    records = by_path(read_jsonl_folder(out))
    assert_same_records(records, cli_local)
    errors = {Path(p).name: r["error"] for p, r in records.items() if r["status"] == "error"}
    assert errors["escape.jpg"].startswith("symbolic link points outside")
    assert errors["gone.jpg"] == "file not found"
    counts = {v: sum(r["verdict"] == v for r in records.values()) for v in ("gan", "uncertain", "real")}
    assert "records: " in result.stderr and f"{counts['gan']} gan, {counts['uncertain']} uncertain, " \
        f"{counts['real']} real" in result.stderr


def test_cli_ray_parquet_folder_has_flat_columns_and_full_records(cli_inputs: list[str], cli_local: dict,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "scan.parquet"
    result = runner.invoke(app, ["scan", "--engine", "ray", *cli_inputs, "-o", str(out), "--device", "cpu",
                                 "--actors", "1", "--fail-on", "never", "--no-progress"])
    assert result.exit_code == 2, result.output  # gone.jpg
    table = pq.read_table(out)
    assert table.schema.remove_metadata() == RECORD_SCHEMA.remove_metadata()
    records = by_path(json.loads(text) for text in table.column("record").to_pylist())
    assert_same_records(records, cli_local)
    counts = Counter(table.column("status").to_pylist())
    assert counts == Counter(r["status"] for r in cli_local.values())


def test_cli_ray_without_output_streams_json_lines(photos: Path) -> None:
    files = [str(photos / "astronaut.png"), str(photos / "empty.jpg")]
    result = runner.invoke(app, ["scan", "--engine", "ray", *files, "--device", "cpu", "--no-progress",
                                 "--robustness"])
    assert result.exit_code == 0, result.output
    records = by_path(json.loads(line) for line in result.stdout.splitlines())
    assert sorted(records) == sorted(files)
    assert records[files[0]]["verdict"] == "real" and records[files[1]]["status"] == "error"
    assert len(records[files[0]]["robustness"]["variants"]) == 3


@pytest.mark.parametrize("extra", [
    ["--resume", "-o", "{tmp}/x.jsonl"],
    ["--format", "csv", "-o", "{tmp}/x.jsonl"],
    ["--format", "html", "-o", "{tmp}/x.jsonl"],
    ["--evidence-dir", "{tmp}/evidence", "-o", "{tmp}/x.jsonl"],
    ["-o", "{tmp}/x.csv"],
    ["-o", "{tmp}/used.jsonl"],
    ["-o", "{tmp}/no/such/folder/x.jsonl"],
])
def test_cli_ray_refuses_what_it_cannot_honour(photos: Path, tmp_path: Path, extra: list[str]) -> None:
    (tmp_path / "used.jsonl").write_text("{}\n")  # an earlier scan's output
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    result = runner.invoke(app, ["scan", "--engine", "ray", str(photos), *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error:") and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "x.jsonl").exists()


def test_cli_ray_cuda_on_a_cluster_without_gpus_is_a_usage_error(photos: Path) -> None:
    result = runner.invoke(app, ["scan", "--engine", "ray", str(photos), "--device", "cuda"])
    assert result.exit_code == 2 and "has no GPUs" in result.stderr


def test_cli_ray_unreachable_cluster_is_an_error(photos: Path) -> None:
    # A fresh process: this module's Ray instance would be used as it is.
    result = subprocess.run([sys.executable, "-m", "ganscreen", "scan", "--engine", "ray", str(photos),
                             "--ray-address", "127.0.0.1:1"], capture_output=True, text=True, check=False,
                            timeout=WAIT_S)
    assert result.returncode == 2 and "nothing answers at 127.0.0.1:1" in result.stderr


def test_ray_options_need_the_ray_engine(photos: Path) -> None:
    for extra in (["--ray-address", "auto"], ["--actors", "2"]):
        result = runner.invoke(app, ["scan", str(photos), *extra])
        assert result.exit_code == 2 and "need --engine ray" in result.stderr


def test_package_works_without_ray(photos: Path) -> None:
    """Importing ganscreen never imports Ray; --engine ray without it is a usage error."""
    code = ("import sys; sys.modules['ray'] = None\n"
            "import ganscreen, ganscreen.cli\n"
            "from ganscreen.cli import app\n"
            f"sys.argv = ['ganscreen', 'scan', '--engine', 'ray', {str(photos)!r}]\n"
            "app()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                            timeout=WAIT_S)
    assert result.returncode == 2, result.stderr
    assert "pip install 'ganscreen[ray]'" in result.stderr
    result = subprocess.run([sys.executable, "-c", "import sys, ganscreen.cli, ganscreen.pipeline; "
                             "sys.exit('ray' in sys.modules)"], check=False, timeout=WAIT_S)
    assert result.returncode == 0
