"""Compare two scans' records: same files, statuses, verdicts, flags, errors and reasons,
scores (fused, each check's, each robustness variant's) within a tolerance.

    ganscreen scan photos/ -o before.jsonl      # at one commit
    ganscreen scan photos/ -o after.jsonl       # at another, same model files
    python scripts/compare_records.py before.jsonl after.jsonl [--tolerance 1e-3]

Prints each difference; exits 1 when there is any. Used to show a refactor keeps the
records (#12: samples/ and a 200-photo folder, with and without --robustness).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import read_records  # noqa: E402

EXACT = ("status", "verdict", "flags", "error", "reason")


def scores(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"score": record.get("score")}
    for name, check in (record.get("checks") or {}).items():
        out[f"checks.{name}.score"] = (check or {}).get("score")
    for i, variant in enumerate((record.get("robustness") or {}).get("variants") or []):
        out[f"robustness.{i}.score"] = variant.get("score")
        out[f"robustness.{i}.verdict"] = variant.get("verdict")
    return out


def differences(before: list[dict[str, Any]], after: list[dict[str, Any]], tolerance: float) -> list[str]:
    found: list[str] = []
    if [r["path"] for r in before] != [r["path"] for r in after]:
        found.append("the files (or their order) differ")
    by_path = {r["path"]: r for r in after}
    for old in before:
        new = by_path.get(old["path"])
        if new is None:
            continue
        found += [f"{old['path']}: {key}: {old.get(key)!r} != {new.get(key)!r}"
                  for key in EXACT if old.get(key) != new.get(key)]
        a, b = scores(old), scores(new)
        for key in sorted(set(a) | set(b)):
            x, y = a.get(key), b.get(key)
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
            if (numbers and abs(x - y) > tolerance) or (not numbers and x != y):
                found.append(f"{old['path']}: {key}: {x!r} != {y!r}")
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--tolerance", type=float, default=1e-3)
    args = ap.parse_args()
    before, after = read_records(args.before), read_records(args.after)
    found = differences(before, after, args.tolerance)
    print("\n".join(found))
    print(f"{len(before)} records compared, {len(found)} differences")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
