"""Shared fixtures: the real detector and screener (built once), the shipped samples."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganscreen import Screener
from ganscreen.faces import Face, FaceDetector

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def screener() -> Screener:
    return Screener(device="cpu")


@pytest.fixture(scope="session")
def detector() -> FaceDetector:
    return FaceDetector(device="cpu")


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return np.asarray(Image.open(SAMPLES / "astronaut.png").convert("RGB"))


@pytest.fixture(scope="session")
def astronaut_face(detector: FaceDetector, astronaut: np.ndarray) -> Face:
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    return faces[0]


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread for a module: on a small machine shared with other work, torch's
    default thread pool can make each image many times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
