"""ScanOptions: one frozen value for every scan option, settled in one place for both engines."""

from __future__ import annotations

import dataclasses
import pickle
import typing
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from ganscreen import _options, _scheduling
from ganscreen._options import OptionFields, ScanOptions

runner = CliRunner()


def test_library_defaults_screen_on_the_calling_thread_and_leave_torch_alone() -> None:
    options = ScanOptions()
    assert (options.device, options.batch_size, options.workers, options.torch_threads) == ("auto", None, 1, None)
    plan = options.resolve(cuda=False, cpus=16, memory=64 * 2**30)
    assert (plan.device, plan.batch_size, plan.workers, plan.torch_threads) == ("cpu", 4, 1, None)


def test_auto_device_picks_the_batch_size_and_explicit_values_win() -> None:
    assert ScanOptions().resolve(cuda=True).batch_size == 32
    assert ScanOptions().resolve(cuda=True).device == "cuda"
    assert ScanOptions().resolve(cuda=False).batch_size == 4
    assert ScanOptions(device="cpu").resolve(cuda=True).device == "cpu"
    assert ScanOptions(device="cuda:1").resolve(cuda=False).batch_size == 32  # checked where the models load
    assert ScanOptions(batch_size=7).resolve(cuda=True).batch_size == 7


def test_automatic_workers_come_from_the_cpus_and_the_memory_budget() -> None:
    cli = ScanOptions(workers=None, torch_threads="auto")
    roomy = 64 * 2**30
    assert cli.resolve(cpus=3, memory=roomy).workers == 3
    assert cli.resolve(cpus=64, memory=roomy).workers == 8
    two = _scheduling.BASE_MEMORY + 2 * _scheduling.WORKER_MEMORY
    assert cli.resolve(cpus=64, memory=two).workers == 2
    # The budget caps workers that were asked for too, and an explicit budget beats the machine's.
    assert ScanOptions(workers=6, max_memory=two).resolve(memory=roomy).workers == 2
    plan = ScanOptions(max_memory=_scheduling.BASE_MEMORY + 2**20).resolve(memory=roomy)
    assert plan.max_memory == _scheduling.BASE_MEMORY + 2**20
    assert plan.max_decode_bytes == _scheduling.MIN_DECODE_BYTES
    assert plan.decode_pool == 2 * _scheduling.MIN_DECODE_BYTES


def test_auto_torch_threads_give_one_per_worker_only_when_there_are_several() -> None:
    roomy = 64 * 2**30
    assert ScanOptions(workers=None, torch_threads="auto").resolve(cpus=4, memory=roomy).torch_threads == 1
    assert ScanOptions(workers=None, torch_threads="auto").resolve(cpus=1, memory=roomy).torch_threads is None
    assert ScanOptions(workers=4, torch_threads=2).resolve(memory=roomy).torch_threads == 2
    assert ScanOptions(workers=4).resolve(memory=roomy).torch_threads is None


def test_resolving_twice_changes_nothing_and_options_travel_by_pickle() -> None:
    plan = ScanOptions(workers=None, torch_threads="auto", robustness=True).resolve(cuda=True, cpus=4,
                                                                                   memory=64 * 2**30)
    again = plan.options.resolve(cuda=False, cpus=1, memory=2**31)
    assert again == plan
    assert pickle.loads(pickle.dumps(plan.options)) == plan.options


@pytest.mark.parametrize("fields, message", [
    ({"batch_size": 0}, "batch_size must be at least 1"),
    ({"batch_size": True}, "batch_size must be at least 1"),
    ({"workers": 0}, "workers must be at least 1"),
    ({"workers": 1.5}, "workers must be at least 1"),
    ({"max_memory": 0}, "max_memory must be a positive number of bytes"),
    ({"torch_threads": 0}, "torch_threads must be at least 1"),
    ({"torch_threads": "many"}, "torch_threads must be at least 1"),
    ({"device": "gpu"}, "device must be auto, cpu, cuda or cuda:N"),
    ({"robustness": "yes"}, "robustness must be True or False"),
    ({"follow_symlinks": 1}, "follow_symlinks must be True or False"),
])
def test_nonsense_is_refused_when_the_options_are_made(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScanOptions(**fields)
    with pytest.raises(ValueError, match=message):
        ScanOptions().replace(**fields)


def test_options_are_frozen_keyword_only_and_listed_once() -> None:
    options = ScanOptions(device="cpu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.workers = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        ScanOptions("cpu")  # type: ignore[misc]
    import torch

    assert ScanOptions(device=torch.device("cpu")).device == "cpu"  # type: ignore[arg-type]
    # Screener(**fields) takes exactly the fields, with the same types.
    hints = typing.get_type_hints(ScanOptions)
    assert typing.get_type_hints(OptionFields) == {f.name: hints[f.name] for f in dataclasses.fields(ScanOptions)}


# --------------------------------------------------------------------------- --device auto on a (faked) GPU


class _NoModelDetector:
    """Stands in for MTCNN, which a faked CUDA device could not hold: finds no face."""

    def __init__(self, **kwargs: Any) -> None:
        self.device = kwargs.get("device")

    def prepare(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        return rgb, 1.0

    def detect_prepared(self, prepared: list[Any]) -> list[list[Any]]:
        return [[] for _ in prepared]


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from ganscreen import pipeline

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(pipeline, "FaceDetector", _NoModelDetector)
    monkeypatch.setattr(pipeline, "default_checks", lambda device="cpu": [])


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every Screener built while the test runs (the CLI builds its own), in order."""
    from ganscreen import pipeline

    screeners: list[Any] = []
    real_init = pipeline.Screener.__init__

    def spy(self: Any, **kwargs: Any) -> None:
        real_init(self, **kwargs)
        screeners.append(self)

    monkeypatch.setattr(pipeline.Screener, "__init__", spy)
    return screeners


def test_device_auto_on_cuda_gives_both_engines_batch_32_and_ray_a_gpu(
        fake_cuda: None, samples: Path, monkeypatch: pytest.MonkeyPatch, built: list[Any]) -> None:
    from ganscreen import ray_engine
    from ganscreen.cli import app

    result = runner.invoke(app, ["scan", str(samples / "astronaut.png"), "--fail-on", "never", "--no-progress"])
    assert result.exit_code == 0, result.output
    [local] = built
    assert local.device.type == "cuda" and local.batch_size == 32

    # The Ray engine, from the same command line, down to what it asks Ray Data for.
    asked: dict[str, Any] = {}

    class _Dataset:
        def map_batches(self, fn: Any, **kwargs: Any) -> Any:
            asked.update(kwargs)
            raise _Stop

    class _Stop(Exception):
        pass

    def run_scan(paths: Any, **kwargs: Any) -> Counter[str]:
        # Ray itself is not started: the dataset is a stand-in that records map_batches' arguments.
        with pytest.raises(_Stop):
            ray_engine.screen_dataset(_Dataset(), options=kwargs["options"])  # type: ignore[arg-type]
        asked["plan"] = ray_engine.resolve_for_ray(kwargs["options"])
        return Counter(real=1)

    monkeypatch.setattr(ray_engine, "run_scan", run_scan)
    result = runner.invoke(app, ["scan", "--engine", "ray", str(samples / "astronaut.png"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert asked["batch_size"] == 32 and asked["num_gpus"] == 1.0
    actor = asked["fn_constructor_kwargs"]["options"]
    assert (actor.device, actor.batch_size, actor.workers, actor.torch_threads) == ("cuda", 32, 1, None)
    plan, gpus = asked["plan"]
    assert plan.batch_size == local.batch_size == 32 and gpus == 1.0


def test_run_scan_asks_ray_for_a_gpu_when_auto_resolves_to_cuda(
        fake_cuda: None, samples: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    from ganscreen import ray_engine

    seen: dict[str, Any] = {}

    class _Stop(Exception):
        pass

    def screen_dataset(ds: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        raise _Stop

    monkeypatch.setattr(ray_engine, "_connect", lambda address: False)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 8.0, "GPU": 2.0})
    monkeypatch.setattr(ray_engine, "inputs_dataset", lambda inputs, rows_per_block: rows_per_block)
    monkeypatch.setattr(ray_engine, "screen_dataset", screen_dataset)
    with pytest.raises(_Stop):
        ray_engine.run_scan([samples], output=None, fmt=None, options=ScanOptions(), stream=None)
    assert seen["num_gpus"] == 1.0 and seen["actors"] == 1  # one per GPU, no more than the batches
    assert ray_engine.resolve_for_ray(seen["options"])[0].batch_size == 32
    # Without GPUs in the cluster it is refused up front, not left waiting for a GPU.
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 8.0})
    with pytest.raises(ValueError, match="no GPUs"):
        ray_engine.run_scan([samples], output=None, fmt=None, options=ScanOptions(), stream=None)


def test_cuda_availability_is_asked_of_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _options.cuda_available() is False and ScanOptions().resolve().device == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _options.cuda_available() is True and ScanOptions().resolve().device == "cuda"


def test_the_cli_picks_automatic_workers_with_one_torch_thread_each(
        fake_cuda: None, samples: Path, monkeypatch: pytest.MonkeyPatch, built: list[Any]) -> None:
    from ganscreen.cli import app

    monkeypatch.setattr(_scheduling, "usable_cpus", lambda: 4)
    for extra, workers, threads in [([], 4, 1), (["--workers", "1"], 1, None), (["--workers", "2"], 2, 1)]:
        result = runner.invoke(app, ["scan", str(samples / "astronaut.png"), "--max-memory", "100G",
                                     "--fail-on", "never", "--no-progress", *extra])
        assert result.exit_code == 0, result.output
        plan = built.pop().plan
        assert (plan.workers, plan.torch_threads) == (workers, threads), extra
