"""Command line: ``ganscreen scan PATH...``, ``ganscreen report SCAN.jsonl`` and
``ganscreen campaign PATH...`` (or ``--from-scan SCAN.jsonl``).

Exit codes: 0 finished and nothing at or above ``--fail-on``; 1 finished and something was
flagged; 2 usage error, a path that does not exist, no input found, any failure to read or
write an output, an output locked by another scan, or a model file that fails its checksum
(always one line on standard error; ``ganscreen --debug`` adds the traceback); 128 + signal
number (130 for Ctrl-C, 143 for SIGTERM) when stopped by a signal. A bad image is a record,
never an exit code. ``ganscreen report`` exits 0 when the page is written and 2 when it
cannot be.

Nothing here imports torch at module level, so ``ganscreen --help`` stays fast.
"""

from __future__ import annotations

import codecs
import functools
import os
import signal
import sys
import threading
import traceback
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ganscreen import _records
from ganscreen._version import __version__

if TYPE_CHECKING:
    from ganscreen.evidence import EvidenceMaker
    from ganscreen.images import InputFile
    from ganscreen.report import ExistingOutput, RecordedFile, RecordWriter, Report

EXIT_CLEAN, EXIT_FLAGGED, EXIT_USAGE = 0, 1, 2
F = TypeVar("F")


class _State:
    debug = False  # ganscreen --debug: tracebacks after the one-line message

app = typer.Typer(
    name="ganscreen",
    help="Screen profile photos for GAN-generated (StyleGAN) faces, offline, with evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: no rich markup, so "ganscreen[ray]" reads as written and --help does
    # not pay for rich's layout engine.
    rich_markup_mode=None,
)


ProgressOption = Annotated[bool, typer.Option(
    "--progress/--no-progress", help="Show a progress bar on standard error.")]


class OutputFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"
    html = "html"


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Engine(StrEnum):
    local = "local"
    ray = "ray"


class FailOn(StrEnum):
    gan = "gan"
    uncertain = "uncertain"
    never = "never"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ganscreen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="After the one-line message of a failure, "
                                                        "print its traceback.")] = False,
) -> None:
    """Screen profile photos for GAN-generated faces."""
    _State.debug = debug


def _one_error_path(command: F) -> F:
    """Every failure a command does not handle itself (an unreadable or unwritable file, a
    model file that fails its checksum, anything unforeseen) ends as one line on standard
    error and exit 2; the traceback only with ``ganscreen --debug``."""

    @functools.wraps(command)  # type: ignore[arg-type]
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)  # type: ignore[operator]
        except (typer.Exit, typer.Abort, typer.BadParameter, KeyboardInterrupt, SystemExit):
            raise  # click reports usage errors itself (exit 2)
        except Exception as exc:
            if _State.debug:
                traceback.print_exc()
            err = Console(stderr=True, soft_wrap=True)
            _fail(err, _describe(exc))

    return guarded  # type: ignore[return-value]


def _describe(exc: BaseException) -> str:
    from ganscreen._output import OutputError

    if isinstance(exc, OutputError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    text = _records.one_line(exc, limit=None)  # the only line printed: nothing to cut it short for
    return text if type(exc).__name__ in ("AssetError", "ValueError") else f"{type(exc).__name__}: {text}"


def _parse_bytes(text: str | None) -> int | None:
    """``--max-memory``: a number of bytes with an optional K, M, G or T suffix (powers of 1024)."""
    if text is None:
        return None
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = 1
    if value and value[-1] in "KMGT":
        scale = 1024 ** ("KMGT".index(value[-1]) + 1)
        value = value[:-1]
    try:
        number = float(value)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a size such as 4G or 512M", param_hint="--max-memory") from None
    if number <= 0:
        raise typer.BadParameter("must be above zero", param_hint="--max-memory")
    return int(number * scale)


@app.command()
@_one_error_path
def scan(
    paths: Annotated[list[Path], typer.Argument(
        help="Image files or folders (searched recursively, in sorted order).",
        show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write records to this file instead of standard output (a "
                               "symbolic link is followed: the file it leads to is written; "
                               "devices and FIFOs are refused). Locked for the whole scan.",
        dir_okay=False)] = None,
    fmt: Annotated[OutputFormat | None, typer.Option(
        "--format", "-f", help="Record format: JSON Lines (one object per line), CSV, or html: "
                               "a self-contained HTML report with evidence images (needs -o; "
                               "the records stream to OUTPUT.jsonl beside it as the scan goes, "
                               "and --resume continues that file). Default: JSON Lines, or a "
                               "table when standard output is a terminal and there is no -o.",
        case_sensitive=False, show_default=False)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue a scan: keep each record whose file is unchanged (same "
                         "path, size, modification time and SHA-256), screen the others, drop "
                         "records of files that are gone, and leave exactly one record per "
                         "input, in input order.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="With --resume: drop records of files that are not among these inputs "
                        "and screen again those made by another model version, instead of "
                        "refusing.")] = False,
    max_memory: Annotated[str | None, typer.Option(
        "--max-memory", help="Memory budget, e.g. 4G: caps the parallel workers and what one "
                             "image may take to decode (larger JPEGs are decoded reduced, other "
                             "images refused).", show_default="half the available memory")] = None,
    device: Annotated[Device, typer.Option(
        help="Where models run: auto picks CUDA when available, else the CPU.",
        case_sensitive=False)] = Device.auto,
    fail_on: Annotated[FailOn, typer.Option(
        help="Exit with status 1 when any image's verdict is at or above this level "
             "(gan; uncertain = gan or uncertain; never = always exit 0 after a scan).",
        case_sensitive=False)] = FailOn.gan,
    batch_size: Annotated[int | None, typer.Option(
        min=1, max=1024, show_default="4 on the CPU, 32 on CUDA",
        help="Images sent through face detection and the CNN together.")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, max=64, show_default="one per CPU, at most 8",
        help="Batches screened in parallel, each on its own thread with one torch thread "
             "(1: one batch at a time, torch using every core).")] = None,
    all_files: Annotated[bool, typer.Option(
        "--all-files", help="In folders, treat every file as an input, not only image "
                            "suffixes (.jpg, .png, .webp, ...).")] = False,
    follow_symlinks: Annotated[bool, typer.Option(
        "--follow-symlinks", help="Follow symbolic links that lead outside the scanned "
                                  "folders (never followed by default).")] = False,
    progress: ProgressOption = True,
    robustness: Annotated[bool, typer.Option(
        "--robustness", help="Also re-score each face after platform processing (longer side "
                             "512/384/256 px, JPEG quality 85/75/60) and mark the record "
                             "unstable when the verdict flips (4x slower).")] = False,
    evidence_dir: Annotated[Path | None, typer.Option(
        "--evidence-dir", help="Also write each file's evidence images as PNG files (and a "
                               "plain-text legend) to DIR/<hash of the path>/, for write-ups.",
        file_okay=False)] = None,
    engine: Annotated[Engine, typer.Option(
        help="local: screen in this process. ray: screen on Ray Data actors, on this machine or a "
             "Ray cluster (needs pip install 'ganscreen[ray]'); -o names a folder of part files, "
             "out.jsonl (JSON Lines) or out.parquet (Parquet).",
        case_sensitive=False)] = Engine.local,
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", help="With --engine ray: the cluster to join (e.g. auto, or "
                              "HEAD:6379); without it a local Ray instance is started.",
        show_default=False)] = None,
    actors: Annotated[int | None, typer.Option(
        min=1, help="With --engine ray: screening actors (default: one per CPU of the cluster, "
                    "one per GPU with --device cuda).", show_default=False)] = None,
) -> None:
    """Scan images and write one record per input file.

    Records go to standard output as JSON Lines unless -o is given; the progress bar goes to
    standard error. Every input file gets exactly one record, with status ok, no_face or
    error (and a one-line message). Ctrl-C or SIGTERM stops after the last complete record;
    --resume then finishes the scan.

    With --format html -o report.html the records stream to report.html.jsonl (so an
    interruption loses nothing, and --resume continues that file); the page is rendered
    from them once the scan is complete.

    With --engine ray the same records are screened on Ray Data actors, locally or on a
    cluster (--ray-address), and -o names a folder of JSON Lines or Parquet part files.
    """
    # soft_wrap: messages stay one line however narrow the terminal (logs, grep, tests).
    err = Console(stderr=True, soft_wrap=True)
    table = fmt is None and output is None and engine is Engine.local and _stdout_is_terminal()
    fmt = fmt if fmt is not None else OutputFormat.jsonl
    memory = _parse_bytes(max_memory)
    if engine is Engine.ray:
        refused = [name for name, used in (("--resume", resume), ("--format csv", fmt is OutputFormat.csv),
                                           ("--format html", fmt is OutputFormat.html),
                                           ("--evidence-dir", evidence_dir is not None),
                                           ("--max-memory", memory is not None)) if used]
        if refused:
            _fail(err, f"{', '.join(refused)} cannot be used with --engine ray (use --engine local)")
        _scan_ray(paths, output=output, device=device.value, fail_on=fail_on.value, batch_size=batch_size,
                  all_files=all_files, follow_symlinks=follow_symlinks, progress=progress,
                  robustness=robustness, address=ray_address, actors=actors, err=err)
    if ray_address is not None or actors is not None:
        _fail(err, "--ray-address and --actors need --engine ray")
    if resume and output is None:
        _fail(err, "--resume needs -o FILE: it continues the scan recorded in that file")
    if force and not resume:
        _fail(err, "--force only applies to --resume")
    html: Path | None = None
    if fmt is OutputFormat.html:
        if output is None:
            _fail(err, "--format html needs -o FILE: the report is a file (its records go to FILE.jsonl)")
        html, output = output, records_path(output)
    if evidence_dir is not None:
        _make_folder(evidence_dir, err)
    with _StopOnSignals() as stop:
        try:
            _scan(paths, output=output, fmt="jsonl" if html is not None else fmt.value, resume=resume,
                  force=force, device=device.value, fail_on=fail_on.value, batch_size=batch_size,
                  workers=workers, max_memory=memory, all_files=all_files,
                  follow_symlinks=follow_symlinks, progress=progress, robustness=robustness, err=err,
                  stop=stop, html=html, evidence_dir=evidence_dir, table=table)
        except ScanInterrupted as exc:
            err.print(escape(_interrupted_message(exc.signum, stop.written, output)), highlight=False)
            raise typer.Exit(128 + exc.signum) from None


def records_path(html: Path) -> Path:
    """Where ``scan --format html -o HTML`` streams its records: ``HTML.jsonl`` beside it."""
    return html.with_name(html.name + ".jsonl")


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _scan(paths: list[Path], *, output: Path | None, fmt: str, resume: bool, force: bool, device: str,
          fail_on: str, batch_size: int | None, workers: int | None, max_memory: int | None,
          all_files: bool, follow_symlinks: bool, progress: bool, robustness: bool, err: Console,
          stop: _StopOnSignals, html: Path | None = None, evidence_dir: Path | None = None,
          table: bool = False) -> None:
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
        screener = _screener(err, device=device, batch_size=batch_size, workers=workers,
                             robustness=robustness, max_memory=max_memory)
        inputs = list(iter_inputs(paths, all_files=all_files, follow_symlinks=follow_symlinks))
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


def _screener(err: Console, **options: Any) -> Any:
    from ganscreen._assets import AssetError
    from ganscreen.pipeline import Screener

    try:
        return Screener(device=options.pop("device"), **options)
    except (ValueError, AssetError) as exc:
        _fail(err, str(exc))


def _evidence_maker(screener: Any) -> EvidenceMaker:
    from ganscreen.evidence import EvidenceMaker

    cnn = next((c for c in screener.checks if getattr(c, "name", None) == "cnn"), None)
    return EvidenceMaker(cnn=cnn, device=str(screener.device))


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
    from ganscreen.report import RecordWriter

    columns = _check_columns()
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
                counts[_records.outcome(report.status, report.verdict)] += 1
                rows[index] = (str(inputs[index].path), report, _records.outcome(report.status, report.verdict))
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


def _settle(target: Path, header: str, texts: list[str | None], err: Console) -> None:
    """After a resume: rewrite the output (atomically) so it holds one record per input, in
    input order, when it holds anything else (stale records, records out of order)."""
    from ganscreen._output import replace_file

    if any(t is None for t in texts):
        return  # cannot happen after a complete scan; never drop what is there
    text = header + "".join(t for t in texts if t is not None)
    try:
        if target.read_bytes() == text.encode("utf-8"):
            return
        replace_file(target, lambda fh: fh.write(text))
    except OSError as exc:
        _fail(err, f"cannot write {target}: {exc.strerror or exc}")


def _scan_ray(paths: list[Path], *, output: Path | None, device: str, fail_on: str, batch_size: int,
              all_files: bool, follow_symlinks: bool, progress: bool, robustness: bool,
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
        counts = ray_engine.run_scan(paths, output=output, fmt=fmt, device=device, batch_size=batch_size,
                                     actors=actors, address=address, all_files=all_files,
                                     follow_symlinks=follow_symlinks, robustness=robustness,
                                     progress=progress, stream=None if output is not None else _stdout())
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


def _stdout() -> IO[str]:
    _utf8_stdout()
    return sys.stdout


def _write_evidence(maker: EvidenceMaker, folder: Path, record: dict, err: Console) -> None:
    from ganscreen.evidence import write_evidence

    try:
        write_evidence(folder, record, maker.build(record))
    except OSError as exc:
        _fail(err, f"cannot write evidence to {folder}: {exc.strerror or exc}")


def _make_folder(folder: Path, err: Console) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(err, f"cannot create {folder}: {exc.strerror or exc}")


def _render(records_file: Path, html: Path, *, maker: EvidenceMaker | None, evidence_dir: Path | None,
            progress: bool, err: Console) -> None:
    """Render the HTML report of a JSON Lines records file (``scan --format html``, ``report``)."""
    from ganscreen.html_report import RecordsError, read_records, write_report

    try:
        loaded = read_records(records_file)
    except OSError as exc:
        _fail(err, f"cannot read {records_file}: {exc.strerror or exc}")
    except RecordsError as exc:
        _fail(err, f"cannot render {records_file}: {exc.detail}")
    if loaded.torn_bytes:
        err.print(escape(f"note: {records_file} ends in a torn line ({loaded.torn_bytes} bytes), "
                         "left out of the report"), highlight=False)
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


@app.command("report")
@_one_error_path
def report_command(
    records: Annotated[Path, typer.Argument(
        help="A JSON Lines file written by ganscreen scan (-o FILE, or the FILE.jsonl that "
             "scan --format html writes).", dir_okay=False, show_default=False)],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="The HTML file to write.", dir_okay=False, show_default=False)],
    evidence_dir: Annotated[Path | None, typer.Option(
        "--evidence-dir", help="Also write each file's evidence images as PNG files (and a "
                               "plain-text legend) to DIR/<hash of the path>/, for write-ups.",
        file_okay=False)] = None,
    device: Annotated[Device, typer.Option(
        help="Where the CNN runs for the occlusion maps: auto picks CUDA when available.",
        case_sensitive=False)] = Device.auto,
    progress: ProgressOption = True,
) -> None:
    """Render a self-contained HTML report from an earlier scan, without rescanning.

    The images are re-read from the recorded paths (relative paths from the current folder)
    to draw the evidence; a file that is gone or changed gets a card that says so.
    """
    from ganscreen.evidence import EvidenceMaker
    from ganscreen.faces import resolve_device

    err = Console(stderr=True, soft_wrap=True)
    try:
        resolved = str(resolve_device(device.value))
    except ValueError as exc:
        _fail(err, str(exc))
    if evidence_dir is not None:
        _make_folder(evidence_dir, err)
    try:
        _render(records, output, maker=EvidenceMaker(device=resolved), evidence_dir=evidence_dir,
                progress=progress, err=err)
    except KeyboardInterrupt:
        err.print(escape(f"interrupted: {output} not written"), highlight=False)
        raise typer.Exit(130) from None


class CampaignFormat(StrEnum):
    json = "json"
    html = "html"


@app.command("campaign")
@_one_error_path
def campaign_command(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Folders (or files) of the suspected network; subfolders directly under a folder "
             "are accounts. With --from-scan: the folders whose subfolders are accounts "
             "(default: the deepest folder holding every recorded file).",
        show_default=False)] = None,
    from_scan: Annotated[Path | None, typer.Option(
        "--from-scan", help="Use the records of an earlier JSON Lines scan instead of running "
                            "the checks (the images are still read, to hash them).",
        dir_okay=False)] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the summary to this file instead of standard output.",
        dir_okay=False)] = None,
    fmt: Annotated[CampaignFormat, typer.Option(
        "--format", "-f", help="json: the summary document; html: a self-contained page (needs -o).",
        case_sensitive=False)] = CampaignFormat.json,
    threshold: Annotated[int | None, typer.Option(
        min=0, max=20, help="Near-duplicate threshold in bits of 64 (default: the measured one).",
        show_default=False)] = None,
    device: Annotated[Device, typer.Option(
        help="Where models run when scanning: auto picks CUDA when available.",
        case_sensitive=False)] = Device.auto,
    progress: ProgressOption = True,
) -> None:
    """Summarise a suspected network: reused photos, a shared generator fingerprint, accounts.

    Scans PATH... (or reads --from-scan SCAN.jsonl), hashes every image (whole image and
    aligned face, plain and mirrored) to find photos reused across accounts, tests how many
    distinct faces carry each flag against ordinary real photos, and summarises each account
    (subfolders directly under a given folder). Exit 0 when the summary is written, 2 when not.
    """
    import json

    from ganscreen.campaign import DEFAULT_THRESHOLD, build, render_html

    err = Console(stderr=True, soft_wrap=True)
    given = list(paths or [])
    if from_scan is None and not given:
        _fail(err, "give folders to scan, or --from-scan SCAN.jsonl")
    if fmt is CampaignFormat.html and output is None:
        _fail(err, "--format html needs -o FILE")
    if from_scan is not None:
        from ganscreen.html_report import RecordsError, read_records

        try:
            loaded = read_records(from_scan)
        except OSError as exc:
            _fail(err, f"cannot read {from_scan}: {exc.strerror or exc}")
        except RecordsError as exc:
            _fail(err, f"cannot use {from_scan}: {exc.detail}")
        records = loaded.records
        if loaded.note:
            err.print(escape(f"note: {loaded.note}"), highlight=False)
        roots = [str(p) for p in given] if given else None
    else:
        records = _campaign_scan(given, device=device.value, progress=progress, err=err)
        roots = [str(p) for p in given if p.is_dir()]
    bar = _progress_bar("hashing", err, enabled=progress)
    with bar:
        task = bar.add_task("hash", total=len(records))
        summary = build(records, roots=roots, threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
                        paths=[str(p) for p in given], scan=None if from_scan is None else str(from_scan),
                        on_photo=lambda: bar.advance(task))
    try:
        if fmt is CampaignFormat.html:
            from ganscreen._output import output_target, replace_file

            assert output is not None
            replace_file(output_target(output), lambda fh: render_html(summary, fh), newline="\n",
                         errors="backslashreplace")
        else:
            text = json.dumps(summary, ensure_ascii=False, indent=1) + "\n"
            if output is None:
                _utf8_stdout()
                sys.stdout.write(text)
                sys.stdout.flush()
            else:
                from ganscreen._output import output_target, replace_file

                replace_file(output_target(output), lambda fh: fh.write(text), errors="backslashreplace")
    except OSError as exc:
        _fail(err, f"cannot write {exc.filename or output}: {exc.strerror or exc}")
    t = summary["totals"]
    err.print(escape(f"{t['files']} photos, {t['gan']} gan, {t['uncertain']} uncertain; "
                     f"{t['clusters']} reused photos ({t['photos_in_clusters']} copies); "
                     f"{t['accounts']} accounts" + (f"; summary: {output}" if output else "")), highlight=False)
    for test in summary["statistics"]["tests"]:
        err.print(escape(test["text"]), highlight=False)


def _campaign_scan(paths: list[Path], *, device: str, progress: bool, err: Console) -> list[dict]:
    """Records of a fresh scan of ``paths`` (kept in memory)."""
    from ganscreen.images import iter_inputs

    screener = _screener(err, device=device)
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
            paths: list[Path] | None = None) -> None:
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


def _suffixes() -> list[str]:
    from ganscreen.images import IMAGE_SUFFIXES

    return sorted(IMAGE_SUFFIXES)


def _progress_bar(label: str, err: Console, *, enabled: bool, transient: bool = False) -> Progress:
    """The one progress bar of every command: label, bar, done/total, time left, on stderr."""
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err, disable=not enabled, transient=transient)


def _fail(err: Console, message: str, code: int = EXIT_USAGE) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


# --------------------------------------------------------------------------- output file


def _read_existing(output: Path, fmt: str, columns: list[str], err: Console) -> ExistingOutput | None:
    """The records already in ``output`` for --resume; ``None`` when there is no such file."""
    from ganscreen.report import ResumeError, read_output

    try:
        return read_output(output, fmt, check_columns=columns)
    except FileNotFoundError:
        return None  # nothing to resume: a fresh scan, so --resume is safe in scripts
    except OSError as exc:
        _fail(err, f"cannot read {output}: {exc.strerror or exc}")
    except ResumeError as exc:
        _fail(err, f"cannot resume {output}: {exc}")


def _open_output(output: Path | None, existing: ExistingOutput | None, err: Console) -> IO[str]:
    """Standard output, a fresh file, or (resuming) the file cut back to its complete records."""
    if output is None:
        _utf8_stdout()
        return sys.stdout
    try:
        if existing is None:
            return open(output, "w", encoding="utf-8", newline="")  # noqa: SIM115
        if existing.torn_bytes:
            os.truncate(output, existing.complete_bytes)
        return open(output, "a", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        _fail(err, f"cannot write {output}: {exc.strerror or exc}")


def _utf8_stdout() -> None:
    # JSON Lines are UTF-8 by definition; a Latin-1 or ASCII locale must not make a file
    # named "写真.jpg" crash the scan. (Test runners may swap in streams without reconfigure.)
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None and not _is_utf8(getattr(sys.stdout, "encoding", None)):
        reconfigure(encoding="utf-8")


def _is_utf8(encoding: str | None) -> bool:
    try:
        return encoding is not None and codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def _write(writer: RecordWriter, report: Report, stop: _StopOnSignals, output: Path | None,
           err: Console) -> str:
    try:
        with stop.deferred():
            return writer.write(report)
    except OSError as exc:  # disk full, a closed pipe: the records so far stay complete
        where = output if output is not None else "standard output"
        _fail(err, f"cannot write {where}: {exc.strerror or exc} "
                   f"({writer.count} records written)")


# --------------------------------------------------------------------------- resume


def _plan_resume(inputs: list[InputFile], existing: ExistingOutput, *, version: str, force: bool,
                 output: Path, err: Console) -> list[RecordedFile | None]:
    """For each input, the record it keeps (``None``: screen it).

    A record is kept only when its path, size, modification time and content SHA-256 equal
    the file's now, and it was made by this model version. Each record is used once (the
    same file given twice gets two records, as in a fresh scan). Records of files that are
    gone are dropped; records of files that exist but are not among the inputs (the output
    of another scan) or made by another version stop the resume, unless ``force``.
    """
    from ganscreen.images import input_stamp
    from ganscreen.report import portable_text

    names = [portable_text(str(item.path)) for item in inputs]
    left: defaultdict[str, list[RecordedFile]] = defaultdict(list)
    for record in existing.records:
        left[record.path].append(record)
    wanted = set(names)
    strangers = [p for p in left if p not in wanted and os.path.lexists(p)]
    gone = sum(len(left[p]) for p in left if p not in wanted and p not in strangers)
    other = [r for r in existing.records if r.path in wanted and r.model_version not in (None, version)]
    if strangers and not force:
        _fail(err, f"cannot resume {output}: it holds records of {len(strangers)} files that are not "
                   f"among these inputs (such as {strangers[0]}): it was made from other inputs. "
                   "Give the same paths, scan to a new file, or add --force to drop those records")
    if other and not force:
        _fail(err, f"cannot resume {output}: {len(other)} of its records were made by model version "
                   f"{other[0].model_version}, not {version}. Scan to a new file, or add --force to "
                   "screen those files again")
    kept: list[RecordedFile | None] = []
    for item, name in zip(inputs, names, strict=True):
        candidates = left.get(name)
        record = None
        if candidates:
            stamp = input_stamp(item) or {}
            key = (name, stamp.get("size"), stamp.get("mtime"), stamp.get("sha256"))
            match = next((c for c in candidates if c.key == key and c.model_version in (None, version)), None)
            if match is not None:
                candidates.remove(match)
                record = match
        kept.append(record)
    reused = sum(r is not None for r in kept)
    line = f"resuming {output}: {reused} records kept"
    dropped = len(existing.records) - reused - gone - sum(len(left[p]) for p in strangers) - len(other)
    if dropped > 0:
        line += f", {dropped} records of changed files to be replaced"
    if other:
        line += f", {len(other)} records of another model version to be replaced (--force)"
    if gone:
        line += f", {gone} records of files that are gone dropped"
    if strangers:
        line += f", records of {len(strangers)} files that are not inputs dropped (--force)"
    if existing.torn_bytes:
        line += f", a torn last line ({existing.torn_bytes} bytes) removed"
    err.print(escape(line), highlight=False)
    return kept


# --------------------------------------------------------------------------- table


FLAG_WORDS = {"ffhq_alignment": "FFHQ-aligned eyes", "glasses_asymmetry": "mismatched glasses",
              "backdrop_distortion": "smeared backdrop", "cnn_artifacts": "GAN texture"}


def _print_table(outcomes: list[tuple[str, Report | None, str]]) -> None:
    """For a person at a terminal: one row per file, then the flagged files by name."""
    from rich.table import Table

    out = Console(soft_wrap=False, highlight=False)
    grid = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column, justify in (("file", "left"), ("verdict", "left"), ("score", "right"), ("flags", "left")):
        grid.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    flagged = []
    for path, report, outcome in outcomes:
        if report is None:
            grid.add_row(escape(path), escape(outcome), "", "recorded before")
            continue
        score = "" if report.score is None else f"{report.score:.2f}"
        words = ", ".join(FLAG_WORDS.get(f, f) for f in report.flags)
        note = words if report.status != "error" else (report.error or "")
        style = {"gan": "bold red", "uncertain": "yellow", "error": "dim"}.get(outcome, "")
        grid.add_row(escape(path), f"[{style}]{escape(outcome)}[/]" if style else escape(outcome),
                     score, escape(note))
        if outcome in ("gan", "uncertain"):
            flagged.append(f"{path} ({outcome})")
    out.print(grid)
    if flagged:
        out.print(escape(f"flagged ({len(flagged)}): " + ", ".join(flagged)), soft_wrap=True)
    else:
        out.print("flagged: none")


# --------------------------------------------------------------------------- signals


class ScanInterrupted(KeyboardInterrupt):
    """Raised in the main thread by SIGINT or SIGTERM.

    A KeyboardInterrupt, not an Exception, so the pipeline's per-file ``except Exception``
    guards (one bad file must not end a scan) cannot swallow it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _StopOnSignals:
    """Turns SIGINT and SIGTERM into :class:`ScanInterrupted`, never in the middle of a record.

    Python's default SIGTERM ends the process at once; raising instead lets the scan close
    its output the same way for both signals. While a record is being written the signal
    is held and raised right after, so the file only ever holds complete records.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.writer: RecordWriter | None = None
        self._held: int | None = None
        self._writing = False
        self._previous: dict[int, object] = {}

    @property
    def written(self) -> int:
        return self.writer.count if self.writer is not None else 0

    def __enter__(self) -> _StopOnSignals:
        # signal.signal only works in the main thread; elsewhere keep the defaults.
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, _frame: object) -> None:
        if self._writing:
            self._held = signum
            return
        raise ScanInterrupted(signum)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self._writing = True
        try:
            yield
        finally:
            self._writing = False
        if self._held is not None:
            raise ScanInterrupted(self._held)


def _interrupted_message(signum: int, written: int, output: Path | None) -> str:
    name = signal.Signals(signum).name
    if output is None:
        return f"interrupted by {name}: {written} complete records written"
    return (f"interrupted by {name}: {written} complete records written to {output}; "
            "run the same command with --resume to finish")


def _check_columns() -> list[str]:
    return [
        "geometry.score", "geometry.eye_error", "geometry.eye_error_px", "geometry.eye_error_eyes",
        "glasses.score", "glasses.present", "glasses.presence", "glasses.asymmetry",
        "backdrop.score", "backdrop.coherence", "backdrop.smear", "backdrop.mirror",
        "cnn.score",
    ]


def main() -> None:
    app()
