from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ganscreen
from ganscreen import Report, Screener, _scheduling, pipeline
from ganscreen._options import ScanOptions
from ganscreen._stages import each_or_alone
from ganscreen.checks import CheckContext, CheckResult


def test_public_api_is_small_and_explicit() -> None:
    assert ganscreen.__all__ == ["Report", "ScanOptions", "Screener", "__version__", "screen"]
    assert ganscreen.ScanOptions is ScanOptions
    assert isinstance(ganscreen.__version__, str)


def test_screen_accepts_path_bytes_and_pil(screener: Screener, samples) -> None:  # noqa: ANN001
    path = samples / "astronaut.png"
    by_path = screener.screen(path)
    by_bytes = screener.screen(path.read_bytes())
    by_pil = screener.screen(Image.open(path))
    assert by_path.path == str(path) and by_bytes.path is None and by_pil.path is None
    for report in (by_path, by_bytes, by_pil):
        assert isinstance(report, Report)
        assert report.status == "ok" and report.verdict == "real"
        assert report.score == pytest.approx(by_path.score, abs=1e-6)


def test_record_follows_the_documented_schema(screener: Screener, samples) -> None:  # noqa: ANN001
    record = json.loads(screener.screen(samples / "astronaut_ffhq_aligned.jpg").to_json())
    assert list(record) == ["path", "status", "error", "score", "verdict", "reason", "flags", "image",
                            "faces", "checks", "robustness", "model", "file"]
    assert record["image"] == {"width": 512, "height": 512, "format": "JPEG"}
    assert record["status"] == "ok" and record["error"] is None
    assert 0.0 <= record["score"] <= 1.0 and record["verdict"] in ("gan", "uncertain", "real")
    assert "ffhq_alignment" in record["flags"]
    face = record["faces"][0]
    assert len(face["box"]) == 4 and len(face["landmarks"]) == 5 and face["confidence"] > 0.9
    assert set(record["checks"]) == {"geometry", "glasses", "backdrop", "cnn"}
    for check in record["checks"].values():
        assert check["score"] is None or 0.0 <= check["score"] <= 1.0
    assert record["model"]["version"].startswith("ganscreen-")
    assert len(record["model"]["sha256"]) == 64


def test_exif_rotated_photo_is_seen_upright(screener: Screener, samples) -> None:  # noqa: ANN001
    upright = screener.screen(samples / "astronaut.png")
    rotated = screener.screen(samples / "astronaut_exif_rotated.jpg")
    assert rotated.image is not None and (rotated.image.width, rotated.image.height) == (512, 512)
    np.testing.assert_allclose(rotated.faces[0].landmarks, upright.faces[0].landmarks, atol=4)


def test_no_face_and_errors_are_records(screener: Screener, samples) -> None:  # noqa: ANN001
    cat = screener.screen(samples / "chelsea_no_face.jpg")
    assert cat.status == "no_face" and cat.score is None and cat.verdict is None and not cat.faces
    assert cat.checks["geometry"].reason == "no face"
    broken = screener.screen(samples / "broken_truncated.jpg")
    assert broken.status == "error" and "truncated" in broken.error


def test_scan_gives_one_record_per_file_in_order(screener: Screener, samples, tmp_path) -> None:  # noqa: ANN001
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    good = (samples / "astronaut.png").read_bytes()
    files = {
        "a_good.png": good,
        "b_empty.jpg": b"",
        "c_text.jpg": b"<html>not an image</html>",
        "d_truncated.jpg": (samples / "astronaut_ffhq_aligned.jpg").read_bytes()[:3000],
        "sub/e_cat.jpg": (samples / "chelsea_no_face.jpg").read_bytes(),
        "sub/f_good.jpg": (samples / "astronaut_ffhq_aligned.jpg").read_bytes(),
    }
    buf = io.BytesIO()
    Image.new("L", (64, 64)).save(buf, format="PNG")
    huge = bytearray(buf.getvalue())
    huge[16:24] = (100000).to_bytes(4, "big") * 2  # IHDR claims 100000 x 100000
    import zlib

    huge[29:33] = zlib.crc32(bytes(huge[12:29])).to_bytes(4, "big")
    files["g_bomb.png"] = bytes(huge)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "notes.txt").write_text("not an input")
    reports = list(screener.scan([folder]))
    names = [r.path.split("mixed/")[1] for r in reports]
    assert names == ["a_good.png", "b_empty.jpg", "c_text.jpg", "d_truncated.jpg", "g_bomb.png",
                     "sub/e_cat.jpg", "sub/f_good.jpg"]
    status = {n: (r.status, r.error) for n, r in zip(names, reports, strict=True)}
    assert status["a_good.png"] == ("ok", None) and status["sub/f_good.jpg"] == ("ok", None)
    assert status["sub/e_cat.jpg"] == ("no_face", None)
    assert "empty" in status["b_empty.jpg"][1]
    assert "not a recognised image" in status["c_text.jpg"][1]
    assert "truncated" in status["d_truncated.jpg"][1]
    assert "too large" in status["g_bomb.png"][1]
    assert all("\n" not in (r.error or "") for r in reports)
    assert all(r.file is not None and r.file["size"] == len(files[n]) for n, r in zip(names, reports, strict=True))


def test_batching_does_not_change_results(samples) -> None:  # noqa: ANN001
    one = [r.to_record() for r in Screener(device="cpu", batch_size=1).scan(samples)]
    many = [r.to_record() for r in Screener(device="cpu", batch_size=5).scan(samples)]
    assert len(one) == len(list(samples.iterdir())) - 1  # README.md is not an image
    for a, b in zip(one, many, strict=True):
        assert a["path"] == b["path"] and a["status"] == b["status"] and a["verdict"] == b["verdict"]
        assert (a["score"] is None) == (b["score"] is None)
        if a["score"] is not None:  # kernels differ with the batch size: float noise only
            assert a["score"] == pytest.approx(b["score"], abs=5e-4)


def test_robustness_rescoring_records_every_variant(samples) -> None:  # noqa: ANN001
    from ganscreen.pipeline import ROBUSTNESS_VARIANTS

    screener = Screener(device="cpu", robustness=True)
    reports = list(screener.scan([samples / "astronaut.png", samples / "astronaut_ffhq_aligned.jpg",
                                  samples / "broken_truncated.jpg"]))
    for report in reports[:2]:
        rob = report.to_record()["robustness"]
        assert [(v["longer_side"], v["jpeg_quality"]) for v in rob["variants"]] == list(ROBUSTNESS_VARIANTS)
        assert rob["unstable"] == any(v["verdict"] != report.verdict for v in rob["variants"])
        assert all(v["score"] is not None and 0 <= v["score"] <= 1 for v in rob["variants"])
    # A real portrait stays real after platform processing.
    assert reports[0].verdict == "real" and reports[0].robustness["unstable"] is False
    assert reports[2].status == "error" and reports[2].robustness is None
    assert Screener(device="cpu").screen(samples / "astronaut.png").robustness is None


def test_screen_batch_matches_screen_one_by_one(screener: Screener, samples) -> None:  # noqa: ANN001
    files = [samples / "astronaut.png", samples / "broken_truncated.jpg", samples / "chelsea_no_face.jpg"]
    sources = [files[0], files[1].read_bytes(), Image.open(files[2])]
    batch = screener.screen_batch(sources, paths=["a", "b", "c"])
    assert [r.path for r in batch] == ["a", "b", "c"]
    assert [r.status for r in batch] == ["ok", "error", "no_face"]
    alone = screener.screen(files[0])
    assert batch[0].score == pytest.approx(alone.score, abs=1e-4) and batch[0].verdict == alone.verdict
    assert [r.path for r in screener.screen_batch(files[:1])] == [str(files[0])]
    with pytest.raises(ValueError, match="every source"):
        screener.screen_batch(files, paths=["only one"])


def test_worker_threads_do_not_change_records(samples) -> None:  # noqa: ANN001
    inline = [r.to_record() for r in Screener(device="cpu", batch_size=3, workers=1).scan(samples)]
    threaded = [r.to_record() for r in Screener(device="cpu", batch_size=3, workers=3).scan(samples)]
    assert len(inline) == len(list(samples.glob("*.*"))) - 1  # README.md is not an image
    for a, b in zip(inline, threaded, strict=True):
        # One torch thread per worker instead of torch's pool: float noise only.
        a_scores = {name: check["score"] for name, check in a.pop("checks").items()}
        b_scores = {name: check["score"] for name, check in b.pop("checks").items()}
        assert a_scores.keys() == b_scores.keys()
        for name, score in a_scores.items():
            assert (score is None) == (b_scores[name] is None)
            assert score is None or score == pytest.approx(b_scores[name], abs=5e-4), name
        score_a, score_b = a.pop("score"), b.pop("score")
        assert score_a is None or score_a == pytest.approx(score_b, abs=5e-4)
        faces_a, faces_b = a.pop("faces"), b.pop("faces")
        assert len(faces_a) == len(faces_b)
        for fa, fb in zip(faces_a, faces_b, strict=True):
            assert fa["box"] == pytest.approx(fb["box"], abs=0.05)
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


class _Fails:
    """A per-image check (run in worker threads) that fails on images wider than 400 px."""

    name = "fails"

    def run(self, ctx: CheckContext) -> CheckResult:
        if ctx.image.shape[1] > 400:
            raise RuntimeError("wide image\nsecond line")
        return CheckResult(score=0.5)


class _BatchFails:
    """A batched check whose batch fails when it holds an image taller than 400 px."""

    name = "batch_fails"

    def run(self, ctx: CheckContext) -> CheckResult:
        return self.run_prepared([self.prepare(ctx)])[0]

    def prepare(self, ctx: CheckContext) -> int:
        return int(ctx.image.shape[0])

    def run_prepared(self, heights: list[int]) -> list[CheckResult]:
        if max(heights) > 400:
            raise RuntimeError("tall image in batch")
        return [CheckResult(score=0.25) for _ in heights]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_check_fails_only_its_own_image(tmp_path, samples, workers: int,  # noqa: ANN001
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="ganscreen")
    astronaut = Image.open(samples / "astronaut.png").convert("RGB")
    sizes = {"a_small.jpg": (300, 300), "b_wide.jpg": (500, 300), "c_tall.jpg": (300, 500), "d_small.jpg": (320, 320)}
    for name, size in sizes.items():
        astronaut.resize(size).save(tmp_path / name)
    screener = Screener(device="cpu", batch_size=4, workers=workers, checks=[_Fails(), _BatchFails()])
    reports = {Path(r.path).name: r for r in screener.scan(tmp_path)}
    assert sorted(reports) == sorted(sizes)
    assert reports["b_wide.jpg"].status == "error" and reports["b_wide.jpg"].error == (
        "analysis failed: wide image second line")
    assert reports["c_tall.jpg"].status == "error" and "tall image in batch" in reports["c_tall.jpg"].error
    for name in ("a_small.jpg", "d_small.jpg"):  # in the same batch as the failures, unharmed
        assert reports[name].status == "ok", reports[name].error
        assert reports[name].checks["fails"].score == 0.5 and reports[name].checks["batch_fails"].score == 0.25
    assert all(r.file is not None for r in reports.values())
    # Every guard says why on the ganscreen logger: the per-image failure, the failed batch
    # (retried one at a time) and the one image that failed alone.
    logged = [r.getMessage() for r in caplog.records if r.name == "ganscreen"]
    assert any("analysis failed" in m and "wide image" in m for m in logged), logged
    assert any("batch_fails check failed for a batch of 3 images" in m and "retrying one at a time" in m
               for m in logged), logged
    assert any("batch_fails check failed for one image: tall image in batch" in m for m in logged), logged


def test_each_or_alone_keeps_a_failure_with_its_item(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[list[int]] = []

    def halve(items: list[int]) -> list[float]:
        calls.append(items)
        if 0 in items:
            raise ZeroDivisionError("zero in batch")
        return [1 / i for i in items]

    assert each_or_alone(halve, [1, 2, 4], what="halving") == [1.0, 0.5, 0.25]
    assert calls == [[1, 2, 4]]  # one call when the batch works
    calls.clear()
    out = each_or_alone(halve, [2, 0, 4], what="halving")
    assert out[0] == 0.5 and out[2] == 0.25 and isinstance(out[1], ZeroDivisionError)
    assert calls == [[2, 0, 4], [2], [0], [4]]
    assert "halving failed for a batch of 3 images (zero in batch)" in caplog.text
    calls.clear()
    alone = each_or_alone(halve, [0], what="halving")
    assert isinstance(alone[0], ZeroDivisionError) and calls == [[0]]  # a batch of one is not redone
    assert each_or_alone(halve, [], what="halving") == []
    short = each_or_alone(lambda items: [1.0], [1, 2], what="short")  # a result missing: redone alone
    assert short == [1.0, 1.0]


def test_reports_are_frozen_and_built_complete(screener: Screener, samples) -> None:  # noqa: ANN001
    import dataclasses

    [report] = list(screener.scan([samples / "astronaut.png"]))
    assert report.file is not None and report.file["size"] == (samples / "astronaut.png").stat().st_size
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.file = None  # type: ignore[misc]
    assert report.image is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.image.width = 1  # type: ignore[misc]


def test_the_library_leaves_torch_threads_alone_unless_asked(samples) -> None:  # noqa: ANN001
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(3)  # a count no default gives, so "left alone" is told from "set"
    try:
        seen: list[int] = []
        screener = Screener(device="cpu", batch_size=2, workers=2)
        assert Screener(device="cpu").workers == 1  # the library screens on the calling thread by default
        original = screener._stages.screen

        def spying(works):  # noqa: ANN001, ANN202
            seen.append(torch.get_num_threads())
            return original(works)

        screener._stages.screen = spying  # type: ignore[method-assign]
        list(screener.scan([samples / "astronaut.png"] * 3))
        assert seen == [3, 3]
        asked = Screener(device="cpu", batch_size=2, workers=1, torch_threads=1)
        asked._stages.screen = spying  # type: ignore[method-assign]
        seen.clear()
        asked.screen(samples / "astronaut.png")
        assert seen == [1] and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_stopping_a_scan_early_stops_its_threads(samples) -> None:  # noqa: ANN001
    import torch

    threads = torch.get_num_threads()
    screener = Screener(options=ScanOptions(device="cpu", batch_size=2, workers=2, torch_threads="auto"))
    scan = screener.scan(samples)
    first = next(scan)
    assert first.path.endswith("astronaut.png")
    assert any(t.name.startswith("ganscreen") for t in threading.enumerate())
    assert torch.get_num_threads() == 1  # one torch thread per worker during the scan
    scan.close()
    assert not any(t.name.startswith("ganscreen") for t in threading.enumerate())
    assert torch.get_num_threads() == threads


def test_automatic_workers_and_batch_size_fit_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    assert pipeline.auto_batch_size(torch.device("cpu")) == 4
    assert pipeline.auto_batch_size(torch.device("cuda")) == 32
    for cpus, workers in [(1, 1), (2, 2), (3, 3), (64, 8)]:
        monkeypatch.setattr(_scheduling, "usable_cpus", lambda cpus=cpus: cpus)
        assert pipeline.auto_workers() == workers
        assert Screener(device="cpu", workers=None, max_memory=100 * 2**30).workers == workers
    with pytest.raises(ValueError, match="workers"):
        Screener(device="cpu", workers=0)


def test_large_photos_are_screened_a_few_at_a_time(samples, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    screener = Screener(device="cpu", batch_size=8, workers=1)
    sizes: list[int] = []
    detect = screener.detector.detect_prepared

    def recording(prepared):  # noqa: ANN001, ANN202
        sizes.append(len(prepared))
        return detect(prepared)

    monkeypatch.setattr(screener.detector, "detect_prepared", recording)
    files = [samples / "astronaut.png"] * 5  # 512 x 512 each
    whole = [r.to_record() for r in screener.scan(files)]
    assert sizes == [5]
    sizes.clear()
    monkeypatch.setattr(_scheduling, "BATCH_PIXELS", 2 * 512 * 512)
    split = [r.to_record() for r in screener.scan(files)]
    assert sizes == [2, 2, 1]
    assert [r["score"] for r in split] == pytest.approx([r["score"] for r in whole], abs=5e-4)


def test_the_memory_budget_caps_the_workers_and_what_one_image_may_take(tmp_path) -> None:  # noqa: ANN001
    from ganscreen.images import MAX_DECODE_BYTES

    roomy = Screener(device="cpu", workers=8, max_memory=pipeline.BASE_MEMORY + 2 * pipeline.WORKER_MEMORY)
    assert roomy.workers == 2 and roomy.max_decode_bytes == MAX_DECODE_BYTES
    tight = Screener(device="cpu", workers=4, max_memory=pipeline.BASE_MEMORY + 2 * 2**20)
    assert tight.workers == 1 and tight.max_decode_bytes == pipeline.MIN_DECODE_BYTES
    assert pipeline.memory_workers(pipeline.default_memory_budget()) >= 1
    # A 16-bit grey PNG that decodes to 72 MiB: over the tight screener's 64 MiB, a clear error.
    path = tmp_path / "deep.png"
    Image.fromarray(np.zeros((6144, 6144), np.uint16)).save(path)
    report = tight.screen(path)
    assert report.status == "error" and "too large to decode" in report.error and "6144x6144" in report.error
    with pytest.raises(ValueError, match="max_memory"):
        Screener(device="cpu", max_memory=0)


def test_the_memory_gate_lets_only_what_fits_run_at_once() -> None:
    gate = pipeline.MemoryGate(100)
    inside: list[int] = []
    peak = [0]
    lock = threading.Lock()
    release = threading.Event()

    def job(amount: int) -> None:
        with gate.hold(amount):
            with lock:
                inside.append(amount)
                peak[0] = max(peak[0], gate.used)
            release.wait(60)
            with lock:
                inside.remove(amount)

    threads = [threading.Thread(target=job, args=(60,), daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60  # generous: only a hang reaches it
    while gate.used == 0:  # the first one is in; the others wait: 60 + 60 > 100
        assert time.monotonic() < deadline, "no job entered the gate within 60 s"
        threading.Event().wait(0.001)
    assert gate.used == 60
    release.set()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a job still waits at the gate 60 s after the others left"
    assert peak[0] == 60 and gate.used == 0
    with gate.hold(10_000):  # larger than the whole allowance: runs alone, never deadlocks
        assert gate.used == 100
