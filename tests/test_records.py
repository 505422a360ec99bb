"""ganscreen._records: the one rule for reading records back, and the shared record helpers."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest

from ganscreen import _records
from ganscreen._output import OutputError
from ganscreen._records import (
    ONE_LINE_LIMIT,
    RecordsError,
    largest_face,
    one_line,
    outcome,
    parse_records,
    read_records,
    write_bytes_atomic,
    write_text_atomic,
)
from ganscreen.report import RecordWriter, Report, read_output


def _line(path: str, status: str = "error", **extra: object) -> bytes:
    return (json.dumps({"path": path, "status": status, **extra}, ensure_ascii=False) + "\n").encode("utf-8")


# --------------------------------------------------------------------------- the torn-line rule


def test_a_torn_final_line_is_left_out_and_reported() -> None:
    data = _line("a.jpg") + _line("b.jpg") + b'{"path": "c.jpg", "sta'
    read = parse_records(data, "scan.jsonl")
    assert [r["path"] for r in read.records] == ["a.jpg", "b.jpg"]
    assert read.torn is not None and (read.torn.line, read.torn.size) == (3, 22)
    assert read.torn_bytes == 22 and read.terminated_bytes == len(data) - 22
    assert read.note is not None and read.note.startswith("scan.jsonl ends in a torn line (line 3, 22 bytes")


def test_a_record_cut_inside_a_multibyte_character_is_torn_too() -> None:
    whole = _line("写真.jpg")
    data = _line("a.jpg") + whole[: whole.index("真".encode()) + 1]
    read = parse_records(data, "scan.jsonl")
    assert [r["path"] for r in read.records] == ["a.jpg"] and read.torn is not None


def test_a_complete_final_record_without_its_newline_is_kept() -> None:
    data = _line("a.jpg") + _line("b.jpg").rstrip(b"\n")
    read = parse_records(data, "scan.jsonl")
    assert [r["path"] for r in read.records] == ["a.jpg", "b.jpg"]
    assert read.torn is None and read.note is None
    assert read.terminated_bytes == len(_line("a.jpg"))  # appending starts after the last newline


@pytest.mark.parametrize("bad", [b"\x00\x00", b'{"path": "b.jpg", "sta', b"not json"])
def test_a_bad_line_in_the_middle_names_the_file_and_line(bad: bytes) -> None:
    data = _line("a.jpg") + bad + b"\n" + _line("c.jpg")
    with pytest.raises(RecordsError) as caught:
        parse_records(data, "/tmp/scan.jsonl")
    assert str(caught.value) == "/tmp/scan.jsonl: line 2 is not JSON"
    assert (caught.value.line, caught.value.detail) == (2, "line 2 is not JSON")


def test_a_bad_final_line_with_its_newline_is_not_a_torn_write() -> None:
    # A write that ended with its newline was not cut short: the damage is real.
    with pytest.raises(RecordsError, match="line 2 is not JSON"):
        parse_records(_line("a.jpg") + b'{"path": "b.jpg"\n', "scan.jsonl")


def test_unterminated_text_that_never_was_a_record_is_an_error() -> None:
    # A torn write starts a JSON object; a file that ends in other text is not a scan.
    with pytest.raises(RecordsError, match="line 2 is not JSON"):
        parse_records(_line("a.jpg") + b"path,status", "scan.jsonl")


@pytest.mark.parametrize("value", [[1, 2], {"path": "a.jpg"}, {"path": 3, "status": "ok"},
                                   {"path": "a.jpg", "status": "maybe"}])
def test_json_that_is_not_a_record_is_an_error_even_at_the_end(value: object) -> None:
    data = _line("a.jpg") + json.dumps(value).encode()
    with pytest.raises(RecordsError, match="^scan.jsonl: line 2 is not a ganscreen record$"):
        parse_records(data, "scan.jsonl")


def test_blank_lines_are_skipped_and_lines_keep_their_numbers() -> None:
    data = b"\n   \n" + _line("a.jpg") + b"\r\n\t\n" + _line("b.jpg") + b"\n  "
    read = parse_records(data, "scan.jsonl")
    assert [r["path"] for r in read.records] == ["a.jpg", "b.jpg"] and read.lines == [3, 6]
    assert read.torn is None
    start, end = read.spans[1]
    assert data[start:end] == _line("b.jpg")
    with pytest.raises(RecordsError, match="line 4 is not JSON"):
        parse_records(b"\n\n" + _line("a.jpg") + b"oops\n" + _line("b.jpg"), "scan.jsonl")


def test_crlf_line_endings_are_lines() -> None:
    data = _line("a.jpg").replace(b"\n", b"\r\n") + _line("b.jpg").replace(b"\n", b"\r\n")
    assert [r["path"] for r in parse_records(data, "s").records] == ["a.jpg", "b.jpg"]


def test_unicode_line_separators_in_a_name_do_not_split_the_record() -> None:
    name = "a\u2028b\u0085c\x0cd.jpg"  # str.splitlines would cut this record in four
    read = parse_records(_line(name) + _line("e.jpg"), "s")
    assert [r["path"] for r in read.records] == [name, "e.jpg"]


def test_a_byte_order_mark_is_accepted_at_the_start_only() -> None:
    bom = b"\xef\xbb\xbf"
    assert [r["path"] for r in parse_records(bom + _line("a.jpg"), "s").records] == ["a.jpg"]
    with pytest.raises(RecordsError, match="line 2 is not JSON"):
        parse_records(_line("a.jpg") + bom + _line("b.jpg"), "s")


def test_text_that_is_not_utf8_is_an_error() -> None:
    with pytest.raises(RecordsError, match="line 1 is not JSON"):
        parse_records('{"path": "café.jpg", "status": "ok"}\n'.encode("latin-1") + _line("b.jpg"), "s")


def test_a_csv_scan_is_refused_with_a_hint() -> None:
    with pytest.raises(RecordsError, match="line 1 is not JSON: expected the JSON Lines output .* CSV"):
        parse_records(b"path,status,error\r\na.jpg,error,x\r\n", "scan.csv")


def test_an_empty_file_has_no_records() -> None:
    read = parse_records(b"", "s")
    assert (read.records, read.torn, read.terminated_bytes) == ([], None, 0)


def test_accept_chooses_what_counts_as_a_record() -> None:
    data = b'{"file": "gan/a.jpg"}\n{"file": "gan/b.jpg", "box"'
    read = parse_records(data, "cache", accept=lambda v: isinstance(v, dict) and isinstance(v.get("file"), str))
    assert [r["file"] for r in read.records] == ["gan/a.jpg"] and read.torn is not None
    with pytest.raises(RecordsError, match="not a ganscreen record"):
        parse_records(data, "cache")


def test_read_records_reads_files_written_by_the_scan_writer(tmp_path: Path) -> None:
    buf = io.StringIO()
    writer = RecordWriter(buf, "jsonl")
    for name in ("a.jpg", "b\nc.jpg"):
        writer.write(Report(path=name, status="error", error="truncated image file"))
    path = tmp_path / "scan.jsonl"
    path.write_bytes(buf.getvalue().encode("utf-8") + b'{"path": "d')
    read = read_records(path)
    assert [r["path"] for r in read.records] == ["a.jpg", "b\nc.jpg"]
    assert read.source == str(path) and read.torn_bytes == 11


def test_read_records_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "scan.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="not a regular file"):
        read_records(fifo)


def test_every_reader_applies_the_same_rule(tmp_path: Path) -> None:
    from ganscreen.html_report import read_records as report_reader

    path = tmp_path / "scan.jsonl"
    path.write_bytes(_line("a.jpg", size=1) + b'{"path": "b.jpg", "stat')
    assert report_reader is read_records
    loaded = report_reader(path)
    existing = read_output(path, "jsonl", check_columns=[])
    assert [r["path"] for r in loaded.records] == [r.path for r in existing.records] == ["a.jpg"]
    assert loaded.torn_bytes == existing.torn_bytes == 23


def test_resume_never_appends_onto_an_unterminated_record(tmp_path: Path) -> None:
    path = tmp_path / "scan.jsonl"
    first = _line("a.jpg")
    path.write_bytes(first + _line("b.jpg").rstrip(b"\n"))
    existing = read_output(path, "jsonl", check_columns=[])
    # The record is readable, but the scan appends: it is cut and b.jpg screened again.
    assert [r.path for r in existing.records] == ["a.jpg"]
    assert existing.complete_bytes == len(first)


# --------------------------------------------------------------------------- outcome


@pytest.mark.parametrize(("status", "verdict", "expected"), [
    ("ok", "gan", "gan"), ("ok", "uncertain", "uncertain"), ("ok", "real", "real"),
    ("no_face", None, "no_face"), ("error", None, "error"),
    ("no_face", "gan", "no_face"),  # a verdict on a record that was not judged is not one
    ("ok", None, "ok"), ("ok", "maybe", "ok"), (None, None, "None"),
])
def test_outcome(status: object, verdict: object, expected: str) -> None:
    assert outcome(status, verdict) == expected


# --------------------------------------------------------------------------- largest face


def _face(x1: float, y1: float, x2: float, y2: float, **extra: object) -> dict:
    return {"box": [x1, y1, x2, y2], "confidence": 0.99,
            "landmarks": [[x1 + 1, y1 + 1]] * 5, **extra}


def test_largest_face_is_the_largest_box() -> None:
    small, big, middle = _face(0, 0, 10, 10), _face(0, 0, 40, 30), _face(5, 5, 25, 25)
    assert largest_face([small, big, middle]) is big


def test_largest_face_keeps_the_first_of_equals() -> None:
    first, second = _face(0, 0, 10, 10, tag=1), _face(50, 50, 60, 60, tag=2)
    assert largest_face([first, second]) is first


@pytest.mark.parametrize("broken", [
    {"box": [0, 0, 100, 100], "landmarks": [[1, 1]] * 4},  # four landmarks
    {"box": [0, 0, 100, 100], "landmarks": [[1, 1, 1]] * 5},
    {"box": [0, 0, 100], "landmarks": [[1, 1]] * 5},
    {"box": [0, 0, 100, float("nan")], "landmarks": [[1, 1]] * 5},
    {"box": [0, 0, 100, 100], "landmarks": [[1, float("inf")]] * 5},
    {"box": [0, 0, "100", 100], "landmarks": [[1, 1]] * 5},
    {"box": [0, 0, True, 100], "landmarks": [[1, 1]] * 5},
    {"landmarks": [[1, 1]] * 5},
    "a face",
])
def test_largest_face_skips_faces_it_cannot_place(broken: object) -> None:
    usable = _face(0, 0, 10, 10)
    assert largest_face([broken, usable]) is usable


def test_an_inverted_box_has_no_area() -> None:
    # (x2 - x1) * (y2 - y1) of an inverted box is positive: clamped, it is no area at all.
    inverted, real = _face(100, 100, 0, 0), _face(0, 0, 5, 5)
    assert largest_face([inverted, real]) is real


@pytest.mark.parametrize("faces", [None, [], "faces", {"box": [0, 0, 1, 1]}])
def test_no_usable_face(faces: object) -> None:
    assert largest_face(faces) is None


def test_the_evidence_and_the_campaign_use_the_same_face() -> None:
    from ganscreen.campaign import record_landmarks
    from ganscreen.evidence import face_from_record

    big = _face(0, 0, 40, 40)
    big["landmarks"] = [[float(i), float(i + 1)] for i in range(5)]
    record = {"faces": [_face(0, 0, 10, 10), big, {"box": [0, 0, 99, 99]}]}
    face = face_from_record(record)
    assert face is not None and face.landmarks.tolist() == big["landmarks"]
    assert record_landmarks(record) == big["landmarks"]
    assert face_from_record({"faces": [{"box": [0, 0, 99, 99]}]}) is None


# --------------------------------------------------------------------------- one line


def test_one_line_joins_every_kind_of_whitespace() -> None:
    assert one_line("  cannot\nread\r\n\tthe  file \x0b ") == "cannot read the file"


def test_one_line_cuts_long_text_to_the_limit() -> None:
    assert one_line("x" * ONE_LINE_LIMIT) == "x" * ONE_LINE_LIMIT
    cut = one_line("x" * (ONE_LINE_LIMIT + 1))
    assert len(cut) == ONE_LINE_LIMIT and cut.endswith("...") and cut.startswith("x" * (ONE_LINE_LIMIT - 3))
    assert one_line("abcdefgh", limit=5) == "ab..."
    assert one_line("y" * 1000, limit=None) == "y" * 1000


def test_one_line_names_an_exception_without_text() -> None:
    assert one_line(KeyError()) == "KeyError"
    assert one_line(RuntimeError("\n")) == "RuntimeError"
    assert one_line(ValueError("bad\nvalue")) == "bad value"
    assert one_line("") == ""


def test_the_cli_describes_errors_by_the_same_rule() -> None:
    from ganscreen._cli_common import _describe

    assert _describe(RuntimeError("out of\nmemory")) == "RuntimeError: out of memory"
    assert _describe(KeyError()) == "KeyError: KeyError"
    assert _describe(ValueError("x" * 500)) == "x" * 500  # the only line printed: not cut


# --------------------------------------------------------------------------- atomic writes


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_bytes_atomic_replaces_and_keeps_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "thumbnail.png"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_bytes_atomic(target, b"\x89PNG new")
    assert target.read_bytes() == b"\x89PNG new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert _leftovers(tmp_path) == []


def test_write_text_atomic_writes_utf8_as_given(tmp_path: Path) -> None:
    target = tmp_path / "page.html"
    write_text_atomic(target, "写真\r\nline\n")
    assert target.read_bytes() == "写真\r\nline\n".encode()
    write_text_atomic(target, "a\udcffb", errors="backslashreplace")
    assert target.read_bytes() == b"a\\udcffb"


def test_a_failed_text_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(UnicodeEncodeError):
        write_text_atomic(target, "half written, then a lone surrogate \udcff")
    assert target.read_text(encoding="utf-8") == "old"
    assert _leftovers(tmp_path) == []


def test_a_failed_rename_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "record.json"
    target.write_bytes(b"old")

    def full_disk(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_bytes_atomic(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_the_module_exports_what_it_documents() -> None:
    assert set(_records.__all__) <= set(dir(_records))
    assert "parse_records" in _records.__all__ and "write_text_atomic" in _records.__all__
