"""ganscreen campaign: reused-photo clusters, the binomial tests, accounts, JSON and HTML."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageOps
from typer.testing import CliRunner

from ganscreen.campaign import (
    DEFAULT_BASE_RATE,
    SCHEMA,
    assign_accounts,
    binomial_sf,
    build,
    p_text,
    render_html,
    summarise,
)
from ganscreen.cli import app
from ganscreen.faces import FaceDetector, primary_face
from ganscreen.hashing import PhotoHashes, band_widths, index_plan, near_pairs

ASTRO_COPIES = {
    "acct_a/astronaut.png", "acct_b/astro_small.jpg", "acct_c/astro_crop.png",
    "acct_c/astro_mirror.png", "acct_d/astro_sepia.jpg",
}
HOSTILE = '<script>alert("x")&.png'  # no slash: a file name


def _synthetic(kind: str, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return Image.fromarray(rng.integers(0, 256, (300, 300, 3), dtype=np.uint8))
    if kind == "gradient":
        x = np.linspace(0, 255, 320)
        rgb = np.stack([np.tile(x, (240, 1)), np.tile(x[::-1], (240, 1)), np.full((240, 320), 90.0)], -1)
        return Image.fromarray(rgb.astype(np.uint8))
    image = Image.new("RGB", (300, 300), (230, 225, 210))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y, r = rng.integers(0, 300, 2).tolist() + [int(rng.integers(10, 60))]
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.integers(0, 256, 3).tolist()))
    return image


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory, samples: Path, detector: FaceDetector) -> Path:
    """A suspected network: the astronaut edited five ways across four accounts, and other photos."""
    root = tmp_path_factory.mktemp("campaign") / "network"
    astro = Image.open(samples / "astronaut.png").convert("RGB")
    w, h = astro.size
    files: dict[str, Image.Image] = {
        "acct_a/astronaut.png": astro,
        "acct_a/chelsea.jpg": Image.open(samples / "chelsea_no_face.jpg").convert("RGB"),
        "acct_b/astro_small.jpg": astro.resize((w * 3 // 5, h * 3 // 5), Image.Resampling.LANCZOS),
        "acct_b/noise.png": _synthetic("noise", 1),
        "acct_c/astro_crop.png": astro.crop((int(w * 0.08), int(h * 0.05), int(w * 0.9), int(h * 0.93))),
        "acct_c/astro_mirror.png": ImageOps.mirror(astro),
        "acct_d/astro_sepia.jpg": Image.fromarray(np.clip(
            np.asarray(ImageEnhance.Color(astro).enhance(0.3), np.float32) * [1.1, 1.0, 0.8], 0, 255
        ).astype(np.uint8)),
        "acct_d/gradient.png": _synthetic("gradient", 2),
        "acct_e/blobs.png": _synthetic("blobs", 3),
        "acct_e/noise2.png": _synthetic("noise", 4),
        f"acct_e/{HOSTILE}": _synthetic("blobs", 5),
    }
    records = []
    for name, image in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=70) if name.endswith(".jpg") else image.save(path)
        face = primary_face(detector.detect(np.asarray(image)))
        is_astro = name in ASTRO_COPIES
        assert (face is not None) == is_astro, name
        records.append({
            "path": str(path), "status": "ok" if face is not None else "no_face", "error": None,
            "score": 0.95 if name == "acct_a/astronaut.png" else 0.5 if is_astro else None,
            "verdict": ("gan" if name == "acct_a/astronaut.png" else "uncertain") if is_astro else None,
            "flags": ["ffhq_alignment"] if is_astro else [],
            "faces": [] if face is None else [face.to_record()],
        })
    (root.parent / "scan.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def summary(network: Path) -> dict:
    from ganscreen.html_report import read_records

    return build(read_records(network.parent / "scan.jsonl").records)


def _name(summary: dict, photo_id: int) -> str:
    return Path(summary["photos"][photo_id]["path"]).relative_to(Path(summary["source"]["roots"][0])).as_posix()


# --------------------------------------------------------------------------- clusters


def test_edited_copies_cluster_together_and_nothing_else(summary: dict) -> None:
    assert len(summary["clusters"]) == 1
    cluster = summary["clusters"][0]
    assert {_name(summary, m) for m in cluster["members"]} == ASTRO_COPIES
    assert cluster["accounts"] == ["acct_a", "acct_b", "acct_c", "acct_d"]
    assert cluster["spans_accounts"] is True
    assert len(cluster["links"]) == len(ASTRO_COPIES) - 1
    assert any(link["mirrored"] for link in cluster["links"])
    for photo in summary["photos"]:
        if _name(summary, photo["id"]) not in ASTRO_COPIES:
            assert photo["cluster"] is None
            assert photo["hash"]["face"] is None and photo["hash"]["image"]


def test_per_account_summary(summary: dict) -> None:
    accounts = {a["name"]: a for a in summary["accounts"]}
    assert list(accounts) == ["acct_a", "acct_b", "acct_c", "acct_d", "acct_e"]
    a = accounts["acct_a"]
    assert (a["photos"], a["gan"], a["uncertain"], a["reused_from_elsewhere"]) == (2, 1, 0, 1)
    assert a["shares_with"] == [{"account": "acct_b", "photos": 1}, {"account": "acct_c", "photos": 1},
                                {"account": "acct_d", "photos": 1}]
    c = accounts["acct_c"]
    assert (c["photos"], c["gan"], c["uncertain"], c["reused_from_elsewhere"]) == (2, 0, 2, 2)
    assert c["shares_with"] == [{"account": "acct_a", "photos": 2}, {"account": "acct_b", "photos": 2},
                                {"account": "acct_d", "photos": 2}]
    e = accounts["acct_e"]
    assert (e["photos"], e["reused_from_elsewhere"], e["shares_with"]) == (3, 0, [])


def test_json_schema_keys(summary: dict) -> None:
    assert summary["schema"] == SCHEMA
    assert set(summary) == {"schema", "generated", "ganscreen_version", "source", "hash", "totals",
                            "photos", "clusters", "statistics", "accounts"}
    assert set(summary["totals"]) == {"files", "ok", "no_face", "error", "gan", "uncertain", "real",
                                      "hashed", "not_hashed", "clusters", "photos_in_clusters", "accounts"}
    assert summary["totals"]["files"] == 11 and summary["totals"]["photos_in_clusters"] == 5
    assert set(summary["photos"][0]) == {"id", "path", "account", "status", "verdict", "score", "flags",
                                         "cluster", "hash", "hash_error"}
    assert set(summary["clusters"][0]) == {"id", "size", "members", "accounts", "spans_accounts", "links"}
    assert set(summary["clusters"][0]["links"][0]) == {"a", "b", "kind", "distance", "mirrored", "inliers",
                                                       "correlation"}
    assert set(summary["hash"]["verification"]) == {"method", "candidate_threshold", "candidates_per_photo",
                                                    "min_votes", "min_inliers", "min_correlation"}
    test = summary["statistics"]["tests"][0]
    assert set(test) == {"name", "observed", "total", "base_rate", "base_rate_source", "base_rate_measured",
                         "expected", "p_value", "log10_p", "text"}
    assert [t["name"] for t in summary["statistics"]["tests"]] == [
        "ffhq_alignment", "ffhq_recrop", "glasses_asymmetry", "backdrop_distortion", "cnn_artifacts", "verdict_gan"]
    # The five copies are one distinct photo.
    assert (test["observed"], test["total"]) == (1, 1)
    json.dumps(summary, allow_nan=False)


# --------------------------------------------------------------------------- banded index


@pytest.mark.parametrize("radius", [None, 1, 2])
@pytest.mark.parametrize("threshold", [0, 3, 9, 12])
def test_banded_index_finds_exactly_the_brute_force_pairs(threshold: int, radius: int | None) -> None:
    rng = np.random.default_rng(threshold)
    n = 3000
    hashes = rng.integers(0, 2**64, n, dtype=np.uint64)
    for target in rng.integers(0, n, 800):  # planted near-duplicates at every distance
        value = int(hashes[rng.integers(0, n)])
        for bit in rng.choice(64, int(rng.integers(0, 16)), replace=False):
            value ^= 1 << int(bit)
        hashes[target] = value
    hashes[10] = hashes[11] = hashes[12]  # identical ones too
    groups = rng.integers(0, 2, n)
    dist = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    for g in (None, groups):
        same = np.ones((n, n), bool) if g is None else g[:, None] == g[None, :]
        i, j = np.nonzero(np.triu((dist <= threshold) & same, 1))
        assert np.array_equal(near_pairs(hashes, threshold, g, radius=radius), np.stack([i, j], 1))
    bands, radius = index_plan(threshold, n)
    assert bands * (radius + 1) > threshold and sum(band_widths(bands)) == 64


# --------------------------------------------------------------------------- statistics


def _exact_sf(k: int, n: int, p: float) -> float:
    q = Fraction(p)
    return float(sum(math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(k, n + 1)))


@pytest.mark.parametrize(("k", "n", "p"), [(31, 40, 0.004608294930875576), (3, 10, 0.01), (1, 1, 0.01),
                                           (0, 5, 0.3), (5, 5, 0.5), (7, 200, 0.01), (40, 40, 0.01),
                                           (45, 300, 0.1)])
def test_binomial_survival_is_exact(k: int, n: int, p: float) -> None:
    value, log10 = binomial_sf(k, n, p)
    exact = _exact_sf(k, n, p)
    assert value == pytest.approx(exact, rel=1e-9)
    assert log10 == pytest.approx(math.log10(exact), rel=1e-9, abs=1e-12)
    from scipy import stats  # installed with imagehash, a dependency: never skipped

    assert value == pytest.approx(stats.binom.sf(k - 1, n, p), rel=1e-6)


def test_binomial_tail_below_the_smallest_float_keeps_its_exponent() -> None:
    value, log10 = binomial_sf(400, 400, 0.01)
    assert value == 0.0 and log10 == pytest.approx(-800)
    assert p_text(value, log10) in ("p < 1e-799", "p < 1e-800")  # 1e-800, up to rounding
    assert binomial_sf(3, 2, 0.5) == (0.0, -math.inf)


def test_statistics_on_a_constructed_set() -> None:
    # 40 distinct faces, 31 on the template; 2 more copies of one of them; 5 photos with no face.
    records, hashes = [], []
    for i in range(47):
        on = i < 31 or i in (40, 41)
        status = "ok" if i < 42 else "no_face"
        records.append({"path": f"n/acct{i % 4}/p{i}.jpg", "status": status,
                        "verdict": ("gan" if i < 10 or i in (40, 41) else "real") if status == "ok" else None,
                        "flags": ["ffhq_alignment", "cnn_artifacts"][: 2 if i < 5 else 1] if on else []})
        value = i * 0x0F0F0F0F0F0F0F0F % 2**64  # all different
        hashes.append(PhotoHashes(image=(value, value)))
    hashes[40] = hashes[41] = hashes[1]  # 40 and 41 are copies of photo 1
    summary = summarise(records, hashes, [None] * 47, [None] * 47, threshold=0)
    assert [c["members"] for c in summary["clusters"]] == [[1, 40, 41]]
    tests = {t["name"]: t for t in summary["statistics"]["tests"]}
    ffhq = tests["ffhq_alignment"]
    assert (ffhq["observed"], ffhq["total"]) == (31, 40)
    assert ffhq["base_rate_measured"] is True
    assert ffhq["p_value"] == pytest.approx(_exact_sf(31, 40, ffhq["base_rate"]), rel=1e-9)
    assert ffhq["text"].startswith("31 of 40 faces sit on the StyleGAN (FFHQ) alignment template; expected 0.18 by chance")
    assert ffhq["text"].endswith(f"p < 1e-{math.floor(-math.log10(ffhq['p_value']))}")
    assert ffhq["p_value"] < 1e-30
    # cnn_artifacts: photos 0-4; the cluster {1, 40, 41} has it on one copy of three, so not.
    cnn = tests["cnn_artifacts"]
    assert (cnn["observed"], cnn["total"], cnn["base_rate"], cnn["base_rate_measured"]) == (4, 40, DEFAULT_BASE_RATE, False)
    assert "assumed" in cnn["text"] and "assumed 1 %" in cnn["base_rate_source"]
    assert cnn["p_value"] == pytest.approx(_exact_sf(4, 40, 0.01), rel=1e-9)
    gan = tests["verdict_gan"]
    assert (gan["observed"], gan["total"]) == (10, 40)
    assert tests["glasses_asymmetry"]["observed"] == 0 and tests["glasses_asymmetry"]["p_value"] == 1.0


@pytest.fixture
def unreadable_template(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """models/ffhq_template.json failing its checksum, for the base rates read after this."""
    from ganscreen import _assets, _campaign_stats

    def altered(name: str) -> dict:
        raise _assets.AssetError(f"model file {name!r} fails its checksum (sha256 0123456789ab…, "
                                 "expected ba9876543210…): it was altered or corrupted;\nreinstall ganscreen")

    monkeypatch.setattr(_assets, "load_json", altered)
    _campaign_stats._base_rates.cache_clear()
    yield
    _campaign_stats._base_rates.cache_clear()  # the next test reads the real file again


def test_an_unreadable_base_rate_is_a_recorded_placeholder(unreadable_template: None,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    records = [{"path": f"n/p{i}.jpg", "status": "ok", "verdict": "gan", "flags": ["ffhq_alignment"]}
               for i in range(3)]
    hashes = [PhotoHashes(image=(i, i)) for i in (0, 0xFFFF, 0xFFFF0000)]
    with caplog.at_level("WARNING", logger="ganscreen.campaign"):
        summary = summarise(records, hashes, [None] * 3, [None] * 3, threshold=0)
    ffhq = next(t for t in summary["statistics"]["tests"] if t["name"] == "ffhq_alignment")
    # The assumed rate stands in, and both the test and the summary say why, on one line.
    assert (ffhq["base_rate"], ffhq["base_rate_measured"]) == (DEFAULT_BASE_RATE, False)
    assert "could not be read" in ffhq["base_rate_source"] and "fails its checksum" in ffhq["base_rate_source"]
    assert "\n" not in ffhq["base_rate_source"]
    (note,) = summary["statistics"]["notes"]
    assert note.startswith("the measured base rate of ffhq_alignment could not be read (model file")
    assert any("fails its checksum" in r.getMessage() for r in caplog.records)
    page = io.StringIO()
    render_html(summary, page, thumbnails=False)
    assert "<strong>Note:</strong> the measured base rate of ffhq_alignment could not be read" in page.getvalue()


def test_a_readable_base_rate_adds_no_notes() -> None:
    summary = summarise([{"path": "n/p.jpg", "status": "ok", "verdict": "real", "flags": []}],
                        [PhotoHashes(image=(1, 1))], [None], [None])
    assert "notes" not in summary["statistics"]
    assert summary["statistics"]["tests"][0]["base_rate_measured"] is True
    page = io.StringIO()
    render_html(summary, page, thumbnails=False)
    assert "Note:" not in page.getvalue()


def test_accounts_from_roots() -> None:
    paths = ["net/a/1.jpg", "net/b/sub/2.jpg", "net/3.jpg", "other/4.jpg"]
    assert assign_accounts(paths, ["net"]) == ["a", "b", None, None]
    assert assign_accounts(paths, ["net", "other"]) == ["net/a", "net/b", None, None]
    assert assign_accounts(paths, []) == [None] * 4


# --------------------------------------------------------------------------- command line


def test_cli_from_scan_json_and_html_escapes_names(network: Path, tmp_path: Path) -> None:
    scan = network.parent / "scan.jsonl"
    runner = CliRunner()
    result = runner.invoke(app, ["campaign", "--from-scan", str(scan), "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["totals"]["clusters"] == 1 and summary["source"]["scan"] == str(scan)
    # An account folder and file with markup in their names.
    hostile_dir = network / '<img src=x onerror=alert(1)>'
    hostile_dir.mkdir(exist_ok=True)
    (hostile_dir / HOSTILE).write_bytes((network / "acct_a" / "astronaut.png").read_bytes())
    records = [json.loads(line) for line in scan.read_text().splitlines()]
    records.append({**records[0], "path": str(hostile_dir / HOSTILE)})
    scan2 = tmp_path / "scan2.jsonl"
    scan2.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    page = tmp_path / "campaign.html"
    result = runner.invoke(app, ["campaign", "--from-scan", str(scan2), str(network), "-o", str(page),
                                 "--format", "html", "--no-progress"])
    assert result.exit_code == 0, result.output
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "data:image/jpeg;base64," in html and "Content-Security-Policy" in html
    assert "sit on the StyleGAN (FFHQ) alignment template" in html
    assert "http://" not in html and "https://" not in html


def test_cli_needs_input_and_html_needs_output(network: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["campaign"]).exit_code == 2
    result = runner.invoke(app, ["campaign", "--from-scan", str(network.parent / "scan.jsonl"), "--format", "html"])
    assert result.exit_code == 2


def test_cli_scans_folders(samples: Path, tmp_path: Path) -> None:
    root = tmp_path / "net"
    for account, name in (("one", "astronaut.png"), ("two", "astronaut_ffhq_aligned.jpg"),
                          ("two", "chelsea_no_face.jpg")):
        (root / account).mkdir(parents=True, exist_ok=True)
        (root / account / name).write_bytes((samples / name).read_bytes())
    ImageOps.mirror(Image.open(samples / "astronaut.png")).save(root / "two" / "mirrored.png")
    out = tmp_path / "summary.json"
    result = CliRunner().invoke(app, ["campaign", str(root), "-o", str(out), "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["totals"]["files"] == 4 and summary["totals"]["no_face"] == 1
    accounts = {a["name"]: a for a in summary["accounts"]}
    assert accounts["one"]["shares_with"] == [{"account": "two", "photos": 1}]
    assert accounts["two"]["reused_from_elsewhere"] >= 1
    clustered = {Path(summary["photos"][m]["path"]).name for c in summary["clusters"] for m in c["members"]}
    assert {"astronaut.png", "mirrored.png"} <= clustered and "chelsea_no_face.jpg" not in clustered


def test_empty_set_and_vanished_file(tmp_path: Path) -> None:
    empty = build([])
    assert empty["totals"]["files"] == 0 and empty["clusters"] == [] and empty["accounts"] == []
    assert all(t["p_value"] == 1.0 for t in empty["statistics"]["tests"])
    gone = build([{"path": str(tmp_path / "gone.jpg"), "status": "ok", "verdict": "gan", "flags": [], "faces": []}])
    photo = gone["photos"][0]
    assert photo["hash"] is None and photo["hash_error"] == "file not found"
    assert gone["totals"]["not_hashed"] == 1


def test_thousands_of_identical_copies_make_one_cluster_cheaply() -> None:
    from ganscreen.campaign import cluster_photos

    copies = [PhotoHashes(image=(0x0F0F0F0F0F0F0F0F, 0xF0F0F0F0F0F0F0F0))] * 20_000
    other = PhotoHashes(image=(0x0123456789ABCDEF, 0xFEDCBA9876543210))
    clusters = cluster_photos([other, *copies, other])
    assert [len(m) for m, _ in clusters] == [2, 20_000]
    members, links = clusters[1]
    assert len(links) == 19_999 and all(link.distance == 0 for link in links)


# --------------------------------------------------------------------------- crop-robust reuse


def _texture(seed: int) -> Image.Image:
    """A distinct "photo" from one generator: smooth noise at two scales and some discs, so the
    textures look alike (like StyleGAN backdrops) without being the same picture."""
    import cv2

    rng = np.random.default_rng(seed)
    fine = cv2.GaussianBlur(rng.normal(0, 1, (360, 420, 3)).astype(np.float32), (0, 0), 2.0)
    coarse = cv2.GaussianBlur(rng.normal(0, 1, (360, 420, 3)).astype(np.float32), (0, 0), 12.0)
    rgb = 128 + 40 * fine / fine.std() + 50 * coarse / coarse.std()
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(8):
        x, y, r = int(rng.integers(0, 420)), int(rng.integers(0, 360)), int(rng.integers(8, 40))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.integers(0, 256, 3).tolist()))
    return image


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    import io

    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _keep(image: Image.Image, keep: float, corner: str) -> Image.Image:
    """The ``keep`` share of each side, at the top-left, bottom-right or centre."""
    w, h = image.size
    kw, kh = round(w * keep), round(h * keep)
    x0, y0 = {"tl": (0, 0), "br": (w - kw, h - kh), "c": ((w - kw) // 2, (h - kh) // 2)}[corner]
    return image.crop((x0, y0, x0 + kw, y0 + kh))


def _colour(image: Image.Image) -> Image.Image:
    out = ImageEnhance.Contrast(ImageEnhance.Color(image).enhance(0.4)).enhance(1.2)
    return Image.fromarray(np.clip(np.asarray(out, np.float32) * [1.08, 1.0, 0.85] + 10, 0, 255).astype(np.uint8))


REUSE_EDITS = {
    "crop25_tl": lambda im: _keep(im, 0.75, "tl"),
    "crop25_br": lambda im: _keep(im, 0.75, "br"),
    "crop15_c": lambda im: _keep(im, 0.85, "c"),
    "rotate+5": lambda im: im.rotate(5, resample=Image.Resampling.BICUBIC),
    "rotate-5": lambda im: im.rotate(-5, resample=Image.Resampling.BICUBIC),
    "mirror": ImageOps.mirror,
    "colour": _colour,
    "jpeg60": lambda im: _jpeg(im, 60),
    "all": lambda im: _jpeg(_colour(ImageOps.mirror(_keep(im, 0.75, "br").rotate(
        -5, resample=Image.Resampling.BICUBIC))), 60),
}


@pytest.fixture(scope="module")
def reused(tmp_path_factory: pytest.TempPathFactory, samples: Path, detector: FaceDetector) -> list[dict]:
    """Records of five distinct photos (a face, a cat, three textures from one generator) and
    each one's copies under every edit of ``REUSE_EDITS``; ``family`` says which photo."""
    root = tmp_path_factory.mktemp("reused")
    photos = {"astronaut": Image.open(samples / "astronaut.png").convert("RGB"),
              "chelsea": Image.open(samples / "chelsea_no_face.jpg").convert("RGB"),
              **{f"texture{k}": _texture(k) for k in range(3)}}
    records = []
    for family, photo in photos.items():
        for edit, make in {"original": lambda im: im, **REUSE_EDITS}.items():
            image = make(photo)
            path = root / family / f"{edit}.png"
            path.parent.mkdir(exist_ok=True)
            image.save(path)
            face = primary_face(detector.detect(np.asarray(image)))
            records.append({"path": str(path), "status": "ok" if face is not None else "no_face",
                            "verdict": "real" if face is not None else None, "flags": [],
                            "faces": [] if face is None else [face.to_record()], "family": family})
    return records


def _families(summary: dict, records: list[dict]) -> list[set[str]]:
    return [{records[m]["family"] for m in c["members"]} for c in summary["clusters"]]


def test_every_edited_copy_clusters_with_its_original_and_none_mixed(reused: list[dict]) -> None:
    summary = build(reused)
    families = sorted({r["family"] for r in reused})
    # One cluster per photo, holding the original and every copy, and no cluster mixes photos.
    assert sorted(_families(summary, reused), key=sorted) == [{f} for f in families]
    for cluster in summary["clusters"]:
        family = reused[cluster["members"][0]]["family"]
        assert len(cluster["members"]) == 1 + len(REUSE_EDITS), family
    kinds = {lk["kind"] for c in summary["clusters"] for lk in c["links"]}
    assert "keypoints" in kinds
    for link in (lk for c in summary["clusters"] for lk in c["links"] if lk["kind"] == "keypoints"):
        assert link["inliers"] >= 8 and link["correlation"] >= summary["hash"]["verification"]["min_correlation"]


def test_the_hash_stage_alone_misses_crops_and_rotations(reused: list[dict]) -> None:
    # What the keypoint stage adds: without it some copies are left out (so the test above
    # would fail if verification did nothing).
    summary = build(reused, verify=False)
    clustered = {m for c in summary["clusters"] for m in c["members"]}
    missed = {Path(reused[i]["path"]).stem for i in range(len(reused)) if i not in clustered}
    assert missed & {"crop25_tl", "crop25_br", "all"}
    assert summary["hash"]["verification"] is None


def test_reuse_clusters_are_deterministic(reused: list[dict]) -> None:
    first, second = build(list(reversed(reused))), build(list(reversed(reused)))
    assert first["clusters"] == second["clusters"]


def test_keypoint_votes_count_shared_rare_keys() -> None:
    from ganscreen.keypoints import vote_pairs

    common = np.arange(100, 130, dtype=np.uint64)  # held by every photo: ignored above the cap
    shared = np.arange(1000, 1010, dtype=np.uint64)
    sigs = [np.union1d(common, shared), np.union1d(common, shared[:6]), np.union1d(common, shared[:3]),
            None, np.union1d(common, np.arange(5000, 5020, dtype=np.uint64))]
    pairs = vote_pairs(sigs, cap=3, min_votes=4)
    assert pairs.tolist() == [[0, 1, 6]]  # 0-2 share 3 keys (< 4); the common keys are in 4 photos
    assert vote_pairs(sigs, cap=4, min_votes=4)[:, :2].tolist()[:1] == [[0, 1]]
    assert len(vote_pairs(sigs, cap=4, min_votes=4)) == 6  # now the 30 common keys count


def test_candidates_are_capped_per_photo() -> None:
    from ganscreen.campaign import nearest_candidates

    # Photo 0 is near photos 1..5 (distances 5..9); each photo keeps its 2 closest.
    own = np.arange(6)
    ea, eb = np.zeros(5, np.int64), np.arange(1, 6)
    dist = np.arange(5, 10)
    pairs = nearest_candidates(own, ea, eb, dist, 2)
    # Photos 1..5 each have one pair only (with 0), so all are kept: their own best.
    assert pairs.tolist() == [[0, 1, 5], [0, 2, 6], [0, 3, 7], [0, 4, 8], [0, 5, 9]]
    own2 = np.array([0, 0, 1, 2, 3])  # entries 0 and 1 are both photo 0
    pairs = nearest_candidates(own2, np.array([0, 1, 0, 2]), np.array([2, 2, 3, 4]), np.array([7, 5, 6, 9]), 1)
    assert pairs.tolist() == [[0, 1, 5], [0, 2, 6], [1, 3, 9]]  # 1-3 is 3's best
