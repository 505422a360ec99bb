"""scripts/flag_rates.py: the shares the report's flag texts quote are counted as documented."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import flag_rates  # noqa: E402


def _record(path: Path, status: str = "ok", flags: tuple[str, ...] = ()) -> dict[str, object]:
    return {"path": str(path), "status": status, "flags": list(flags)}


@pytest.fixture
def population(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "faces"
    rows = ["file\tlabel\tgenerator", "real/a__1.jpg\treal\tphoto", "real/a__2.jpg\treal\tphoto",
            "real/b__1.jpg\treal\tphoto", "real/b__2.jpg\treal\tphoto", "real/c__1.jpg\treal\tffhq",
            "gan/g__1.jpg\tgan\tstylegan2", "real/a__3.jpg\treal\tphoto"]
    data.mkdir()
    (data / "SOURCES.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    records = [
        _record(data / "real/a__1.jpg", flags=("cnn_artifacts", "ffhq_alignment")),
        _record(data / "real/a__2.jpg"),
        _record(data / "real/b__1.jpg", flags=("cnn_artifacts",)),
        _record(data / "real/b__2.jpg"),
        _record(data / "real/c__1.jpg", flags=("ffhq_alignment",)),  # aligned: not an ordinary photo
        _record(data / "gan/g__1.jpg", flags=("ffhq_alignment",)),  # not a real photo
        _record(data / "real/a__3.jpg", status="error"),  # not screened
    ]
    scan = tmp_path / "scan.jsonl"
    scan.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return scan, data


def test_only_ordinary_real_photos_that_screened_ok_count(population: tuple[Path, Path]) -> None:
    scan, data = population
    rows = flag_rates.ordinary_real_flags(scan, data)
    assert sorted(source for source, _ in rows) == ["real/a", "real/a", "real/b", "real/b"]
    shares = flag_rates.rates(rows, ["cnn_artifacts", "ffhq_alignment", "glasses_asymmetry"])
    assert shares == {"cnn_artifacts": 0.5, "ffhq_alignment": 0.25, "glasses_asymmetry": 0.0}


def test_write_stores_every_registered_flag_per_population(population: tuple[Path, Path], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    scan, data = population
    checks = tmp_path / "checks.json"
    checks.write_text(json.dumps({"version": "v", "cnn": {"flag_threshold": 0.9}}), encoding="utf-8")
    monkeypatch.setattr(flag_rates, "CHECKS_JSON", checks)
    assert flag_rates.main([f"E={scan}:{data}", f"F={scan}:{data}", "--write", "--note", "test"]) == 0
    written = json.loads(checks.read_text(encoding="utf-8"))
    assert written["cnn"] == {"flag_threshold": 0.9}  # the rest of the file is kept
    rates = written["flag_rates"]
    assert rates["cnn_artifacts"] == {"E": 0.5, "F": 0.5}
    assert rates["backdrop_distortion"] == {"E": 0.0, "F": 0.0}
    assert "4 of E" in rates["population"] and rates["population"].endswith("(test)")
    assert rates["command"].startswith("python scripts/flag_rates.py E=")


def test_keep_adds_a_population_and_quote_names_what_the_texts_quote(
        population: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scan, data = population
    checks = tmp_path / "checks.json"
    checks.write_text(json.dumps({"flag_rates": {"population": "old pops", "command": "old cmd",
                                                 "cnn_artifacts": {"E": 0.1, "U": 0.2}}}), encoding="utf-8")
    monkeypatch.setattr(flag_rates, "CHECKS_JSON", checks)
    assert flag_rates.main([f"E2={scan}:{data}", "--write", "--keep", "--quote", "E", "E2"]) == 0
    rates = json.loads(checks.read_text(encoding="utf-8"))["flag_rates"]
    assert rates["cnn_artifacts"] == {"E": 0.1, "U": 0.2, "E2": 0.5}  # kept, and the new one added
    assert rates["quoted"] == ["E", "E2"]
    assert "old pops" in rates["population"] and "old cmd" in rates["command"]
    # Without --keep the old shares go, and a quoted population must then be measured.
    with pytest.raises(SystemExit) as exc:
        flag_rates.main([f"E2={scan}:{data}", "--write", "--quote", "E"])
    assert exc.value.code == 2


def test_a_malformed_population_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        flag_rates.main(["E=only-a-scan.jsonl"])
    assert exc.value.code == 2
