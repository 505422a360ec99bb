"""Every option of a scan in one frozen value, and the one place its automatic values are settled.

A :class:`ScanOptions` travels from the command line to either engine unchanged: the local
engine (:class:`~ganscreen.pipeline.Screener`) and the Ray engine
(:func:`~ganscreen.ray_engine.run_scan`) both call :meth:`ScanOptions.resolve`, so
``--device auto`` means the same device and the same batch size in both. Importing this
module does not import torch.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Literal, TypedDict

from ganscreen import _scheduling

TorchThreads = int | Literal["auto"] | None
_DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


class OptionFields(TypedDict, total=False):
    """The fields of :class:`ScanOptions` as keyword arguments (``Screener(workers=2)``)."""

    device: str
    batch_size: int | None
    workers: int | None
    max_memory: int | None
    torch_threads: TorchThreads
    robustness: bool
    all_files: bool
    follow_symlinks: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class ScanOptions:
    """How to scan. ``None`` (and ``"auto"``) ask for an automatic value, settled by :meth:`resolve`.

    Attributes
    ----------
    device:
        ``"auto"`` (CUDA when this machine has it), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    batch_size:
        Images sent through face detection and the CNN together (``None``: 32 on CUDA, 4 on
        the CPU; see :func:`~ganscreen._scheduling.auto_batch_size`).
    workers:
        Batches screened in parallel, each on its own thread. The library's default is one
        (everything on the calling thread); ``None`` is one per usable CPU, at most 8. The
        memory budget caps it either way.
    max_memory:
        Memory budget in bytes (``None``: half the memory available now). It caps the
        workers, the bytes one image may take to decode and the bytes all workers may spend
        decoding at once.
    torch_threads:
        torch's thread count while screening (it is process-wide; restored after). ``None``
        leaves it alone; ``"auto"`` gives each worker one thread when there are several (what
        ``ganscreen scan`` does: no core waits for another) and leaves it alone otherwise.
    robustness:
        Also re-score every judged face after platform-style processing and mark the report
        unstable when a verdict flips.
    all_files, follow_symlinks:
        Discovery in folders: every file instead of image suffixes; follow symbolic links that
        lead outside the scanned folders.
    """

    device: str = "auto"
    batch_size: int | None = None
    workers: int | None = 1
    max_memory: int | None = None
    torch_threads: TorchThreads = None
    robustness: bool = False
    all_files: bool = False
    follow_symlinks: bool = False

    def __post_init__(self) -> None:
        device = self.device
        if not isinstance(device, str) and hasattr(device, "type"):
            object.__setattr__(self, "device", str(device))  # a torch.device, as Screener took
        if not isinstance(self.device, str) or not _DEVICE.fullmatch(self.device):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, not {self.device!r}")
        for name in ("batch_size", "workers"):
            if not _positive_or_none(getattr(self, name)):
                raise ValueError(f"{name} must be at least 1")
        if not _positive_or_none(self.max_memory):
            raise ValueError("max_memory must be a positive number of bytes")
        if self.torch_threads != "auto" and not _positive_or_none(self.torch_threads):
            raise ValueError("torch_threads must be at least 1, 'auto' or None")
        for name in ("robustness", "all_files", "follow_symlinks"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False")

    def replace(self, **fields: object) -> ScanOptions:
        """A copy with ``fields`` changed (validated again)."""
        return dataclasses.replace(self, **fields)  # type: ignore[arg-type]

    def resolve(self, *, cuda: bool | None = None, cpus: int | None = None,
                memory: int | None = None) -> ResolvedOptions:
        """Every automatic value settled, for this machine (or the ``cuda`` availability,
        usable ``cpus`` and memory budget given, as a test or a cluster driver knows them)."""
        device = self.device
        if device == "auto":
            device = "cuda" if (cuda_available() if cuda is None else cuda) else "cpu"
        batch_size = self.batch_size if self.batch_size is not None else _scheduling.auto_batch_size(device)
        budget = self.max_memory if self.max_memory is not None else (
            memory if memory is not None else _scheduling.default_memory_budget())
        wanted = self.workers if self.workers is not None else _scheduling.auto_workers(cpus)
        workers = min(wanted, _scheduling.memory_workers(budget))
        threads = self.torch_threads
        if threads == "auto":
            threads = 1 if workers > 1 else None
        settled = dataclasses.replace(self, device=device, batch_size=batch_size, workers=workers,
                                      max_memory=budget, torch_threads=threads)
        return ResolvedOptions(options=settled, device=device, batch_size=batch_size, workers=workers,
                               max_memory=budget, torch_threads=threads)


@dataclass(frozen=True, kw_only=True, slots=True)
class ResolvedOptions:
    """:class:`ScanOptions` with nothing left automatic; ``options`` is the same as a
    :class:`ScanOptions` (resolving it again changes nothing)."""

    options: ScanOptions
    device: str
    batch_size: int
    workers: int
    max_memory: int
    torch_threads: int | None

    @property
    def max_decode_bytes(self) -> int:
        return _scheduling.decode_limit(self.max_memory)

    @property
    def decode_pool(self) -> int:
        return _scheduling.decode_pool(self.max_memory)

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")


def cuda_available() -> bool:
    """Whether torch sees a CUDA device here (imports torch; tests replace this to fake one)."""
    import torch

    return bool(torch.cuda.is_available())


def _positive_or_none(value: object) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)
