"""The HTML report: one card per file, evidence images, escaping, and a real browser.

A mixed folder (the samples, a second broken file and two files named like HTML injections)
is scanned once with ``scan --format html --evidence-dir`` and rendered once more from its
records with ``ganscreen report`` (module fixture); each test checks one promise about the
result. The browser test runs headless Chromium (``apt-get install -y chromium``) on the page.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from ganscreen._assets import load_json
from ganscreen.cli import app, records_path
from ganscreen.evidence import evidence_folder_name
from ganscreen.html_report import environment

runner = CliRunner()
CHROMIUM = Path("/usr/bin/chromium")
INJECTION = "<img src=x onerror=alert(1)>.jpg"  # a face: its name reaches every alt text too
ATTRIBUTE_BREAKER = "\"><svg onload=document.title='pwned'>.jpg"  # a photo without a face
CARD = re.compile(r"<article class=\"card\b.*?</article>", re.S)
FACE_FILES = {"astronaut.png", "astronaut_asymmetric_glasses.jpg", "astronaut_exif_rotated.jpg",
              "astronaut_ffhq_aligned.jpg", "astronaut_mirrored_backdrop.jpg", "astronaut_recropped.jpg",
              INJECTION}
EVIDENCE_PNGS = {"thumbnail.png", "geometry.png", "glasses.png", "backdrop.png", "cnn_occlusion.png"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass(frozen=True)
class Scanned:
    folder: Path
    files: list[Path]
    html: Path  # from scan --format html --evidence-dir
    evidence: Path
    again: Path  # from ganscreen report on the records of that scan
    again_evidence: Path

    @property
    def page(self) -> str:
        return self.html.read_text(encoding="utf-8")

    def records(self) -> list[dict]:
        return [json.loads(line) for line in records_path(self.html).read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> Scanned:
    root = tmp_path_factory.mktemp("html")
    folder = root / "mixed"
    folder.mkdir()
    for sample in sorted(samples.iterdir()):
        if sample.suffix in (".png", ".jpg"):
            shutil.copy2(sample, folder / sample.name)
    (folder / "not_really.jpg").write_bytes(b"this is text, not a JPEG\n")
    shutil.copy2(samples / "astronaut_ffhq_aligned.jpg", folder / INJECTION)
    shutil.copy2(samples / "chelsea_no_face.jpg", folder / ATTRIBUTE_BREAKER)
    files = sorted(folder.iterdir())
    out = root / "out"
    out.mkdir()
    html, evidence = out / "report.html", root / "evidence"
    result = runner.invoke(app, ["scan", str(folder), "--format", "html", "-o", str(html),
                                 "--evidence-dir", str(evidence), "--device", "cpu",
                                 "--fail-on", "never", "--no-progress"])
    assert result.exit_code == 0, result.output
    again, again_evidence = out / "again.html", root / "evidence-again"
    result = runner.invoke(app, ["report", str(records_path(html)), "-o", str(again),
                                 "--evidence-dir", str(again_evidence), "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    return Scanned(folder=folder, files=files, html=html, evidence=evidence, again=again,
                   again_evidence=again_evidence)


# --------------------------------------------------------------------------- the page


def test_one_card_per_file_with_its_outcome(scanned: Scanned) -> None:
    page = scanned.page
    cards = CARD.findall(page)
    assert len(scanned.files) == 11
    assert len(cards) == len(scanned.files)
    records = scanned.records()
    assert [r["path"] for r in records] == [str(p) for p in scanned.files]
    outcomes = [re.search(r'data-outcome="([a-z_]+)"', card).group(1) for card in cards]
    expected = [r["verdict"] if r["status"] == "ok" else r["status"] for r in records]
    assert outcomes == expected
    assert outcomes.count("error") == 2 and outcomes.count("no_face") == 2
    by_name = {Path(r["path"]).name: card for r, card in zip(records, cards, strict=True)}
    assert "truncated image file" in by_name["broken_truncated.jpg"]
    assert "not a recognised image format" in by_name["not_really.jpg"]
    assert "No face found" in by_name["chelsea_no_face.jpg"]
    # A face card shows its score, flags in plain words and all four checks' evidence.
    aligned = by_name["astronaut_ffhq_aligned.jpg"]
    assert "eyes sit on the FFHQ/StyleGAN alignment template" in aligned
    for check in ("geometry", "glasses", "backdrop", "cnn"):
        assert f'class="ev ev-{check}' in aligned
    assert aligned.count('src="data:image/jpeg;base64,') == 5  # thumbnail and four drawings
    assert "Explanation aid, not proof." in aligned
    assert "eye deviation from the template (px)" in aligned


def test_summary_counts_histogram_and_operating_point(scanned: Scanned) -> None:
    page = scanned.page
    summary = page.split('<main id="cards"', 1)[0]
    tiles = {k: int(n) for n, k in re.findall(
        r'<span class="n">(\d+)</span><span class="k">([^<]+)</span>', summary)}
    records = scanned.records()
    assert tiles["files scanned"] == len(records)
    assert tiles["error"] == 2 and tiles["no face"] == 2
    assert tiles["flagged (GAN)"] + tiles["uncertain"] + tiles["real"] == len(records) - 4
    bars = re.findall(r'<rect class="bar zone-\w+"[^>]*><title>[^<]*: (\d+) files</title>', summary)
    assert sum(map(int, bars)) == sum(r["score"] is not None for r in records)
    gan = load_json("fusion.json")["thresholds"]["gan"]
    assert f"gan: score ≥ {gan:.4f}" in summary and "operating point (gan)" in summary
    assert records[0]["model"]["version"] in summary


def test_file_names_and_messages_are_escaped(scanned: Scanned) -> None:
    page = scanned.page
    assert "<img src=x onerror" not in page
    assert "<svg onload" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in page
    assert "&#34;&gt;&lt;svg onload=document.title=&#39;pwned&#39;&gt;.jpg" in page
    # Every image is embedded; nothing is fetched, no script has a source.
    sources = re.findall(r'\ssrc="([^"]*)"', page)
    assert sources and all(src.startswith("data:image/jpeg;base64,") for src in sources)
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert len(re.findall(r"<script\b", page)) == 1 and "<script>" in page
    assert '<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;' in page


def test_template_autoescapes_everything_and_marks_nothing_safe() -> None:
    env = environment()
    assert env.autoescape is True
    source, _, _ = env.loader.get_source(env, "report.html.j2")
    assert "|safe" not in source.replace(" ", "") and "autoescape false" not in source


def test_page_shows_every_card_without_javascript(scanned: Scanned) -> None:
    page = scanned.page
    assert all(" hidden" not in card.split(">", 1)[0] for card in CARD.findall(page))
    assert '<form id="controls" class="controls" hidden>' in page  # useless without the script


def test_report_command_renders_the_same_cards_as_scan(scanned: Scanned) -> None:
    first, second = CARD.findall(scanned.page), CARD.findall(scanned.again.read_text(encoding="utf-8"))
    assert len(first) == len(scanned.files)
    assert first == second


def test_evidence_pngs_for_every_file(scanned: Scanned) -> None:
    folders = {p.name for p in scanned.evidence.iterdir()}
    assert folders == {evidence_folder_name(str(p)) for p in scanned.files}
    assert all(re.fullmatch(r"[0-9a-f]{16}", name) for name in folders)
    assert folders == {p.name for p in scanned.again_evidence.iterdir()}
    for path in scanned.files:
        folder = scanned.evidence / evidence_folder_name(str(path))
        names = {p.name for p in folder.iterdir()}
        assert {"record.json", "evidence.txt"} <= names
        assert json.loads((folder / "record.json").read_text())["path"] == str(path)
        if path.name in FACE_FILES:
            assert names >= EVIDENCE_PNGS, path.name
            for png in EVIDENCE_PNGS:
                with Image.open(folder / png) as image:
                    assert image.format == "PNG" and min(image.size) >= 32
        elif path.name in ("broken_truncated.jpg", "not_really.jpg"):
            assert not any(name.endswith(".png") for name in names)
        else:  # no face: only the thumbnail
            assert {n for n in names if n.endswith(".png")} == {"thumbnail.png"}
    assert "on-template zone" in (scanned.evidence / evidence_folder_name(
        str(scanned.folder / INJECTION)) / "evidence.txt").read_text()


# --------------------------------------------------------------------------- the commands


def test_scan_writes_evidence_as_it_goes_with_jsonl(tmp_path: Path, samples: Path) -> None:
    out, evidence = tmp_path / "scan.jsonl", tmp_path / "evidence"
    inputs = [samples / "astronaut.png", samples / "broken_truncated.jpg"]
    result = runner.invoke(app, ["scan", *map(str, inputs), "-o", str(out), "--evidence-dir", str(evidence),
                                 "--device", "cpu", "--fail-on", "never", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 2
    face = evidence / evidence_folder_name(str(inputs[0]))
    assert {p.name for p in face.iterdir()} >= EVIDENCE_PNGS
    assert (evidence / evidence_folder_name(str(inputs[1])) / "evidence.txt").exists()


def test_html_scan_streams_records_beside_the_page_and_resumes(tmp_path: Path, samples: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("broken_truncated.jpg", "chelsea_no_face.jpg"):
        shutil.copy2(samples / name, folder / name)
    html = tmp_path / "report.html"
    args = ["scan", str(folder), "--format", "html", "-o", str(html), "--device", "cpu",
            "--fail-on", "never", "--no-progress"]
    assert runner.invoke(app, args).exit_code == 0
    sidecar = tmp_path / "report.html.jsonl"
    lines = sidecar.read_bytes().splitlines(keepends=True)
    assert len(lines) == 2
    # As if killed while writing the second record: the page is gone, half a line is left.
    html.unlink()
    sidecar.write_bytes(lines[0] + lines[1][:40])
    result = runner.invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert "torn last line" in result.stderr
    assert sidecar.read_bytes().splitlines(keepends=True) == lines
    assert len(CARD.findall(html.read_text(encoding="utf-8"))) == 2


def test_html_format_needs_an_output_file(samples: Path) -> None:
    result = runner.invoke(app, ["scan", str(samples / "broken_truncated.jpg"), "--format", "html"])
    assert result.exit_code == 2 and "--format html needs -o" in result.stderr


def test_report_shows_a_placeholder_for_a_vanished_image(scanned: Scanned, tmp_path: Path) -> None:
    record = next(r for r in scanned.records() if r["path"].endswith("astronaut_ffhq_aligned.jpg"))
    gone = {**record, "path": str(tmp_path / "vanished.jpg")}
    records = tmp_path / "scan.jsonl"
    records.write_text(json.dumps(gone) + "\n" + '{"path": "torn', encoding="utf-8")
    html = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(records), "-o", str(html), "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "torn line" in result.stderr
    (card,) = CARD.findall(html.read_text(encoding="utf-8"))
    assert '<div class="placeholder">no image</div>' in card
    assert "cannot re-read the image from its recorded path: file not found" in card
    assert "data:image" not in card
    assert f"score <strong>{record['score']:.3f}</strong>" in card  # the scan's result still shows


def test_report_refuses_a_file_that_is_not_a_jsonl_scan(tmp_path: Path, samples: Path) -> None:
    result = runner.invoke(app, ["report", str(samples / "astronaut.png"), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and "not JSON" in result.stderr
    assert not (tmp_path / "r.html").exists()
    result = runner.invoke(app, ["report", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and "cannot read" in result.stderr


# --------------------------------------------------------------------------- a real browser


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: the HTML report's browser test needs it "
        "(Debian: apt-get update && apt-get install -y chromium)")
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", f"--user-data-dir={profile}", *args]
    env = {**os.environ, "HOME": str(profile)}
    return subprocess.run(command, capture_output=True, text=True, timeout=90, env=env, check=False)


def test_headless_chromium_renders_every_card_and_runs_no_injected_script(scanned: Scanned,
                                                                          tmp_path: Path) -> None:
    url = scanned.html.resolve().as_uri()
    shot = tmp_path / "report.png"
    result = _chromium(tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,2000", url)
    assert result.returncode == 0, result.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        assert len(image.convert("RGB").getcolors(1 << 20) or ()) > 1000  # a page, not a blank

    dom = _chromium(tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert len(re.findall(r"<article class=\"card\b", html)) == len(scanned.files)
    assert re.search(r'<html[^>]*\sdata-report-js="ready"', html), "the page's own script did not run"
    assert re.search(r'<form id="controls" class="controls">', html)  # shown by the script
    assert f"<title>ganscreen report: {len(scanned.files)} files</title>" in html
    assert "pwned" not in re.search(r"<title>(.*?)</title>", html).group(1)
    # No element was made from a file name: the names are text.
    assert not re.search(r"<img[^>]*\ssrc=\"x\"", html) and "<svg onload" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in html


def test_headless_chromium_sorts_and_filters(scanned: Scanned, tmp_path: Path) -> None:
    url = scanned.html.resolve().as_uri()
    records = scanned.records()

    by_score = _chromium(tmp_path / "profile-sort", "--dump-dom", f"{url}#sort=score-desc")
    assert by_score.returncode == 0, by_score.stderr[-2000:]
    scores = re.findall(r'<article class="card\b[^>]*data-score="([^"]*)"', by_score.stdout)
    scored = [float(s) for s in scores if s]
    assert len(scores) == len(records) and scored == sorted(scored, reverse=True)
    assert scores[len(scored):] == [""] * (len(scores) - len(scored))  # unscored cards last

    errors = _chromium(tmp_path / "profile-filter", "--dump-dom", f"{url}#verdict=error")
    assert errors.returncode == 0, errors.stderr[-2000:]
    cards = re.findall(r"<article class=\"card\b[^>]*>", errors.stdout)
    visible = [c for c in cards if not re.search(r"\shidden\b", c)]
    assert len(cards) == len(records) and len(visible) == 2
    assert all('data-outcome="error"' in c for c in visible)
    assert f"2 of {len(records)} shown" in errors.stdout


def test_what_the_scan_refused_or_did_not_see_is_never_shown(tmp_path: Path, samples: Path) -> None:
    """A link leading outside the tree gets an error record and a placeholder, not a thumbnail
    of the outside file; a photo whose bytes changed after the scan is not shown either."""
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy2(samples / "astronaut.png", outside / "secret.png")
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy2(samples / "astronaut.png", folder / "kept.png")
    shutil.copy2(samples / "astronaut_recropped.jpg", folder / "swapped.jpg")
    (folder / "escape.png").symlink_to(outside / "secret.png")
    html = tmp_path / "report.html"
    result = runner.invoke(app, ["scan", str(folder), "--format", "html", "-o", str(html), "--device", "cpu",
                                 "--fail-on", "never", "--no-progress"])
    assert result.exit_code == 0, result.output
    cards = {re.search(r'<h2 class="name">([^<]*)</h2>', c).group(1): c  # type: ignore[union-attr]
             for c in CARD.findall(html.read_text(encoding="utf-8"))}
    assert "outside the scanned folder" in cards["escape.png"]
    assert "data:image" not in cards["escape.png"] and "placeholder" in cards["escape.png"]
    assert "data:image" in cards["kept.png"] and "data:image" in cards["swapped.jpg"]
    # Same name, other bytes (a photo swapped in after the scan): the report shows none of it.
    shutil.copy2(samples / "chelsea_no_face.jpg", folder / "swapped.jpg")
    again = tmp_path / "again.html"
    result = runner.invoke(app, ["report", str(records_path(html)), "-o", str(again), "--device", "cpu",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    cards = {re.search(r'<h2 class="name">([^<]*)</h2>', c).group(1): c  # type: ignore[union-attr]
             for c in CARD.findall(again.read_text(encoding="utf-8"))}
    assert "content changed after the scan" in cards["swapped.jpg"] and "data:image" not in cards["swapped.jpg"]
    assert "data:image" not in cards["escape.png"] and "data:image" in cards["kept.png"]
