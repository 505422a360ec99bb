"""Command line: ``ganscreen scan PATH...``.

Exit codes: 0 finished and nothing at or above ``--fail-on``; 1 finished and something was
flagged; 2 usage error or unwritable output. A bad image is a record, never an exit code.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ganscreen._version import __version__

EXIT_CLEAN, EXIT_FLAGGED, EXIT_USAGE = 0, 1, 2

app = typer.Typer(
    name="ganscreen",
    help="Screen profile photos for GAN-generated (StyleGAN) faces, offline, with evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class OutputFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


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
        "--format", "-f", help="Record format: JSON Lines (one object per line) or CSV.",
        case_sensitive=False)] = OutputFormat.jsonl,
    device: Annotated[Device, typer.Option(
        help="Where models run: auto picks CUDA when available, else the CPU.",
        case_sensitive=False)] = Device.auto,
    fail_on: Annotated[FailOn, typer.Option(
        help="Exit with status 1 when any image's verdict is at or above this level "
             "(gan; uncertain = gan or uncertain; never = always exit 0 after a scan).",
        case_sensitive=False)] = FailOn.gan,
    batch_size: Annotated[int, typer.Option(
        min=1, max=1024, help="Images decoded and sent through face detection together.")] = 8,
    all_files: Annotated[bool, typer.Option(
        "--all-files", help="In folders, treat every file as an input, not only image "
                            "suffixes (.jpg, .png, .webp, ...).")] = False,
    follow_symlinks: Annotated[bool, typer.Option(
        "--follow-symlinks", help="Follow symbolic links that lead outside the scanned "
                                  "folders (never followed by default).")] = False,
    progress: Annotated[bool, typer.Option(
        "--progress/--no-progress", help="Show a progress bar on standard error.")] = True,
) -> None:
    """Scan images and write one record per input file.

    Records go to standard output as JSON Lines unless -o is given; the progress bar goes to
    standard error. Every input file gets exactly one record, with status ok, no_face or
    error (and a one-line message).
    """
    from ganscreen.images import iter_inputs
    from ganscreen.pipeline import Screener
    from ganscreen.report import RecordWriter

    err = Console(stderr=True)
    stream: IO[str]
    try:
        stream = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout  # noqa: SIM115
    except OSError as exc:
        err.print(f"[red]error:[/red] cannot write {output}: {exc.strerror or exc}")
        raise typer.Exit(EXIT_USAGE) from None
    try:
        screener = Screener(device=device.value, batch_size=batch_size)
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_USAGE) from None

    columns = _check_columns()
    writer = RecordWriter(stream, fmt.value, check_columns=columns)
    total = sum(1 for _ in iter_inputs(paths, all_files=all_files, follow_symlinks=follow_symlinks))
    inputs = iter_inputs(paths, all_files=all_files, follow_symlinks=follow_symlinks)
    counts = {"gan": 0, "uncertain": 0, "real": 0, "no_face": 0, "error": 0}
    bar = Progress(TextColumn("scanning"), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), console=err, disable=not progress, transient=False)
    try:
        with bar:
            task = bar.add_task("scan", total=total)
            for report in screener.scan_inputs(inputs):
                writer.write(report)
                key = report.verdict if report.status == "ok" and report.verdict else report.status
                counts[key] = counts.get(key, 0) + 1
                bar.advance(task)
    except KeyboardInterrupt:
        err.print("interrupted: every record written so far is complete")
        raise typer.Exit(130) from None
    finally:
        if output:
            stream.close()

    err.print(", ".join(f"{v} {k}" for k, v in counts.items()))
    flagged = {"gan": ("gan",), "uncertain": ("gan", "uncertain"), "never": ()}[fail_on.value]
    raise typer.Exit(EXIT_FLAGGED if any(counts[v] for v in flagged) else EXIT_CLEAN)


def _check_columns() -> list[str]:
    return [
        "geometry.score", "geometry.eye_error", "geometry.eye_error_px", "geometry.eye_error_eyes",
        "glasses.score", "glasses.present", "glasses.presence", "glasses.asymmetry",
        "backdrop.score", "backdrop.coherence", "backdrop.smear", "backdrop.mirror",
        "cnn.score",
    ]


def main() -> None:
    app()
