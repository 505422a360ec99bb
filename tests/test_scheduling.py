"""Scheduling: batches, the pixel budget, ordered parallel work and torch's thread count."""

from __future__ import annotations

import threading

import pytest

from ganscreen import _scheduling
from ganscreen._scheduling import auto_batch_size, chunks, in_order, pixel_batches, torch_threads

WAIT_S = 60.0  # generous: only a hang should ever reach it


def test_chunks_cut_lazily_and_keep_the_rest() -> None:
    assert list(chunks(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunks([], 3)) == []
    taken: list[int] = []

    def source():  # noqa: ANN202
        for i in range(100):
            taken.append(i)
            yield i

    first = next(chunks(source(), 2))
    assert first == [0, 1] and taken == [0, 1]  # nothing read ahead of the first batch


def test_pixel_batches_cut_when_the_budget_is_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_scheduling, "BATCH_PIXELS", 10)
    loaded: list[int] = []

    def load(n: int) -> int:
        loaded.append(n)
        return n

    groups = pixel_batches([4, 4, 4, 9, 1, 0], load, lambda n: n)
    assert next(groups) == [4, 4, 4] and loaded == [4, 4, 4]  # screened before the next is decoded
    assert list(groups) == [[9, 1], [0]]


def test_auto_batch_size_reads_the_device_kind() -> None:
    assert auto_batch_size("cuda") == auto_batch_size("cuda:1") == 32
    assert auto_batch_size("cpu") == 4


def test_in_order_yields_in_batch_order_whatever_finishes_first() -> None:
    finished: list[int] = []
    second_done = threading.Event()

    def work(batch: list[int]) -> list[int]:
        if batch == [0]:  # the first batch finishes only after the second
            assert second_done.wait(WAIT_S), "batch 1 never finished while batch 0 waited for it"
        finished.append(batch[0])
        if batch == [1]:
            second_done.set()
        return [batch[0] * 10]

    assert list(in_order(chunks(range(6), 1), work, workers=3)) == [0, 10, 20, 30, 40, 50]
    assert finished.index(1) < finished.index(0)
    on_this_thread: list[str] = []
    out = list(in_order(chunks(range(3), 2), lambda b: on_this_thread.append(threading.current_thread().name) or b,
                        workers=1))
    assert out == [0, 1, 2] and on_this_thread == [threading.current_thread().name] * 2


def test_closing_in_order_early_cancels_queued_batches_and_stops_its_threads() -> None:
    started: list[list[int]] = []
    lock = threading.Lock()

    def work(batch: list[int]) -> list[int]:
        with lock:
            started.append(batch)
        return batch

    results = in_order(chunks(range(1000), 1), work, workers=2, thread_name_prefix="sched-test")
    assert next(results) == 0
    assert any(t.name.startswith("sched-test") for t in threading.enumerate())
    results.close()
    assert not any(t.name.startswith("sched-test") for t in threading.enumerate())
    assert len(started) <= 3  # at most workers + 1 were ever submitted


def test_torch_threads_are_set_inside_and_restored_or_left_alone() -> None:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        with torch_threads(None):
            assert torch.get_num_threads() == 3
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 3
        with pytest.raises(RuntimeError), torch_threads(2):
            raise RuntimeError("restored on the way out too")
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
