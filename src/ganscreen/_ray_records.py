"""The Ray engine's records: their Arrow schema, and writing, streaming and counting them.

Re-exported by :mod:`ganscreen.ray_engine`; private so the public surface stays one module.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, cast

import pyarrow as pa
from ray.data import Dataset
from ray.data.block import BlockAccessor
from ray.data.datasource import BlockBasedFileDatasink

from ganscreen._records import outcome
from ganscreen.report import Report, portable_text

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
    one full record per line, as the local engine writes them."""

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
    for batch in cast(Iterable[pa.Table], ds.iter_batches(batch_format="pyarrow", batch_size=None)):
        for status, verdict, line in zip(batch.column("status").to_pylist(),
                                         batch.column("verdict").to_pylist(),
                                         batch.column("record").to_pylist(), strict=True):
            stream.write(line + "\n")
            stream.flush()
            yield status, verdict


def outcome_counts(ds: Dataset) -> Counter[str]:
    """How many records are ``gan``/``uncertain``/``real`` (ok records) or ``no_face``/``error``."""
    counts: Counter[str] = Counter()
    batches = ds.select_columns(["status", "verdict"]).iter_batches(batch_format="pyarrow", batch_size=None)
    for batch in cast(Iterable[pa.Table], batches):
        for status, verdict in zip(batch.column("status").to_pylist(), batch.column("verdict").to_pylist(),
                                   strict=True):
            counts[outcome(status, verdict)] += 1
    return counts


OUTPUT_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


def output_format(output: Path) -> str:
    """``jsonl`` or ``parquet``, from the suffix of ``scan --engine ray -o``'s folder name."""
    try:
        return OUTPUT_FORMATS[output.suffix.lower()]
    except KeyError:
        raise ValueError(f"-o {output}: name the output folder out.jsonl (JSON Lines) or "
                         "out.parquet (Parquet) to choose the format") from None


def prepare_output(output: Path) -> None:
    """Create the output folder; refuse one that already holds files.

    Ray writes a folder of part files with fresh names, so writing into a used folder would
    mix two scans (and count files twice). Raises ``FileExistsError`` or ``OSError``.
    """
    if output.is_dir() and not any(output.iterdir()):
        return
    if output.exists() or output.is_symlink():
        raise FileExistsError(f"{output} already exists: Ray writes a folder of part files, so -o must "
                              "name a new or empty folder (remove it or choose another name)")
    output.mkdir()
