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

Fault tolerance: a corrupt file is an error record, never an exception. An actor that dies
(killed, out of memory, node lost) is restarted by Ray and its unfinished batches are
retried on it: ``max_restarts=-1`` and ``max_task_retries=-1`` (see :data:`ACTOR_FAULT_TOLERANCE`).
A batch's output block is produced by exactly one successful call, so a retry neither loses
nor duplicates records.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
from PIL import Image

try:
    import ray
    import ray.data
    from ray.data import ActorPoolStrategy, Dataset
    from ray.data.block import BlockAccessor
    from ray.data.datasource import BlockBasedFileDatasink
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise ImportError("ganscreen.ray_engine needs Ray Data: pip install 'ganscreen[ray]'") from exc

from ganscreen.images import InputFile, file_stamp
from ganscreen.pipeline import DEFAULT_BATCH_SIZE, Screener
from ganscreen.report import Report, portable_text

__all__ = [
    "ACTOR_FAULT_TOLERANCE",
    "RECORD_SCHEMA",
    "JsonLinesDatasink",
    "ScreenBatch",
    "inputs_dataset",
    "outcome_counts",
    "screen_dataset",
]

RECORD_SCHEMA = pa.schema([
    pa.field("path", pa.string()),  # portable_text(): a name that is not UTF-8 is escaped
    pa.field("status", pa.string(), nullable=False),
    pa.field("verdict", pa.string()),
    pa.field("score", pa.float64()),
    pa.field("error", pa.string()),
    pa.field("flags", pa.list_(pa.string()), nullable=False),
    pa.field("model_version", pa.string()),
    pa.field("file_size", pa.int64()),
    pa.field("file_mtime", pa.float64()),
    pa.field("record", pa.string(), nullable=False),  # the full JSON record, one line
])
"""One row per input. Fixed, so every block (and every Parquet part file) has the same schema."""

ACTOR_FAULT_TOLERANCE: Mapping[str, int] = {"max_restarts": -1, "max_task_retries": -1}
"""Ray actor options that make a killed actor come back and redo its unfinished batches.

``max_restarts=-1``: restart a dead actor however often it dies (its ``__init__`` runs
again, loading the models). ``max_task_retries=-1``: resubmit every call that was running
or queued on it once it is back. Ray Data applies the same defaults to actor pools; they are
set here explicitly so the behaviour does not hang on a default. Errors raised by our own
code are not retried (``DataContext.actor_task_retry_on_errors`` stays off) and fail the
job (``DataContext.max_errored_blocks`` stays 0) rather than silently dropping records.
"""

_INPUT_SCHEMA = pa.schema([pa.field("path", pa.binary()), pa.field("error", pa.string())])


class ScreenBatch:
    """The callable class Ray Data maps over batches: one :class:`Screener` per actor.

    Subclass it to add behaviour around a batch (the tests use a subclass to kill an actor
    in the middle of one); :func:`screen_dataset` takes the class to map.
    """

    def __init__(self, *, device: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE,
                 robustness: bool = False) -> None:
        self.screener = Screener(device=device, batch_size=batch_size, robustness=robustness)

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
            elif data[i] is not None:
                decoded.append((i, bytes(data[i])))
            else:
                reports[i] = self._error(None, "row has no path, bytes or image")
        # Files named by path go through the local engine's own code path (file stamp included).
        for (i, _), report in zip(files, self.screener.scan_inputs(f for _, f in files), strict=True):
            reports[i] = report
        screened = self.screener.screen_batch([src for _, src in decoded],  # type: ignore[misc]
                                              paths=[paths[i] for i, _ in decoded])
        for (i, _), report in zip(decoded, screened, strict=True):
            if paths[i] is not None:
                report.file = file_stamp(paths[i])  # None when the path is not a local file
            reports[i] = report
        return [r for r in reports if r is not None]

    def _error(self, path: str | None, message: str) -> Report:
        return Report(path=path, status="error", error=" ".join(message.split()),
                      model=self.screener.model_info)


def screen_dataset(ds: Dataset, *, device: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE,
                   actors: int | tuple[int, int] = 1, num_cpus: float = 1.0,
                   num_gpus: float | None = None, robustness: bool = False,
                   callable_class: type[ScreenBatch] = ScreenBatch) -> Dataset:
    """Map a dataset of images (``bytes``, ``path`` or ``image`` rows) to a dataset of records.

    Parameters
    ----------
    ds:
        Rows with ``path`` and/or ``bytes`` / ``image`` columns (see the module docstring).
    device:
        Where each actor runs the models: ``"auto"``, ``"cpu"`` or ``"cuda"``. ``"cuda"``
        needs ``num_gpus``: Ray hides the GPUs from actors that did not ask for one.
    batch_size:
        Rows per call, screened in one face-detection and CNN batch.
    actors:
        A fixed pool size, or ``(min, max)`` for a pool Ray Data grows with the backlog.
    num_cpus, num_gpus:
        Resources each actor reserves. Ray sets an actor's torch/OpenMP threads to its CPUs.
    robustness:
        Also score platform-processed variants, as ``scan --robustness`` does.
    callable_class:
        The class mapped over batches: :class:`ScreenBatch` or a subclass.

    Returns the lazy dataset of :data:`RECORD_SCHEMA` rows, one per input row.
    """
    if device == "cuda" and not num_gpus:
        raise ValueError("device='cuda' needs num_gpus (GPUs per actor): Ray hides GPUs from other actors")
    compute = (ActorPoolStrategy(size=actors) if isinstance(actors, int)
               else ActorPoolStrategy(min_size=actors[0], max_size=actors[1]))
    remote_args: dict[str, Any] = dict(ACTOR_FAULT_TOLERANCE)
    if num_gpus:
        remote_args["num_gpus"] = num_gpus
    return ds.map_batches(
        callable_class,
        batch_size=batch_size,
        batch_format="numpy",
        compute=compute,
        num_cpus=num_cpus,
        fn_constructor_kwargs={"device": device, "batch_size": batch_size, "robustness": robustness},
        **remote_args,
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


def records_table(reports: Sequence[Report]) -> pa.Table:
    """Reports as :data:`RECORD_SCHEMA` rows."""
    columns: dict[str, list[Any]] = {name: [] for name in RECORD_SCHEMA.names}
    for report in reports:
        record = report.to_record()
        file = record["file"] or {}
        columns["path"].append(None if report.path is None else portable_text(report.path))
        columns["status"].append(report.status)
        columns["verdict"].append(report.verdict)
        columns["score"].append(record["score"])
        columns["error"].append(None if report.error is None else portable_text(report.error))
        columns["flags"].append(list(report.flags))
        columns["model_version"].append(report.model.get("version"))
        columns["file_size"].append(file.get("size"))
        columns["file_mtime"].append(file.get("mtime"))
        columns["record"].append(report.to_json())
    return pa.table(columns, schema=RECORD_SCHEMA)


class JsonLinesDatasink(BlockBasedFileDatasink):
    """Writes the ``record`` column as JSON Lines: one ``.jsonl`` part file per write task,
    each line a full record exactly as the local engine writes it."""

    def __init__(self, path: str, **kwargs: Any) -> None:
        super().__init__(path, file_format="jsonl", **kwargs)

    def write_block_to_file(self, block: BlockAccessor, file: pa.NativeFile) -> None:
        lines = block.to_arrow().column("record").to_pylist()
        file.write("".join(line + "\n" for line in lines).encode("utf-8"))


def write_records(ds: Dataset, output: Path, fmt: str) -> None:
    """Write ``ds`` (records) into the folder ``output``: JSON Lines or Parquet part files."""
    if fmt == "parquet":
        ds.write_parquet(str(output))
    elif fmt == "jsonl":
        ds.write_datasink(JsonLinesDatasink(str(output)))
    else:
        raise ValueError(f"unknown format {fmt!r}")


def stream_records(ds: Dataset, stream: IO[str]) -> Iterator[tuple[str, str | None]]:
    """Write the records of ``ds`` to ``stream`` as JSON Lines as they arrive (in no set order);
    yields each record's ``(status, verdict)``."""
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        for status, verdict, line in zip(batch.column("status").to_pylist(),
                                         batch.column("verdict").to_pylist(),
                                         batch.column("record").to_pylist(), strict=True):
            stream.write(line + "\n")
            stream.flush()
            yield status, verdict


def outcome_counts(ds: Dataset) -> Counter[str]:
    """How many records are ``gan``/``uncertain``/``real`` (ok records) or ``no_face``/``error``."""
    counts: Counter[str] = Counter()
    for batch in ds.select_columns(["status", "verdict"]).iter_batches(batch_format="pyarrow", batch_size=None):
        for status, verdict in zip(batch.column("status").to_pylist(), batch.column("verdict").to_pylist(),
                                   strict=True):
            counts[outcome(status, verdict)] += 1
    return counts


def outcome(status: str, verdict: str | None) -> str:
    return verdict if status == "ok" and verdict else status


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
