"""Tests for ganscreen.evidence: the drawings, what is refused, and how the files are written.

Records come from a real scan (the session's screener) of a copy of ``samples/astronaut.png``
in a temporary folder, so a test can change, remove or replace the file after the scan.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ganscreen import Screener
from ganscreen.checks import CheckContext
from ganscreen.checks._drawing import DETECTED, PANEL_GAP, diverging, side_by_side
from ganscreen.checks.backdrop import WORK_SIDE
from ganscreen.checks.cnn import OCCLUSION_GRID
from ganscreen.checks.geometry import GeometryCheck
from ganscreen.checks.glasses import ALIGNED_SIZE, DRAWING_ZOOM, EYE_BAND
from ganscreen.evidence import (
    Evidence,
    EvidenceMaker,
    evidence_files,
    evidence_folder_name,
    face_from_record,
    write_evidence,
)
from ganscreen.faces import Face

EVIDENCE_KINDS = ("thumbnail", "geometry", "glasses", "backdrop", "cnn")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def maker(screener: Screener) -> EvidenceMaker:
    return EvidenceMaker(checks=screener.checks)


Scan = Callable[[Path], dict[str, Any]]


@pytest.fixture
def scanned(screener: Screener) -> Scan:
    def scan(path: Path) -> dict[str, Any]:
        [report] = list(screener.scan([path]))
        return report.to_record()

    return scan


@pytest.fixture
def photo(tmp_path: Path, samples: Path) -> Path:
    path = tmp_path / "photos" / "astronaut.png"
    path.parent.mkdir()
    shutil.copyfile(samples / "astronaut.png", path)
    return path


@pytest.fixture(scope="module")
def astronaut_record(screener: Screener, samples: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("evidence") / "astronaut.png"
    shutil.copyfile(samples / "astronaut.png", path)
    [report] = list(screener.scan([path]))
    record = report.to_record()
    assert record["status"] == "ok" and record["file"]["sha256"]
    return record


@pytest.fixture(scope="module")
def astronaut_evidence(maker: EvidenceMaker, astronaut_record: dict[str, Any]) -> Evidence:
    return maker.build(astronaut_record)


# --------------------------------------------------------------------------- drawings


def test_an_ok_record_gets_every_drawing_and_no_note(astronaut_evidence: Evidence) -> None:
    assert astronaut_evidence.image_available
    assert set(astronaut_evidence.images) == set(EVIDENCE_KINDS)
    assert astronaut_evidence.notes == {}
    for kind, image in astronaut_evidence.images.items():
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, kind
        assert image.flags.c_contiguous, kind


def test_drawings_have_the_sizes_of_what_each_check_looks_at(astronaut_evidence: Evidence) -> None:
    images = astronaut_evidence.images
    assert images["thumbnail"].shape == (256, 256, 3)  # the 512 px photo, shrunk
    assert images["geometry"].shape == (512, 512, 3)  # the whole frame: where the template lies
    assert max(images["backdrop"].shape[:2]) == WORK_SIDE
    x0, y0, x1, y1 = (round(v * ALIGNED_SIZE) for v in EYE_BAND)
    half = (x1 - x0) // 2
    # Left half | right half mirrored | edge difference, each enlarged.
    assert images["glasses"].shape == ((y1 - y0) * DRAWING_ZOOM, 3 * half * DRAWING_ZOOM + 2 * PANEL_GAP, 3)


def test_occlusion_probes_the_crop_the_check_scored(astronaut_evidence: Evidence,
                                                    astronaut_record: dict[str, Any]) -> None:
    measures = dict(astronaut_evidence.measures["cnn"])
    # Not to the last digit: the record keeps the landmarks rounded, so the crop moves a little.
    base = float(measures["CNN score on the redrawn crop"])
    assert base == pytest.approx(astronaut_record["checks"]["cnn"]["score"], abs=0.01)
    drop, rise = (float(measures[f"largest {k} when a patch is hidden"]) for k in ("drop", "rise"))
    assert -1 <= -rise <= drop <= 1
    image = astronaut_evidence.images["cnn"]
    side = image.shape[0]
    assert image.shape == (side, 2 * side + PANEL_GAP, 3)  # the crop | the map
    assert side % OCCLUSION_GRID == 0


def test_geometry_overlay_marks_the_landmarks_on_a_canvas_big_enough_to_see() -> None:
    small = np.full((120, 100, 3), 40, np.uint8)
    landmarks = np.array([[35, 50], [65, 50], [50, 65], [38, 80], [62, 80]], np.float32)
    face = Face(box=np.array([20, 30, 80, 95], np.float32), landmarks=landmarks, confidence=1.0)
    template = [[0.3, 0.4], [0.7, 0.4], [0.5, 0.55], [0.35, 0.7], [0.65, 0.7]]
    check = GeometryCheck({"points": template, "on_template_threshold": 0.05, "version": "test"})
    drawing = check.draw(CheckContext(image=small, faces=(face,), face=face, aligned=None))
    canvas = drawing.image
    assert drawing.measures == (("on the template at or below (fraction)", "0.0500"),)
    scale = 384 / 120  # drawn at least 384 px on its longer side
    assert canvas.shape == (384, round(100 * scale), 3)
    for x, y in landmarks * scale:
        assert tuple(canvas[round(y), round(x)]) == DETECTED


def test_panels_are_padded_white_and_kept_apart() -> None:
    tall, short = np.zeros((10, 4, 3), np.uint8), np.zeros((6, 5, 3), np.uint8)
    joined = side_by_side([tall, short], gap=3)
    assert joined.shape == (10, 4 + 3 + 5, 3)
    assert (joined[:, 4:7] == 255).all() and (joined[6:, 7:] == 255).all() and (joined[:6, 7:] == 0).all()


def test_diverging_colours_run_blue_white_red() -> None:
    colours = diverging(np.array([-1.0, 0.0, 1.0, 5.0]))
    assert colours[1].tolist() == [255, 255, 255]
    assert colours[0, 2] > colours[0, 0] and colours[2, 0] > colours[2, 2]  # blue, then red
    assert colours[3].tolist() == colours[2].tolist()  # clipped to [-1, 1]


# --------------------------------------------------------------------------- refused


def test_a_file_changed_after_the_scan_is_not_drawn(maker: EvidenceMaker, scanned: Scan, photo: Path,
                                                    samples: Path) -> None:
    record = scanned(photo)
    stat = photo.stat()
    Image.open(samples / "chelsea_no_face.jpg").convert("RGB").resize((512, 512)).save(photo, format="PNG")
    os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # only the content says it changed
    evidence = maker.build(record)
    assert evidence.images == {} and not evidence.image_available
    assert evidence.notes == {"image": "not shown: the file's content changed after the scan"}


def test_a_file_the_scan_refused_is_never_drawn(maker: EvidenceMaker, photo: Path) -> None:
    # A perfectly readable image now, but the scan judged it an error: nothing is shown.
    record = {"path": str(photo), "status": "error", "error": "truncated image file", "file": None}
    evidence = maker.build(record)
    assert evidence.images == {} and evidence.notes["image"] == "not shown: the scan refused this file"


def test_a_vanished_file_gets_a_note(maker: EvidenceMaker, scanned: Scan, photo: Path) -> None:
    record = scanned(photo)
    photo.unlink()
    evidence = maker.build(record)
    assert evidence.images == {}
    assert evidence.notes["image"].startswith("cannot re-read the image from its recorded path")


def test_an_older_record_of_a_resized_file_gets_only_a_thumbnail(maker: EvidenceMaker, scanned: Scan,
                                                                 photo: Path) -> None:
    record = scanned(photo)
    del record["file"]["sha256"]  # a record without a content hash: only the size can tell
    Image.open(photo).resize((300, 300)).save(photo, format="PNG")
    evidence = maker.build(record)
    assert set(evidence.images) == {"thumbnail"}
    assert evidence.notes["image"].startswith("the image is now 300x300 px, not the 512x512 px")


def test_a_record_without_usable_landmarks_gets_only_a_thumbnail(maker: EvidenceMaker, scanned: Scan,
                                                                 photo: Path) -> None:
    record = scanned(photo)
    record["faces"] = [{"box": [0, 0, 10, 10], "landmarks": [[1, 2]] * 4, "confidence": 0.9}]
    evidence = maker.build(record)
    assert set(evidence.images) == {"thumbnail"}
    assert evidence.notes == {"face": "the record holds no usable face landmarks"}


def test_face_from_record_takes_the_largest_valid_face() -> None:
    landmarks = [[1, 1], [3, 1], [2, 2], [1, 3], [3, 3]]
    small = {"box": [0, 0, 10, 10], "landmarks": landmarks, "confidence": 0.99}
    large = {"box": [0, 0, 50, 40], "landmarks": landmarks, "confidence": 0.9}
    broken = [{"box": [0, 0, 900, 900], "landmarks": [[float("nan"), 0]] * 5}, {"box": "wide"}, "face", None]
    face = face_from_record({"faces": [small, *broken, large]})
    assert face is not None and face.box.tolist() == [0, 0, 50, 40] and face.confidence == pytest.approx(0.9)
    assert face_from_record({"faces": broken}) is None
    assert face_from_record({"faces": "none"}) is None and face_from_record({}) is None


def test_evidence_folder_names_are_short_hashes_never_the_name() -> None:
    names = [evidence_folder_name(p) for p in ("a.jpg", "b.jpg", "../../etc/passwd", os.fsdecode(b"caf\xe9.jpg"))]
    assert len(set(names)) == 4
    assert all(len(n) == 16 and set(n) <= set("0123456789abcdef") for n in names)
    assert evidence_folder_name("a.jpg") == names[0]


# --------------------------------------------------------------------------- files


def test_evidence_files_hold_the_drawings_the_record_and_a_legend(tmp_path: Path, astronaut_evidence: Evidence,
                                                                   astronaut_record: dict[str, Any]) -> None:
    folder = write_evidence(tmp_path, astronaut_record, astronaut_evidence)
    assert folder == tmp_path / evidence_folder_name(astronaut_record["path"])
    names = {p.name for p in folder.iterdir()}
    assert names == {evidence_files()[k][0] for k in EVIDENCE_KINDS} | {"record.json", "evidence.txt"}
    for kind, image in astronaut_evidence.images.items():
        with Image.open(folder / evidence_files()[kind][0]) as png:
            assert png.format == "PNG" and np.array_equal(np.asarray(png.convert("RGB")), image)
    assert json.loads((folder / "record.json").read_text()) == astronaut_record
    legend = (folder / "evidence.txt").read_text()
    assert all(evidence_files()[kind][0] in legend for kind in EVIDENCE_KINDS)


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path: Path, astronaut_evidence: Evidence,
                                                       astronaut_record: dict[str, Any],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_evidence(tmp_path, astronaut_record, astronaut_evidence)
    assert folder is not None
    before = (folder / "geometry.png").read_bytes()
    changed = Evidence(images={k: 255 - v for k, v in astronaut_evidence.images.items()})
    replace = os.replace

    def disk_full_at_geometry(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if Path(dst).name == "geometry.png":
            raise OSError(errno.ENOSPC, "No space left on device")
        replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", disk_full_at_geometry)
    # The new drawing is written aside and renamed over the old one: when the rename fails
    # the old file is still there, whole, never half overwritten.
    with pytest.raises(OSError):
        write_evidence(tmp_path, astronaut_record, changed)
    assert (folder / "geometry.png").read_bytes() == before


def test_a_record_with_nan_is_still_written(tmp_path: Path, astronaut_evidence: Evidence,
                                            astronaut_record: dict[str, Any]) -> None:
    record = {**astronaut_record, "score": float("nan")}
    folder = write_evidence(tmp_path, record, Evidence())
    assert folder is not None
    assert "NaN" in (folder / "record.json").read_text()
    assert write_evidence(tmp_path, {"status": "ok"}, astronaut_evidence) is None  # no path, no folder
