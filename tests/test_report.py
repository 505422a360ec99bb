"""CSV cells a spreadsheet would run as formulas are neutralised, and read back exactly."""

from __future__ import annotations

import csv
import io

import pytest

from ganscreen.report import RecordWriter, Report, neutralise_cell, read_output, restore_cell


@pytest.mark.parametrize("text, cell", [
    ("=HYPERLINK(\"http://x\").jpg", "'=HYPERLINK(\"http://x\").jpg"),
    ("+1.jpg", "'+1.jpg"), ("-2.jpg", "'-2.jpg"), ("@SUM(A1).jpg", "'@SUM(A1).jpg"),
    ("\tx.jpg", "'\tx.jpg"), ("'=x.jpg", "''=x.jpg"), ("plain.jpg", "plain.jpg"), ("'plain", "'plain"),
])
def test_formula_cells_get_a_quote_and_come_back_exactly(text: str, cell: str) -> None:
    assert neutralise_cell(text) == cell
    assert restore_cell(cell) == text


def test_csv_rows_neutralise_text_not_numbers(tmp_path) -> None:  # noqa: ANN001
    report = Report(path="=cmd|' /C calc'!A0.jpg", status="error", error="-bad", score=None,
                    file={"size": 3, "mtime": 1.5, "sha256": "ab"})
    path = tmp_path / "scan.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        RecordWriter(fh, "csv", check_columns=[]).write(report)
    [row] = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    assert row["path"] == "'=cmd|' /C calc'!A0.jpg" and row["error"] == "'-bad"
    assert row["file_size"] == "3" and row["file_mtime"] == "1.5" and row["file_sha256"] == "ab"
    [recorded] = read_output(path, "csv", check_columns=[]).records
    assert recorded.key == ("=cmd|' /C calc'!A0.jpg", 3, 1.5, "ab")  # resume compares the real name


def test_each_flag_says_how_often_it_fires_on_real_photos_as_measured() -> None:
    import re

    from ganscreen._assets import load_json
    from ganscreen.checks import flags

    rates = load_json("checks.json")["flag_rates"]
    assert set(flags()) <= set(rates)  # every registered flag has a measured rate
    for flag, text in ((name, f.description) for name, f in flags().items()):
        said = re.search(r"fires on up to ([0-9.]+) % of ordinary real photos", text)
        assert said is not None, flag
        quoted = max(rates[flag][population] for population in rates["quoted"])  # the unseen sets
        assert float(said.group(1)) == pytest.approx(100 * quoted, abs=0.05), flag
