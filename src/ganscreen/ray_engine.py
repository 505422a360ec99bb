"""Screening on Ray Data: the same checks, weights and records as the local engine, on a cluster.

:func:`screen_dataset` maps a Ray dataset of images to a dataset of records. A pool of
actors (:class:`ScreenBatch`) each builds one :class:`~ganscreen.pipeline.Screener` when it
starts and screens one batch per call, so the models load once per actor, not per batch.
Input rows may hold

- ``bytes`` and ``path`` (``ray.data.read_binary_files(..., include_paths=True)``),
- only ``path`` (the actor reads the file itself, so a file it cannot read becomes an error
  record worded as the local engine words it; ``error``, when present and set, reports an
  input without reading it, as :class:`~ganscreen.images.InputFile` does), or
- ``image`` arrays and ``path`` (``ray.data.read_images(..., include_paths=True)``; Ray has
  decoded them, so the record's ``image.format`` is null and EXIF orientation is Ray's).

Every input row gives exactly one output row with the columns of :data:`RECORD_SCHEMA`: flat
columns to filter and count on, and ``record``, the full JSON record (``Report.to_json()``).
The nested record stays a JSON string because its shape varies (checks that cannot judge
carry a ``reason`` instead of their measures; ``robustness`` is null or an object), which
Arrow would have to unify across blocks written by different actors.

Fault tolerance: a corrupt file is an error record, never an exception. An actor whose
process dies (killed, out of memory) is restarted by Ray and the batches it had not finished
are retried on it: Ray Data creates actor-pool actors with ``max_restarts=-1`` (restart
however often it dies; ``__init__`` runs again and reloads the models) and
``max_task_retries=-1`` (resubmit the calls that were running or queued on it). A batch's
output block comes from exactly one successful call, so a retry neither loses nor
duplicates records. Errors raised by our own code are not retried
(``DataContext.actor_task_retry_on_errors`` stays off) and fail the job
(``DataContext.max_errored_blocks`` stays 0) rather than silently dropping records; the
Screener raises nothing for bad input, so such an error is a bug.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import socket
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

try:
    import pyarrow as pa
    import ray
    import ray.data
    from ray.data import ActorPoolStrategy, Dataset
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise ImportError("ganscreen.ray_engine needs Ray Data: pip install 'ganscreen[ray]'") from exc

from ganscreen._options import ResolvedOptions, ScanOptions
from ganscreen._ray_records import (
    OUTPUT_FORMATS,
    RECORD_SCHEMA,
    JsonLinesDatasink,
    outcome,
    outcome_counts,
    output_format,
    prepare_output,
    records_table,
    stream_records,
    write_records,
)
from ganscreen._records import one_line
from ganscreen.images import InputFile, file_stamp, iter_inputs
from ganscreen.pipeline import Screener
from ganscreen.report import Report

__all__ = [
    "OUTPUT_FORMATS",
    "RECORD_SCHEMA",
    "JsonLinesDatasink",
    "ScanOptions",
    "ScreenBatch",
    "actor_options",
    "inputs_dataset",
    "outcome",
    "outcome_counts",
    "output_format",
    "prepare_output",
    "records_table",
    "resolve_for_ray",
    "run_scan",
    "screen_dataset",
    "stream_records",
    "write_records",
]

_INPUT_SCHEMA = pa.schema([pa.field("path", pa.binary()), pa.field("error", pa.string())])


class ScreenBatch:
    """The callable class Ray Data maps over batches: one :class:`Screener` per actor.

    Subclass it to add behaviour around a batch (the tests use a subclass to kill an actor
    in the middle of one); :func:`screen_dataset` takes the class to map.
    """

    def __init__(self, *, options: ScanOptions | None = None) -> None:
        # One batch at a time: Ray's actors are the parallelism, and Ray sets each actor's
        # torch/OpenMP threads to the CPUs it reserved, so torch is left alone.
        self.screener = Screener(options=actor_options(options or ScanOptions()))

    def __call__(self, batch: Mapping[str, np.ndarray]) -> pa.Table:
        return records_table(self.screen(batch))

    def screen(self, batch: Mapping[str, np.ndarray]) -> list[Report]:
        """One report per row of ``batch``, in row order."""
        rows = _num_rows(batch)
        paths = [_path_text(p) for p in _column(batch, "path", rows)]
        errors = _column(batch, "error", rows)
        images = _column(batch, "image", rows)
        data = _column(batch, "bytes", rows)
        reports: list[Report | None] = [None] * rows
        files: list[tuple[int, InputFile]] = []
        decoded: list[tuple[int, object]] = []
        for i in range(rows):
            if errors[i] or (images[i] is None and data[i] is None and paths[i] is not None):
                files.append((i, InputFile(Path(paths[i] or ""), error=errors[i] or None)))
            elif images[i] is not None:
                try:
                    decoded.append((i, _pil(images[i])))
                except (TypeError, ValueError) as exc:
                    reports[i] = self._error(paths[i], f"unsupported image array: {exc}")
            elif data[i] is not None and len(data[i]) == 0 and (named := paths[i]) is not None:
                # Bytes read from a named file: say what the local engine says of that file.
                reports[i] = self._error(named, "empty file (0 bytes)", file=file_stamp(named))
            elif data[i] is not None:
                decoded.append((i, bytes(data[i])))
            else:
                reports[i] = self._error(None, "row has no path, bytes or image")
        # Files named by path go through the local engine's own code path (file stamp included).
        for (i, _), report in zip(files, self.screener.scan_inputs(f for _, f in files), strict=True):
            reports[i] = report
        screened = self.screener.screen_batch([src for _, src in decoded],  # type: ignore[misc]
                                              paths=[paths[i] for i, _ in decoded])
        for (i, source), report in zip(decoded, screened, strict=True):
            if (named := paths[i]) is not None:
                stamp: dict[str, Any] | None = file_stamp(named)  # None when not a local file
                if stamp is not None and isinstance(source, bytes):
                    # The hash of the bytes judged, as the local engine records it (--resume, report).
                    stamp = {**stamp, "sha256": hashlib.sha256(source).hexdigest()}
                report = dataclasses.replace(report, file=stamp)
            reports[i] = report
        return [r for r in reports if r is not None]

    def _error(self, path: str | None, message: str, *, file: Mapping[str, Any] | None = None) -> Report:
        return Report(path=path, status="error", error=one_line(message),
                      model=self.screener.model_info, file=file)


def actor_options(options: ScanOptions) -> ScanOptions:
    """What one actor screens with: ``options`` with one worker (Ray's actors are the
    parallelism) and torch's threads left to Ray."""
    return options.replace(workers=1, torch_threads=None)


def resolve_for_ray(options: ScanOptions) -> tuple[ResolvedOptions, float | None]:
    """``options`` settled as the local engine settles them (the same device for ``auto``,
    the same batch size), and the GPUs each actor must ask for: one when the device is CUDA,
    since Ray hides GPUs from actors that did not ask for one."""
    plan = options.resolve()
    return plan, (1.0 if plan.is_cuda else None)


def screen_dataset(ds: Dataset, *, options: ScanOptions | None = None,
                   actors: int | tuple[int, int] = 1, num_cpus: float = 1.0,
                   num_gpus: float | None = None,
                   callable_class: type[ScreenBatch] = ScreenBatch) -> Dataset:
    """Map a dataset of images (``bytes``, ``path`` or ``image`` rows) to a dataset of records.

    Parameters
    ----------
    ds:
        Rows with ``path`` and/or ``bytes`` / ``image`` columns (see the module docstring).
    options:
        How to screen (:class:`~ganscreen._options.ScanOptions`; ``robustness`` as
        ``scan --robustness``). ``device`` and ``batch_size`` are settled here as the local
        engine settles them; ``batch_size`` is the rows per call, screened in one
        face-detection and CNN batch. Each actor screens one batch at a time.
    actors:
        A fixed pool size, or ``(min, max)`` for a pool Ray Data grows with the backlog.
    num_cpus, num_gpus:
        Resources each actor reserves. Ray sets an actor's torch/OpenMP threads to its CPUs.
        ``num_gpus`` defaults to one when the device is CUDA (Ray hides GPUs from actors
        that did not ask for one).
    callable_class:
        The class mapped over batches: :class:`ScreenBatch` or a subclass.

    Returns the lazy dataset of :data:`RECORD_SCHEMA` rows, one per input row.
    """
    plan, gpus = resolve_for_ray(options or ScanOptions())
    num_gpus = gpus if num_gpus is None else num_gpus
    if plan.is_cuda and not num_gpus:
        raise ValueError("device='cuda' needs num_gpus (GPUs per actor): Ray hides GPUs from other actors")
    compute = (ActorPoolStrategy(size=actors) if isinstance(actors, int)
               else ActorPoolStrategy(min_size=actors[0], max_size=actors[1]))
    # The memory budget is left for each actor to settle on its own node.
    travelling = actor_options(plan.options).replace(max_memory=(options or ScanOptions()).max_memory)
    # No max_restarts / max_task_retries here: Ray Data gives actor pools max_restarts=-1 and
    # max_task_retries=-1 by default (and passing them through **ray_remote_args is deprecated
    # since Ray 2.60). tests/test_ray_engine.py kills an actor to pin that behaviour.
    return ds.map_batches(
        callable_class,
        batch_size=plan.batch_size,
        batch_format="numpy",
        compute=compute,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        fn_constructor_kwargs={"options": travelling},
    )


def inputs_dataset(inputs: Iterable[InputFile], *, rows_per_block: int = 64) -> Dataset:
    """A dataset of ``path`` rows (with ``error`` for inputs discovery already refused).

    Paths travel as bytes (``os.fsencode``) so names that are not valid UTF-8 survive Arrow.
    Small blocks let every actor start at once; each block is a few hundred bytes per row.
    """
    tables: list[pa.Table] = []
    paths: list[bytes] = []
    errors: list[str | None] = []
    for item in inputs:
        paths.append(os.fsencode(item.path))
        errors.append(item.error)
        if len(paths) == rows_per_block:
            tables.append(pa.table([paths, errors], schema=_INPUT_SCHEMA))
            paths, errors = [], []
    if paths or not tables:
        tables.append(pa.table([paths, errors], schema=_INPUT_SCHEMA))
    return ray.data.from_arrow(tables)


# --------------------------------------------------------------------------- the scan command

def run_scan(paths: Sequence[str | os.PathLike[str]], *, output: Path | None, fmt: str | None,
             options: ScanOptions | None = None, actors: int | None = None, address: str | None = None,
             progress: bool = True, stream: IO[str] | None = None) -> Counter[str]:
    """``ganscreen scan --engine ray``: screen the inputs the local engine would, on Ray Data.

    Inputs are discovered here with :func:`~ganscreen.images.iter_inputs` (same suffixes,
    same symlink policy as ``options`` says, discovery errors become error records), so both
    engines see the same files; actors read them by path, so on a cluster every node must see
    the same paths. ``options`` are settled as the local engine settles them: ``--device
    auto`` is CUDA when this machine has it, with its batch size (32 rows a call on CUDA, 4
    on the CPU), and actors then ask for a GPU each. Records go to the folder ``output``
    (``fmt``: ``jsonl`` or ``parquet`` part files) or, with no output, to ``stream`` as JSON
    Lines. Connects to ``address`` or starts a local Ray instance (shut down at the end); an
    already initialised Ray is used as it is.
    Returns the outcome counts (``gan``, ``uncertain``, ``real``, ``no_face``, ``error``).
    """
    options = options or ScanOptions()
    inputs = list(iter_inputs(paths, all_files=options.all_files, follow_symlinks=options.follow_symlinks))
    if not inputs:
        return Counter()
    plan, num_gpus = resolve_for_ray(options)
    batch_size = plan.batch_size
    started = _connect(address)
    context = ray.data.DataContext.get_current()
    previous = context.enable_progress_bars
    context.enable_progress_bars = progress
    try:
        if num_gpus and not ray.cluster_resources().get("GPU"):
            raise ValueError(f"--device {options.device} (resolved to {plan.device}): the Ray cluster has no "
                             "GPUs (use --device cpu)")  # else actors wait forever
        pool = actors or _default_actors(gpu=num_gpus is not None)
        blocks_per_actor = max(1, min(16, len(inputs) // (batch_size * pool * 4)))
        pool = min(pool, -(-len(inputs) // batch_size))  # no more actors than batches
        screened = screen_dataset(inputs_dataset(inputs, rows_per_block=batch_size * blocks_per_actor),
                                  options=options, actors=pool, num_gpus=num_gpus)
        if output is None:
            if stream is None:
                raise ValueError("run_scan needs an output folder or a stream")
            return Counter(outcome(s, v) for s, v in stream_records(screened, stream))
        # Materialised once: the write and the counts read the same records (kept in Ray's
        # object store, spilled to disk when large) instead of screening everything twice.
        results = screened.materialize()
        write_records(results, output.resolve(), fmt or output_format(output))
        return outcome_counts(results)
    finally:
        context.enable_progress_bars = previous
        if started:
            ray.shutdown()


def _connect(address: str | None) -> bool:
    """Join the cluster at ``address`` or start a local instance; ``True`` if we started one."""
    if ray.is_initialized():
        return False
    if address is not None:
        _check_reachable(address)
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except ConnectionError as exc:
            if os.environ.get("RAY_AUTH_MODE") is None:  # the usual cause with Ray >= 2.60 clusters
                raise ConnectionError(f"{exc} (a cluster with token authentication needs RAY_AUTH_MODE=token "
                                      "and its token in ~/.ray/auth_token or RAY_AUTH_TOKEN)") from None
            raise
    else:
        # "local": a new instance even when `ray start` left a cluster on this machine, which
        # ray.init() without an address would join instead.
        ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    return True


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast on a HOST:PORT nobody answers at (``ray.init`` retries for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return  # "auto", "local" and ray:// addresses are Ray's to resolve
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {address} ({exc.strerror or exc}); "
                              "is `ray start --head` running there?") from None


def _default_actors(*, gpu: bool) -> int:
    resources = ray.cluster_resources()
    return max(1, int(resources.get("GPU" if gpu else "CPU", 1)))


# --------------------------------------------------------------------------- batch columns


def _num_rows(batch: Mapping[str, np.ndarray]) -> int:
    return len(next(iter(batch.values()))) if batch else 0


def _column(batch: Mapping[str, np.ndarray], name: str, rows: int) -> list[Any]:
    values = batch.get(name)
    return [None] * rows if values is None else list(values)


def _path_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, np.bytes_)):
        return os.fsdecode(bytes(value))
    return str(value)


def _pil(array: np.ndarray) -> Image.Image:
    """A Ray-decoded image array as a PIL image; raises TypeError/ValueError for arrays
    Pillow cannot show (wrong dtype or shape)."""
    return Image.fromarray(np.ascontiguousarray(array))
