"""The HTML report: one self-contained page an analyst can open from disk.

A summary (counts, a score histogram, the model and its operating point) and one card per
record with its thumbnail, score, verdict, flags in plain words and each check's evidence
(:mod:`ganscreen.evidence`), embedded as ``data:`` URIs. No server, no network: the style
sheet and the small sort/filter script are inline, and a Content-Security-Policy lets only
that script (by hash) run and only ``data:`` images load.

Every string that comes from the input (file names, paths, error messages, anything in a
records file) goes through Jinja2's autoescaping; the only markup inserted unescaped is
the package's own style sheet and script.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any

import jinja2
import numpy as np
from markupsafe import Markup

from ganscreen._records import OUTCOMES, RecordsRead, as_mapping, one_line, outcome
from ganscreen._records import RecordsError as RecordsError  # re-exported for callers
from ganscreen._records import read_records as read_records
from ganscreen._report_cards import (
    JPEG_QUALITY,
    OUTCOME_LABELS,
    THUMB_SIDE,
    Card,
    Figure,
    _number,
    _text,
    build_card,
)
from ganscreen._version import __version__
from ganscreen.checks import flag_description
from ganscreen.checks import flags as registered_flags
from ganscreen.evidence import (
    Evidence,
    EvidenceMaker,
    evidence_files,
    evidence_folder_name,
    write_evidence,
)

_log = logging.getLogger("ganscreen")

__all__ = [
    "HISTOGRAM_BINS",
    "JPEG_QUALITY",
    "OUTCOMES",
    "OUTCOME_LABELS",
    "TEMPLATE",
    "THUMB_SIDE",
    "Bar",
    "Card",
    "Figure",
    "Records",
    "RecordsError",
    "build_card",
    "environment",
    "histogram",
    "read_records",
    "render_report",
    "summarise",
    "write_report",
]

TEMPLATE = "report.html.j2"
HISTOGRAM_BINS = 20



# --------------------------------------------------------------------------- reading records

# The one reading rule (a torn last line left out, anything else that is not a record an
# error naming its line) lives in ganscreen._records; these names are kept for callers.
Records = RecordsRead


# --------------------------------------------------------------------------- summary


@dataclass(slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    zone: str
    count: int
    low: float
    high: float


def summarise(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    scores: list[float] = []
    flags: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    for record in records:
        counts[outcome(record.get("status"), record.get("verdict"))] += 1
        score = _number(record.get("score"))
        if score is not None:
            scores.append(score)
        if isinstance(record.get("flags"), list):
            flags.update(_text(f) for f in record["flags"])
        model = as_mapping(record.get("model"))
        if model.get("version"):
            versions[_text(model["version"])] += 1
    fusion = _fusion()
    thresholds = fusion.get("thresholds", {})
    installed = f"ganscreen-{__version__}/{fusion.get('version')}"
    return {
        "files": len(records),
        "counts": [(k, OUTCOME_LABELS[k], counts.get(k, 0)) for k in OUTCOMES],
        "flags": [(f, flag_description(f) or "", n) for f, n in sorted(flags.items())],
        "histogram": histogram(scores, thresholds),
        "scored": len(scores),
        "versions": sorted(versions.items()),
        "installed": installed,
        "other_versions": any(v != installed for v in versions),
        "thresholds": [(k, f"{float(v):.4f}") for k, v in thresholds.items()],
        "operating_point": [(_text(k), _text(v)) for k, v in fusion.get("operating_point", {}).items()],
    }


def histogram(scores: Sequence[float], thresholds: Mapping[str, float]) -> dict[str, Any]:
    """Bars and threshold lines of an inline SVG score histogram (numbers only)."""
    left, right, top, bottom = 36.0, 412.0, 26.0, 128.0
    counts = np.histogram(np.clip(scores, 0, 1), bins=HISTOGRAM_BINS, range=(0, 1))[0] if scores \
        else np.zeros(HISTOGRAM_BINS, int)
    peak = max(int(counts.max()), 1)
    step = (right - left) / HISTOGRAM_BINS
    gan = float(thresholds.get("gan", 1.0))
    real = float(thresholds.get("real", 0.0))
    bars = []
    for i, n in enumerate(counts.tolist()):
        low, high = i / HISTOGRAM_BINS, (i + 1) / HISTOGRAM_BINS
        centre = (low + high) / 2
        zone = "gan" if centre >= gan else "real" if centre <= real else "uncertain"
        height = (bottom - top) * n / peak
        bars.append(Bar(x=round(left + i * step + 1, 2), y=round(bottom - height, 2),
                        width=round(step - 2, 2), height=round(height, 2), zone=zone, count=n,
                        low=low, high=high))

    def at(value: float) -> float:
        return round(left + (right - left) * min(max(value, 0.0), 1.0), 2)

    return {"bars": bars, "peak": peak, "left": left, "right": right, "top": top, "bottom": bottom,
            "ticks": [(at(t), f"{t:g}") for t in (0, 0.25, 0.5, 0.75, 1)],
            "lines": [("real", at(real), f"real ≤ {real:.3f}"), ("gan", at(gan), f"gan ≥ {gan:.3f}")]}


@cache
def _fusion() -> dict[str, Any]:
    from ganscreen._assets import load_json

    return load_json("fusion.json")


# --------------------------------------------------------------------------- rendering


@cache
def environment() -> jinja2.Environment:
    # autoescape=True for every template, whatever its name: nothing is rendered raw.
    return jinja2.Environment(loader=jinja2.PackageLoader("ganscreen", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


@cache
def _static(name: str) -> str:
    loader = environment().loader
    assert loader is not None
    source, _, _ = loader.get_source(environment(), name)
    return source


def _csp_hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def render_report(records: Sequence[Mapping[str, Any]], out: IO[str], *, maker: EvidenceMaker | None,
                  evidence_dir: Path | None = None, source: str | None = None,
                  on_card: Callable[[], None] | None = None) -> int:
    """Render the report of ``records`` to ``out``; returns the number of cards.

    Cards are built (and their evidence drawn and, with ``evidence_dir``, written) one at a
    time while the page streams out, so memory stays flat however many records there are.
    ``maker=None`` renders without re-reading any image (no thumbnails, no evidence).
    """
    script, style = _static("report.js"), _static("report.css")
    csp = ("default-src 'none'; img-src data:; "
           f"style-src '{_csp_hash(style)}'; script-src '{_csp_hash(script)}'; "
           "base-uri 'none'; form-action 'none'")
    count = 0

    def cards() -> Iterator[Card]:
        nonlocal count
        for index, record in enumerate(records):
            yield _card(index, record, maker, evidence_dir)
            count += 1
            if on_card is not None:
                on_card()

    context = {
        "title": f"ganscreen report: {len(records)} files",
        "generated": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "source": None if source is None else _text(source),
        "version": __version__,
        "summary": summarise(records),
        "cards": cards(),
        "outcomes": [(k, OUTCOME_LABELS[k]) for k in OUTCOMES],
        "flag_descriptions": {name: flag.description for name, flag in registered_flags().items()},
        "evidence_dir": None if evidence_dir is None else _text(evidence_dir),
        "evidence_files": {k: name for k, (name, _) in evidence_files().items()},
        # The package's own files, not input: the only markup inserted unescaped.
        "style": Markup(style),
        "script": Markup(script),
        "csp": csp,
    }
    # Chunk by chunk, as the template renders: a report of thousands of cards never sits
    # in memory whole (TemplateStream.dump would too, but its types want bytes or a path).
    for chunk in environment().get_template(TEMPLATE).generate(context):
        out.write(chunk)
    return count


def _card(index: int, record: Mapping[str, Any], maker: EvidenceMaker | None,
          evidence_dir: Path | None) -> Card:
    evidence = None
    folder = None
    if maker is not None:
        try:
            evidence = maker.build(record)
        except Exception as exc:  # never let one record end a report
            evidence = Evidence(notes={"image": f"evidence could not be drawn: {one_line(exc)}"})
            _log.warning("report: %s", evidence.notes["image"], exc_info=True)
        if evidence_dir is not None:
            written = write_evidence(evidence_dir, record, evidence)
            folder = None if written is None else written.name
    elif evidence_dir is not None and isinstance(record.get("path"), str):
        folder = evidence_folder_name(record["path"])
    return build_card(index, record, evidence, folder)


def write_report(path: Path, records: Sequence[Mapping[str, Any]], **kwargs: Any) -> int:
    """Render to a temporary file beside ``path`` and move it into place (never a half page).

    A symbolic link ``path`` is followed (the file it leads to is replaced, the link stays);
    a device, FIFO or folder is refused with :class:`~ganscreen._output.OutputError`.
    """
    from ganscreen._output import output_target, replace_file

    count = 0

    def render(fh: IO[str]) -> None:
        nonlocal count
        count = render_report(records, fh, **kwargs)

    replace_file(output_target(path), render, newline="\n", errors="backslashreplace")
    return count
