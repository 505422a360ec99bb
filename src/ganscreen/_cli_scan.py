"""How ``ganscreen scan`` runs: the options it builds, the local and Ray engines, writing
records (and evidence, and the HTML page) as they come, and the counts behind the exit code."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, Unpack

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from ganscreen._options import OptionFields, ScanOptions
    from ganscreen.evidence import EvidenceMaker
    from ganscreen.images import InputFile
    from ganscreen.report import RecordedFile, RecordWriter, Report

from ganscreen._cli_common import (
    EXIT_CLEAN,
    EXIT_FLAGGED,
    _fail,
    _load_records,
    _progress_bar,
    _stdout,
    _suffixes,
)
from ganscreen._cli_resume import _open_output, _plan_resume, _read_existing, _settle
from ganscreen._cli_terminal import _print_table, _StopOnSignals
from ganscreen._records import outcome


def _scan_options(err: Console, **fields: Unpack[OptionFields]) -> ScanOptions:
    """The command line's scan options: automatic workers (one per CPU, as the memory budget
    allows) with one torch thread each when there are several, unless told otherwise."""
    from ganscreen._options import ScanOptions

    fields.setdefault("workers", None)
    fields.setdefault("torch_threads", "auto")
    try:
        return ScanOptions(**fields)
    except ValueError as exc:
        _fail(err, str(exc))


def _scan(paths: list[Path], *, options: ScanOptions, output: Path | None, fmt: str, resume: bool,
          force: bool, fail_on: str, progress: bool, err: Console, stop: _StopOnSignals,
          html: Path | None = None, evidence_dir: Path | None = None, table: bool = False) -> None:
    from ganscreen._output import OutputError, OutputLock, output_target
    from ganscreen.images import iter_inputs

    try:
        target = None if output is None else output_target(output)
        page = None if html is None else output_target(html)
    except OutputError as exc:
        _fail(err, str(exc))
    for given, real in ((output, target), (html, page)):
        if given is not None and real is not None and given.is_symlink():
            err.print(escape(f"note: {given} is a symbolic link: writing the file it leads to, {real}"),
                      highlight=False)
    missing = [p for p in paths if not os.path.lexists(p)]
    lock = OutputLock(t for t in (target, page) if t is not None)
    try:
        lock.__enter__()  # held until the page is rendered: no other scan writes these meanwhile
    except OutputError as exc:
        _fail(err, str(exc))
    try:
        screener = _screener(err, options)
        inputs = list(iter_inputs(paths, all_files=options.all_files, follow_symlinks=options.follow_symlinks))
        counts, writer, outcomes = _scan_to(inputs, screener, target=target, output=output, fmt=fmt,
                                            resume=resume, force=force, progress=progress, err=err,
                                            stop=stop, html=html, evidence_dir=evidence_dir, table=table)
        if html is not None and target is not None:
            _render(target, html, maker=_evidence_maker(screener), evidence_dir=evidence_dir,
                    progress=progress, err=err)
    finally:
        lock.release()
    if table:
        _print_table(outcomes)
    _finish(err, counts, sum(counts.values()) - writer.count, fail_on, missing=missing, inputs=len(inputs),
            paths=paths)


def _screener(err: Console, options: ScanOptions) -> Any:
    from ganscreen._assets import AssetError
    from ganscreen.pipeline import Screener

    try:
        return Screener(options=options)
    except (ValueError, AssetError) as exc:
        _fail(err, str(exc))


def _evidence_maker(screener: Any) -> EvidenceMaker:
    from ganscreen.evidence import EvidenceMaker

    return EvidenceMaker(checks=screener.checks, device=str(screener.device))


class _NoRecords:
    """Where records go when a person at a terminal gets the table instead."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _scan_to(inputs: list[InputFile], screener: Any, *, target: Path | None, output: Path | None,
             fmt: str, resume: bool, force: bool, progress: bool, err: Console, stop: _StopOnSignals,
             html: Path | None, evidence_dir: Path | None, table: bool,
             ) -> tuple[Counter[str], RecordWriter, list[tuple[str, Report | None, str]]]:
    """Screen ``inputs`` into the output (held locked by the caller); with ``resume``, keep
    the unchanged records and leave the file holding exactly one record per input."""
    from ganscreen.checks import csv_columns
    from ganscreen.report import RecordWriter

    columns = csv_columns()
    existing = _read_existing(target, fmt, columns, err) if resume and target is not None else None
    version = screener.model_info["version"]
    kept: list[RecordedFile | None] = [None] * len(inputs)
    if existing is not None and target is not None and output is not None:
        kept = _plan_resume(inputs, existing, version=version, force=force, output=output, err=err)
    stream: IO[str] = _NoRecords() if table else _open_output(target, existing, err)  # type: ignore[assignment]
    writer = RecordWriter(stream, fmt, check_columns=columns,
                          write_header=existing is None or existing.complete_bytes == 0)
    stop.writer = writer
    maker = _evidence_maker(screener) if evidence_dir is not None and html is None else None
    # counts covers every input: the kept ones (outcome from their record) too, so --fail-on
    # judges the whole scan, not only the part this run did.
    counts: Counter[str] = Counter(r.outcome for r in kept if r is not None)
    texts = [None if r is None else r.text for r in kept]
    # For the table, in input order: (path, the report or None for a kept record, outcome).
    rows: list[tuple[str, Report | None, str] | None] = [
        None if r is None else (str(item.path), None, r.outcome) for item, r in zip(inputs, kept, strict=True)]
    pending = [i for i, r in enumerate(kept) if r is None]
    bar = _progress_bar("scanning", err, enabled=progress, transient=table)
    failed = True
    try:
        with bar:
            task = bar.add_task("scan", total=len(pending))
            reports = screener.scan_inputs(inputs[i] for i in pending)
            for index, report in zip(pending, reports, strict=True):
                if maker is not None and evidence_dir is not None:
                    # Before the record: a record in the output means its evidence is on disk,
                    # so a resumed scan never leaves a recorded file without evidence.
                    _write_evidence(maker, evidence_dir, report.to_record(), err)
                texts[index] = _write(writer, report, stop, output, err)
                counts[outcome(report.status, report.verdict)] += 1
                rows[index] = (str(inputs[index].path), report, outcome(report.status, report.verdict))
                bar.advance(task)
        failed = False
    finally:
        _close(stream, quiet=failed)
    if existing is not None and target is not None:
        _settle(target, writer.header() if writer.fmt == "csv" else "", texts, err)
    return counts, writer, [row for row in rows if row is not None]


def _close(stream: IO[str], *, quiet: bool) -> None:
    """Close an output; a failure while another one is on its way is not a second message."""
    if stream is sys.stdout:
        return
    try:
        stream.close()
    except OSError:
        if not quiet:
            raise


def _scan_ray(paths: list[Path], *, options: ScanOptions, output: Path | None, fail_on: str, progress: bool,
              address: str | None, actors: int | None, err: Console) -> NoReturn:
    """``scan --engine ray``: the same inputs and records as the local engine, on Ray Data."""
    try:
        from ganscreen import ray_engine
    except ImportError:
        _fail(err, "--engine ray needs Ray: pip install 'ganscreen[ray]'")
    fmt = None
    if output is not None:
        try:
            fmt = ray_engine.output_format(output)
            ray_engine.prepare_output(output)
        except (ValueError, FileExistsError) as exc:
            _fail(err, str(exc))
        except OSError as exc:
            _fail(err, f"cannot write {output}: {exc.strerror or exc}")
    try:
        counts = ray_engine.run_scan(paths, output=output, fmt=fmt, options=options, actors=actors,
                                     address=address, progress=progress,
                                     stream=None if output is not None else _stdout())
    except ValueError as exc:  # a device Ray cannot give us, an unusable address
        _fail(err, str(exc))
    except ConnectionError as exc:
        _fail(err, f"cannot connect to Ray at {address}: {exc}")
    except KeyboardInterrupt:
        where = f"; {output} holds only part of the records" if output is not None else ""
        err.print(escape(f"interrupted{where}"), highlight=False)
        raise typer.Exit(130) from None
    if output is not None:
        err.print(escape(f"records: {output}/ ({sum(counts.values())} records in {fmt} part files)"),
                  highlight=False)
    _finish(err, counts, 0, fail_on, missing=[p for p in paths if not os.path.lexists(p)],
            inputs=sum(counts.values()), paths=paths)


def _write_evidence(maker: EvidenceMaker, folder: Path, record: dict, err: Console) -> None:
    from ganscreen.evidence import write_evidence

    try:
        write_evidence(folder, record, maker.build(record))
    except OSError as exc:
        _fail(err, f"cannot write evidence to {folder}: {exc.strerror or exc}")


def _render(records_file: Path, html: Path, *, maker: EvidenceMaker | None, evidence_dir: Path | None,
            progress: bool, err: Console) -> None:
    """Render the HTML report of a JSON Lines records file (``scan --format html``, ``report``)."""
    from ganscreen.html_report import write_report

    loaded = _load_records(records_file, err, purpose="render")
    bar = _progress_bar("rendering", err, enabled=progress)
    try:
        with bar:
            task = bar.add_task("render", total=len(loaded.records))
            count = write_report(html, loaded.records, maker=maker, evidence_dir=evidence_dir,
                                 source=str(records_file), on_card=lambda: bar.advance(task))
    except OSError as exc:  # the page, or a file under --evidence-dir
        from ganscreen._output import OutputError

        _fail(err, str(exc) if isinstance(exc, OutputError)
              else f"cannot write {exc.filename or html}: {exc.strerror or exc}")
    err.print(escape(f"report: {html} ({count} files)"), highlight=False)


def _campaign_scan(paths: list[Path], *, device: str, progress: bool, err: Console) -> list[dict]:
    """Records of a fresh scan of ``paths`` (kept in memory)."""
    from ganscreen.images import iter_inputs

    screener = _screener(err, _scan_options(err, device=device))
    items = list(iter_inputs(paths))
    records = []
    bar = _progress_bar("scanning", err, enabled=progress)
    try:
        with bar:
            task = bar.add_task("scan", total=len(items))
            for report in screener.scan_inputs(iter(items)):
                records.append(report.to_record())
                bar.advance(task)
    except KeyboardInterrupt:
        err.print("interrupted: no summary written", highlight=False)
        raise typer.Exit(130) from None
    return records


def _finish(err: Console, counts: Counter[str], resumed: int, fail_on: str, *,
            missing: list[Path] | None = None, inputs: int | None = None,
            paths: list[Path] | None = None) -> NoReturn:
    summary = ", ".join(f"{counts[k]} {k}" for k in ("gan", "uncertain", "real", "no_face", "error"))
    if resumed:
        summary += f" ({resumed} of them recorded before this run)"
    err.print(summary, highlight=False)
    # Fail loudly: a mistyped path or an empty folder must not pass a cron job or CI step.
    if missing:
        names = ", ".join(str(p) for p in missing[:3]) + (" ..." if len(missing) > 3 else "")
        _fail(err, f"no such file or folder: {names}" + (" (records written for the other inputs)"
                                                       if inputs and inputs > len(missing) else ""))
    if inputs == 0:
        where = ", ".join(str(p) for p in (paths or [])[:3])
        _fail(err, f"no input files found in {where} (images: {', '.join(_suffixes())}; "
                   "--all-files takes every file)")
    flagged = {"gan": ("gan",), "uncertain": ("gan", "uncertain"), "never": ()}[fail_on]
    raise typer.Exit(EXIT_FLAGGED if any(counts[v] for v in flagged) else EXIT_CLEAN)


def _write(writer: RecordWriter, report: Report, stop: _StopOnSignals, output: Path | None,
           err: Console) -> str:
    try:
        with stop.deferred():
            return writer.write(report)
    except OSError as exc:  # disk full, a closed pipe: the records so far stay complete
        where = output if output is not None else "standard output"
        _fail(err, f"cannot write {where}: {exc.strerror or exc} "
                   f"({writer.count} records written)")
