#!/usr/bin/env python3
"""How often does each flag fire on ordinary real photos? (``checks.json`` ``flag_rates``.)

    ganscreen scan UNSEEN -o unseen.jsonl
    ganscreen scan FIT -o fit.jsonl
    python scripts/flag_rates.py E=unseen.jsonl:UNSEEN F=fit.jsonl:FIT [--write [--note TEXT]]
        [--keep] [--quote E E2]

Each argument names a population (``E``, ``F``), a scan of a collection folder and the folder
(its ``SOURCES.tsv`` says which real photos are dataset-aligned). The population is the
ordinary (not dataset-aligned) real photos that screened ``ok``; for each registered flag the
script prints the share of them carrying it, per population and per source. ``--write`` puts
the shares into ``models/checks.json`` (``flag_rates``), which the report's plain-words line
of each flag quotes and a test checks against that line: the highest share among the
``--quote`` populations (the unseen sets; default ``E``), stored as ``quoted``. ``--keep``
keeps the stored shares of the populations this run does not name (a new population can be
added without rescanning the others).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, is_aligned_real, read_records, read_sources, relative_key, source_of, table  # noqa: E402
from ganscreen.checks import flags as registered_flags  # noqa: E402

CHECKS_JSON = ROOT / "src" / "ganscreen" / "models" / "checks.json"


def ordinary_real_flags(scan: Path, data: Path) -> list[tuple[str, tuple[str, ...]]]:
    """(source, flags) of every ordinary real photo of ``scan`` that screened ok."""
    sources = read_sources(data)
    out = []
    for record in read_records(scan):
        key = relative_key(record["path"])
        if key.startswith("real/") and not is_aligned_real(key, sources) and record.get("status") == "ok":
            out.append((source_of(key), tuple(record.get("flags") or ())))
    return out


def rates(rows: list[tuple[str, tuple[str, ...]]], names: list[str]) -> dict[str, float]:
    counts = collections.Counter(f for _, fl in rows for f in set(fl))
    return {name: round(counts[name] / len(rows), 4) if rows else 0.0 for name in names}


def parse_population(text: str) -> tuple[str, Path, Path]:
    name, _, rest = text.partition("=")
    scan, _, data = rest.partition(":")
    if not (name and scan and data):
        raise argparse.ArgumentTypeError(f"expected NAME=SCAN:DATA, got {text!r}")
    return name, Path(scan), Path(data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("populations", nargs="+", type=parse_population, metavar="NAME=SCAN:DATA")
    ap.add_argument("--write", action="store_true", help="store the shares in models/checks.json")
    ap.add_argument("--note", default="", help="what the populations are, stored with the shares")
    ap.add_argument("--keep", action="store_true", help="keep the stored shares of populations not named here")
    ap.add_argument("--quote", nargs="+", default=["E"], metavar="NAME",
                    help="populations whose highest share the flags' plain-words lines quote (default: E)")
    args = ap.parse_args(argv)
    named = {population for population, _, _ in args.populations}
    checks = json.loads(CHECKS_JSON.read_text(encoding="utf-8"))  # read once: --keep and --write
    old = checks.get("flag_rates", {}) if args.keep else {}
    stored = {p for v in old.values() if isinstance(v, dict) for p in v}
    if not set(args.quote) <= named | stored:
        ap.error(f"--quote names a population that has no shares: {' '.join(args.quote)}")
    names = sorted(registered_flags())
    result: dict[str, Any] = {name: {} for name in names}
    described = []
    for population, scan, data in args.populations:
        rows = ordinary_real_flags(scan, data)
        for name, share in rates(rows, names).items():
            result[name][population] = share
        described.append(f"{len(rows)} of {population}")
        by_source: dict[str, list[tuple[str, tuple[str, ...]]]] = collections.defaultdict(list)
        for row in rows:
            by_source[row[0]].append(row)
        print(f"## {population}: {len(rows)} ordinary real photos screened ok ({scan})")
        print(table([{"source": s, "n": len(r), **rates(r, names)} for s, r in sorted(by_source.items())],
                    ["source", "n", *names]))
    print(json.dumps(result, indent=2))
    if args.write:
        population = ("ordinary (not dataset-aligned) real photos that screened ok: " + ", ".join(described)
                      + (f" ({args.note})" if args.note else ""))
        command = "python scripts/flag_rates.py " + " ".join(f"{p}={s}:{d}" for p, s, d in args.populations)
        if args.keep:
            for name in names:
                kept = {p: v for p, v in old.get(name, {}).items() if p not in named}
                result[name] = {**kept, **result[name]}
            population += f"; kept from the previous run: {old.get('population', '')}"
            command += f" (kept: {old.get('command', '')})"
        checks["flag_rates"] = {"population": population, "command": command, "quoted": list(args.quote), **result}
        CHECKS_JSON.write_text(json.dumps(checks, indent=2) + "\n", encoding="utf-8")
        print(f"wrote flag_rates to {CHECKS_JSON}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
