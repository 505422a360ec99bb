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

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from ganscreen._cli_common import (
    EXIT_CLEAN,
    EXIT_FLAGGED,
    EXIT_USAGE,
    _fail,
    _load_records,
    _make_folder,
    _one_error_path,
    _parse_bytes,
    _progress_bar,
    _State,
    _stdout_is_terminal,
    _utf8_stdout,
)
from ganscreen._cli_scan import _campaign_scan, _render, _scan, _scan_options, _scan_ray
from ganscreen._cli_terminal import ScanInterrupted, _interrupted_message, _StopOnSignals
from ganscreen._version import __version__

__all__ = [
    "EXIT_CLEAN",
    "EXIT_FLAGGED",
    "EXIT_USAGE",
    "CampaignFormat",
    "Device",
    "Engine",
    "FailOn",
    "OutputFormat",
    "ProgressOption",
    "ScanInterrupted",
    "app",
    "campaign_command",
    "main",
    "records_path",
    "report_command",
    "scan",
]


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
    options = _scan_options(err, device=device.value, batch_size=batch_size, workers=workers, max_memory=memory,
                            robustness=robustness, all_files=all_files, follow_symlinks=follow_symlinks)
    if engine is Engine.ray:
        refused = [name for name, used in (("--resume", resume), ("--format csv", fmt is OutputFormat.csv),
                                           ("--format html", fmt is OutputFormat.html),
                                           ("--evidence-dir", evidence_dir is not None),
                                           ("--max-memory", memory is not None)) if used]
        if refused:
            _fail(err, f"{', '.join(refused)} cannot be used with --engine ray (use --engine local)")
        _scan_ray(paths, options=options, output=output, fail_on=fail_on.value, progress=progress,
                  address=ray_address, actors=actors, err=err)
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
            _scan(paths, options=options, output=output, fmt="jsonl" if html is not None else fmt.value,
                  resume=resume, force=force, fail_on=fail_on.value, progress=progress, err=err,
                  stop=stop, html=html, evidence_dir=evidence_dir, table=table)
        except ScanInterrupted as exc:
            err.print(escape(_interrupted_message(exc.signum, stop.written, output)), highlight=False)
            raise typer.Exit(128 + exc.signum) from None


def records_path(html: Path) -> Path:
    """Where ``scan --format html -o HTML`` streams its records: ``HTML.jsonl`` beside it."""
    return html.with_name(html.name + ".jsonl")


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
        records = _load_records(from_scan, err, purpose="use").records
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


def main() -> None:
    app()
