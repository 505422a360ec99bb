"""Command line: ``ganscreen scan PATH...``, ``ganscreen report SCAN.jsonl`` and
``ganscreen campaign PATH...`` (or ``--from-scan SCAN.jsonl``).

Exit codes: 0 finished and nothing at or above ``--fail-on``; 1 finished and something was
flagged; 2 usage error or unwritable output; 128 + signal number (130 for Ctrl-C, 143 for
SIGTERM) when stopped by a signal. A bad image is a record, never an exit code.
``ganscreen report`` exits 0 when the page is written and 2 when it cannot be.
"""

from __future__ import annotations

import codecs
import os
import signal
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ganscreen._version import __version__

if TYPE_CHECKING:
    from ganscreen.evidence import EvidenceMaker
    from ganscreen.images import InputFile
    from ganscreen.report import ExistingOutput, RecordedFile, RecordWriter, Report

EXIT_CLEAN, EXIT_FLAGGED, EXIT_USAGE = 0, 1, 2

app = typer.Typer(
    name="ganscreen",
    help="Screen profile photos for GAN-generated (StyleGAN) faces, offline, with evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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
) -> None:
    """Screen profile photos for GAN-generated faces."""


@app.command()
def scan(
    paths: Annotated[list[Path], typer.Argument(
        help="Image files or folders (searched recursively, in sorted order).",
        show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write records to this file instead of standard output.",
        dir_okay=False)] = None,
    fmt: Annotated[OutputFormat, typer.Option(
        "--format", "-f", help="Record format: JSON Lines (one object per line), CSV, or html: "
                               "a self-contained HTML report with evidence images (needs -o; "
                               "the records stream to OUTPUT.jsonl beside it as the scan goes, "
                               "and --resume continues that file).",
        case_sensitive=False)] = OutputFormat.jsonl,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue an interrupted scan: keep the records already in the -o "
                         "file, cut off a torn last line, and append records only for files "
                         "not yet recorded (same path, size and modification time).")] = False,
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
    if engine is Engine.ray:
        refused = [name for name, used in (("--resume", resume), ("--format csv", fmt is OutputFormat.csv),
                                           ("--format html", fmt is OutputFormat.html),
                                           ("--evidence-dir", evidence_dir is not None)) if used]
        if refused:
            _fail(err, f"{', '.join(refused)} cannot be used with --engine ray (use --engine local)")
        _scan_ray(paths, output=output, device=device.value, fail_on=fail_on.value, batch_size=batch_size,
                  all_files=all_files, follow_symlinks=follow_symlinks, progress=progress,
                  robustness=robustness, address=ray_address, actors=actors, err=err)
    if ray_address is not None or actors is not None:
        _fail(err, "--ray-address and --actors need --engine ray")
    if resume and output is None:
        _fail(err, "--resume needs -o FILE: it continues the scan recorded in that file")
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
                  device=device.value, fail_on=fail_on.value, batch_size=batch_size, workers=workers,
                  all_files=all_files, follow_symlinks=follow_symlinks, progress=progress,
                  robustness=robustness, err=err, stop=stop, html=html, evidence_dir=evidence_dir)
        except ScanInterrupted as exc:
            err.print(escape(_interrupted_message(exc.signum, stop.written, output)), highlight=False)
            raise typer.Exit(128 + exc.signum) from None


def records_path(html: Path) -> Path:
    """Where ``scan --format html -o HTML`` streams its records: ``HTML.jsonl`` beside it."""
    return html.with_name(html.name + ".jsonl")


def _scan(paths: list[Path], *, output: Path | None, fmt: str, resume: bool, device: str,
          fail_on: str, batch_size: int | None, workers: int | None, all_files: bool,
          follow_symlinks: bool, progress: bool, robustness: bool, err: Console, stop: _StopOnSignals, html: Path | None = None,
          evidence_dir: Path | None = None) -> None:
    from ganscreen.evidence import EvidenceMaker
    from ganscreen.images import iter_inputs
    from ganscreen.pipeline import Screener
    from ganscreen.report import RecordWriter

    columns = _check_columns()
    existing = _read_existing(output, fmt, columns, err) if resume and output is not None else None
    stream = _open_output(output, existing, err)
    try:
        try:
            screener = Screener(device=device, batch_size=batch_size, workers=workers, robustness=robustness)
        except ValueError as exc:
            _fail(err, str(exc))
        if existing is not None and output is not None:
            _announce_resume(err, output, existing, screener.model_info["version"])
        writer = RecordWriter(stream, fmt, check_columns=columns,
                              write_header=existing is None or existing.complete_bytes == 0)
        stop.writer = writer
        maker = None
        if html is not None or evidence_dir is not None:
            cnn = next((c for c in screener.checks if getattr(c, "name", None) == "cnn"), None)
            maker = EvidenceMaker(cnn=cnn, device=str(screener.device))
        # With html the evidence is drawn once, for the page, after the scan.
        streamed_evidence = evidence_dir if html is None else None

        def inputs() -> Iterator[InputFile]:
            return iter_inputs(paths, all_files=all_files, follow_symlinks=follow_symlinks)

        records = existing.records if existing is not None else []
        total = sum(1 for _ in _pending(inputs(), _Recorded(records), Counter()))
        # counts covers every input: the skipped ones (outcome from their kept record) too, so
        # --fail-on judges the whole scan, not only the part this run did.
        counts: Counter[str] = Counter()
        bar = Progress(TextColumn("scanning"), BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn(), console=err, disable=not progress, transient=False)
        with bar:
            task = bar.add_task("scan", total=total)
            for report in screener.scan_inputs(_pending(inputs(), _Recorded(records), counts)):
                if streamed_evidence is not None and maker is not None:
                    # Before the record: a record in the output means its evidence is on disk,
                    # so a resumed scan never leaves a recorded file without evidence.
                    _write_evidence(maker, streamed_evidence, report.to_record(), err)
                _write(writer, report, stop, output, err)
                counts[_outcome(report)] += 1
                bar.advance(task)
    finally:
        if output is not None:
            stream.close()
    if html is not None and output is not None:
        _render(output, html, maker=maker, evidence_dir=evidence_dir, progress=progress, err=err)
    _finish(err, counts, sum(counts.values()) - writer.count, fail_on)


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
    _finish(err, counts, 0, fail_on)


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
        _fail(err, f"cannot render {records_file}: {exc}")
    if loaded.torn_bytes:
        err.print(escape(f"note: {records_file} ends in a torn line ({loaded.torn_bytes} bytes), "
                         "left out of the report"), highlight=False)
    bar = Progress(TextColumn("rendering"), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), console=err, disable=not progress, transient=False)
    try:
        with bar:
            task = bar.add_task("render", total=len(loaded.records))
            count = write_report(html, loaded.records, maker=maker, evidence_dir=evidence_dir,
                                 source=str(records_file), on_card=lambda: bar.advance(task))
    except OSError as exc:  # the page, or a file under --evidence-dir
        _fail(err, f"cannot write {exc.filename or html}: {exc.strerror or exc}")
    err.print(escape(f"report: {html} ({count} files)"), highlight=False)


@app.command("report")
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

    from ganscreen.campaign import DEFAULT_THRESHOLD, build, write_html

    err = Console(stderr=True, soft_wrap=True)
    given = list(paths or [])
    if from_scan is None and not given:
        _fail(err, "give folders to scan, or --from-scan SCAN.jsonl")
    if fmt is CampaignFormat.html and output is None:
        _fail(err, "--format html needs -o FILE")
    if from_scan is not None:
        from ganscreen.html_report import RecordsError, read_records

        try:
            records = read_records(from_scan).records
        except OSError as exc:
            _fail(err, f"cannot read {from_scan}: {exc.strerror or exc}")
        except RecordsError as exc:
            _fail(err, f"cannot use {from_scan}: {exc}")
        roots = [str(p) for p in given] if given else None
    else:
        records = _campaign_scan(given, device=device.value, progress=progress, err=err)
        roots = [str(p) for p in given if p.is_dir()]
    bar = Progress(TextColumn("hashing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=err, disable=not progress, transient=False)
    with bar:
        task = bar.add_task("hash", total=len(records))
        summary = build(records, roots=roots, threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
                        paths=[str(p) for p in given], scan=None if from_scan is None else str(from_scan),
                        on_photo=lambda: bar.advance(task))
    try:
        if fmt is CampaignFormat.html:
            assert output is not None
            write_html(output, summary)
        else:
            text = json.dumps(summary, ensure_ascii=False, indent=1) + "\n"
            if output is None:
                _utf8_stdout()
                sys.stdout.write(text)
                sys.stdout.flush()
            else:
                output.write_text(text, encoding="utf-8", errors="backslashreplace")
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
    from ganscreen.pipeline import Screener

    try:
        screener = Screener(device=device)
    except ValueError as exc:
        _fail(err, str(exc))
    items = list(iter_inputs(paths))
    records = []
    bar = Progress(TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=err, disable=not progress, transient=False)
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


def _finish(err: Console, counts: Counter[str], resumed: int, fail_on: str) -> None:
    summary = ", ".join(f"{counts[k]} {k}" for k in ("gan", "uncertain", "real", "no_face", "error"))
    if resumed:
        summary += f" ({resumed} of them recorded before this run)"
    err.print(summary, highlight=False)
    flagged = {"gan": ("gan",), "uncertain": ("gan", "uncertain"), "never": ()}[fail_on]
    raise typer.Exit(EXIT_FLAGGED if any(counts[v] for v in flagged) else EXIT_CLEAN)


def _outcome(report: Report) -> str:
    return report.verdict if report.status == "ok" and report.verdict else report.status


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


def _announce_resume(err: Console, output: Path, existing: ExistingOutput, version: str) -> None:
    line = f"resuming {output}: {len(existing.records)} records kept"
    if existing.torn_bytes:
        line += f", a torn last line ({existing.torn_bytes} bytes) removed"
    err.print(escape(line), highlight=False)
    other = sum(1 for r in existing.records if r.model_version not in (None, version))
    if other:
        # Kept, not re-scanned: dropping results is worse than mixing versions, but say so.
        err.print(f"note: {other} kept records were made by another model version, not {version}",
                  highlight=False)


def _write(writer: RecordWriter, report: Report, stop: _StopOnSignals, output: Path | None,
           err: Console) -> None:
    try:
        with stop.deferred():
            writer.write(report)
    except OSError as exc:  # disk full, a closed pipe: the records so far stay complete
        where = output if output is not None else "standard output"
        _fail(err, f"cannot write {where}: {exc.strerror or exc} "
                   f"({writer.count} records written)")


# --------------------------------------------------------------------------- resume


class _Recorded:
    """Records already in the output, each one consumed by the first input it matches.

    Consuming (rather than a set lookup) keeps the count right when the same file is given
    twice on the command line: a fresh scan writes two records, so a resume must too.
    """

    def __init__(self, records: Iterable[RecordedFile]) -> None:
        self._left: defaultdict[tuple[str, int | None, float | None], list[str]] = defaultdict(list)
        for record in records:
            self._left[record.key].append(record.outcome)

    def take(self, item: InputFile) -> str | None:
        """The recorded outcome of ``item`` if it is already in the output, else ``None``."""
        if not self._left:
            return None
        outcomes = self._left.get(_input_key(item))
        if not outcomes:
            return None  # new, or changed since it was recorded: screen it (again)
        return outcomes.pop()


def _input_key(item: InputFile) -> tuple[str, int | None, float | None]:
    """``item`` keyed as its record would be (RecordedFile.key): path, size and mtime."""
    from ganscreen.images import file_stamp
    from ganscreen.report import portable_text

    stamp = file_stamp(item.path) or {}
    return (portable_text(str(item.path)), stamp.get("size"), stamp.get("mtime"))


def _pending(inputs: Iterable[InputFile], recorded: _Recorded, counts: Counter[str]) -> Iterator[InputFile]:
    """The inputs not yet in the output; the outcomes of the others are added to ``counts``."""
    for item in inputs:
        outcome = recorded.take(item)
        if outcome is None:
            yield item
        else:
            counts[outcome] += 1


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
