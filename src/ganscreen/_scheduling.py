"""How a scan is spread over threads and memory: automatic sizes, the memory budget, batches.

Shared by the local engine (:class:`~ganscreen.pipeline.Screener`) and the Ray engine, and
read by :mod:`ganscreen._options`, the one place automatic values are settled. Importing it
does not import torch (the command line's ``--help`` stays fast); torch is imported only when
a scan changes its thread count.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from ganscreen.images import MAX_DECODE_BYTES

if TYPE_CHECKING:
    import torch

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_BATCH_SIZE = 4  # on the CPU (as fast as 8 there, with far less memory); see auto_batch_size
CUDA_BATCH_SIZE = 32
# Decoded pixels a batch may hold before it is screened early: about 100 MB of RGB, so
# batches of 1024² photos are whole and 24-megapixel ones go two at a time.
BATCH_PIXELS = 32_000_000
MAX_AUTO_WORKERS = 8  # each worker holds a batch in memory; more rarely pays

# What the memory budget is spent on: the models, torch and the interpreter once, then per
# worker a batch at its worst (one image decoded at the per-image limit, its analysis arrays
# and the rest of its batch).
BASE_MEMORY = 1024 * 2**20
WORKER_MEMORY = 768 * 2**20
MIN_DECODE_BYTES = 64 * 2**20


# --------------------------------------------------------------------------- automatic sizes


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, so containers are honoured)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def auto_workers(cpus: int | None = None) -> int:
    """Parallel scan threads: one per usable CPU, at most :data:`MAX_AUTO_WORKERS`."""
    return min(MAX_AUTO_WORKERS, usable_cpus() if cpus is None else max(1, cpus))


def auto_batch_size(device: str | torch.device) -> int:
    """Images per detection/CNN batch: larger batches pay off on a GPU, not on a CPU."""
    kind = str(getattr(device, "type", device)).split(":", 1)[0]
    return CUDA_BATCH_SIZE if kind == "cuda" else DEFAULT_BATCH_SIZE


def available_memory() -> int | None:
    """Memory the system can still give (MemAvailable), in bytes; ``None`` if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_memory_budget() -> int:
    """Half the memory available now (4 GiB when that cannot be told)."""
    available = available_memory()
    return available // 2 if available else 4 * 2**30


def memory_workers(budget: int) -> int:
    """Workers a memory budget pays for (at least one)."""
    return max(1, (budget - BASE_MEMORY) // WORKER_MEMORY)


def decode_limit(budget: int) -> int:
    """Bytes one image may take to decode under a memory budget."""
    return max(MIN_DECODE_BYTES, min(MAX_DECODE_BYTES, budget - BASE_MEMORY))


def decode_pool(budget: int) -> int:
    """Bytes all workers together may spend decoding at once (see :class:`MemoryGate`):
    half of what the budget leaves after the models, at most 1 GiB. Workers decoding
    ordinary photos never wait; two decodes of 100-megapixel images at once do."""
    return max(2 * MIN_DECODE_BYTES, min(2**30, (budget - BASE_MEMORY) // 2))


class MemoryGate:
    """A shared allowance of bytes: ``hold(n)`` waits until ``n`` more fit (a request larger
    than the whole allowance runs alone), so concurrent decodes stay within it."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, amount: int) -> Iterator[None]:
        amount = min(max(0, amount), self.capacity)
        with self._changed:
            while self.used and self.used + amount > self.capacity:
                self._changed.wait()
            self.used += amount
        try:
            yield
        finally:
            with self._changed:
                self.used -= amount
                self._changed.notify_all()


# --------------------------------------------------------------------------- batches and threads


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), consumed lazily."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def pixel_batches(items: Iterable[T], load: Callable[[T], R], pixels: Callable[[R], int]) -> Iterator[list[R]]:
    """Load ``items`` one by one and hand them on in groups cut whenever the decoded pixels
    reach :data:`BATCH_PIXELS`, so a folder of huge photos holds a few of them in memory per
    worker, not a whole batch. Read at call time, so a test may lower it."""
    group: list[R] = []
    total = 0
    for item in items:
        group.append(load(item))
        total += pixels(group[-1])
        if total >= BATCH_PIXELS:
            yield group
            group, total = [], 0
    if group:
        yield group


class Pool(ThreadPoolExecutor):
    """Worker threads that drop their queued work when the scan stops early."""

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(wait=True, cancel_futures=True)


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """torch's (process-wide) thread count set to ``count`` inside, restored after;
    ``None`` leaves it alone."""
    if count is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def in_order(batches: Iterable[T], work: Callable[[T], list[R]], *, workers: int,
             thread_name_prefix: str = "ganscreen") -> Iterator[R]:
    """``work`` over every batch, results yielded in batch order, streaming.

    With one worker each batch is done on the calling thread. With more, that many threads
    each take a whole batch at a time; batches finish in order and at most ``workers + 1``
    are in flight, so memory stays flat. Closing the iterator early cancels queued batches
    and waits for the running ones.
    """
    if workers <= 1:
        for batch in batches:
            yield from work(batch)
        return
    with Pool(workers, thread_name_prefix=thread_name_prefix) as pool:
        running: deque[Future[list[R]]] = deque()
        for batch in batches:
            running.append(pool.submit(work, batch))
            if len(running) > workers:
                yield from running.popleft().result()
        while running:
            yield from running.popleft().result()
