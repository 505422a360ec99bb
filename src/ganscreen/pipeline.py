"""The Screener: images → faces → checks → fusion → one Report per input.

``Screener.scan`` streams: it decodes a batch of inputs, detects faces for the whole batch
in one MTCNN pass per image size, aligns each face once for every check, runs the checks
(the CNN over the whole batch in one forward pass) and yields reports in input order, so
memory stays flat however many files are scanned. Several workers screen batches in
parallel, each on its own thread with one torch thread (see ``Screener.scan_inputs``).
"""

from __future__ import annotations

import dataclasses
import io
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import numpy as np
import torch
from PIL import Image

from ganscreen._assets import bundle_digest, verify_all
from ganscreen._orientation import mirror_face, needs_mirror
from ganscreen._version import __version__
from ganscreen.checks import ALIGNED_SIZE, BatchedCheck, Check, CheckContext, CheckResult, build_checks
from ganscreen.faces import Face, FaceDetector, align_face, primary_face, resolve_device
from ganscreen.fusion import Fusion
from ganscreen.images import (
    MAX_DECODE_BYTES,
    ImageLoadError,
    InputFile,
    LoadedImage,
    header_cost,
    iter_inputs,
    load_image,
    read_file,
)
from ganscreen.report import ImageInfo, Report

__all__ = [
    "BASE_MEMORY",
    "BATCH_PIXELS",
    "CUDA_BATCH_SIZE",
    "DEFAULT_BATCH_SIZE",
    "MIN_DECODE_BYTES",
    "ROBUSTNESS_VARIANTS",
    "WORKER_MEMORY",
    "MemoryGate",
    "Screener",
    "auto_batch_size",
    "auto_workers",
    "available_memory",
    "decode_limit",
    "decode_pool",
    "default_checks",
    "default_memory_budget",
    "memory_workers",
    "platform_copy",
    "screen",
    "usable_cpus",
]

DEFAULT_BATCH_SIZE = 4  # on the CPU (as fast as 8 there, with far less memory); see auto_batch_size
CUDA_BATCH_SIZE = 32
# Decoded pixels a batch may hold before it is screened early: about 100 MB of RGB, so
# batches of 1024² photos are whole and 24-megapixel ones go two at a time.
BATCH_PIXELS = 32_000_000
T = TypeVar("T")


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, so containers are honoured)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def auto_workers() -> int:
    """Parallel scan threads: one per usable CPU, at most 8 (each holds a batch in memory)."""
    return min(8, usable_cpus())


# What the memory budget is spent on: the models, torch and the interpreter once, then per
# worker a batch at its worst (one image decoded at the per-image limit, its analysis arrays
# and the rest of its batch).
BASE_MEMORY = 1024 * 2**20
WORKER_MEMORY = 768 * 2**20
MIN_DECODE_BYTES = 64 * 2**20


def available_memory() -> int | None:
    """Memory the system can still give (MemAvailable), in bytes; ``None`` if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_memory_budget() -> int:
    """Half the memory available now (4 GiB when that cannot be told)."""
    available = available_memory()
    return available // 2 if available else 4 * 2**30


def memory_workers(budget: int) -> int:
    """Workers a memory budget pays for (at least one)."""
    return max(1, (budget - BASE_MEMORY) // WORKER_MEMORY)


def decode_limit(budget: int) -> int:
    """Bytes one image may take to decode under a memory budget."""
    return max(MIN_DECODE_BYTES, min(MAX_DECODE_BYTES, budget - BASE_MEMORY))


def decode_pool(budget: int) -> int:
    """Bytes all workers together may spend decoding at once (see :class:`MemoryGate`):
    half of what the budget leaves after the models, at most 1 GiB. Workers decoding
    ordinary photos never wait; two decodes of 100-megapixel images at once do."""
    return max(2 * MIN_DECODE_BYTES, min(2**30, (budget - BASE_MEMORY) // 2))


class MemoryGate:
    """A shared allowance of bytes: ``hold(n)`` waits until ``n`` more fit (a request larger
    than the whole allowance runs alone), so concurrent decodes stay within it."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, amount: int) -> Iterator[None]:
        amount = min(max(0, amount), self.capacity)
        with self._changed:
            while self.used and self.used + amount > self.capacity:
                self._changed.wait()
            self.used += amount
        try:
            yield
        finally:
            with self._changed:
                self.used -= amount
                self._changed.notify_all()


def auto_batch_size(device: torch.device) -> int:
    """Images per detection/CNN batch: larger batches pay off on a GPU, not on a CPU."""
    return CUDA_BATCH_SIZE if device.type == "cuda" else DEFAULT_BATCH_SIZE


def default_checks(device: str | torch.device = "cpu") -> list[Check]:
    """Every registered check (see :func:`ganscreen.checks.registered`), in report order."""
    return build_checks(device)


class Screener:
    """Screens images for GAN-generated faces.

    Parameters
    ----------
    device:
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or a ``torch.device``.
    batch_size:
        Images sent through face detection and the CNN together (default:
        :func:`auto_batch_size`).
    workers:
        Batches screened in parallel by ``scan``, each on its own thread with one torch
        thread (default: :func:`auto_workers`; 1 screens on the calling thread).
    checks:
        The checks to run; defaults to every shipped check.
    robustness:
        Also re-score every judged face after platform-style processing (downscale, JPEG;
        see :data:`ROBUSTNESS_VARIANTS`) and mark the report unstable when a verdict flips.
    max_memory:
        Memory budget in bytes (default: :func:`default_memory_budget`). It caps the
        workers (:func:`memory_workers`, also when ``workers`` is given), the bytes one
        image may take to decode (:func:`decode_limit`; larger JPEGs are decoded reduced,
        other formats refused) and the bytes all workers may spend decoding at once
        (:func:`decode_pool`).
    """

    def __init__(self, *, device: str | torch.device = "auto", batch_size: int | None = None,
                 workers: int | None = None, checks: Sequence[Check] | None = None,
                 fusion: Fusion | None = None, robustness: bool = False,
                 max_memory: int | None = None) -> None:
        if batch_size is not None and batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if workers is not None and workers < 1:
            raise ValueError("workers must be at least 1")
        verify_all()  # every shipped parameter file and MTCNN's weights, before any is used
        self.device = resolve_device(device)
        self.batch_size = batch_size if batch_size is not None else auto_batch_size(self.device)
        if max_memory is not None and max_memory < 1:
            raise ValueError("max_memory must be a positive number of bytes")
        self.max_memory = max_memory if max_memory is not None else default_memory_budget()
        self.workers = min(workers if workers is not None else auto_workers(), memory_workers(self.max_memory))
        self.max_decode_bytes = decode_limit(self.max_memory)
        self.decode_gate = MemoryGate(decode_pool(self.max_memory))
        self.robustness = robustness
        self.detector = FaceDetector(device=self.device)
        self.checks: list[Check] = list(checks) if checks is not None else default_checks(self.device)
        self.fusion = fusion if fusion is not None else Fusion()
        self.model_info = {
            "version": f"ganscreen-{__version__}/{self.fusion.version}",
            "sha256": bundle_digest(),
        }

    # ------------------------------------------------------------------ public API

    def screen(self, image: str | os.PathLike[str] | bytes | Image.Image) -> Report:
        """Screen one image given as a path, encoded bytes or a PIL image."""
        path = str(image) if isinstance(image, (str, os.PathLike)) else None
        return self._screen_batch([(path, image)])[0]

    def screen_batch(self, sources: Sequence[str | os.PathLike[str] | bytes | Image.Image], *,
                     paths: Sequence[str | None] | None = None) -> list[Report]:
        """Screen several images in one detection and CNN batch; one report per source, in order.

        ``paths`` names the sources in the reports (defaults to the source itself when it is
        a path). A source that cannot be read gets an error report; nothing raises.
        """
        if paths is None:
            paths = [str(s) if isinstance(s, (str, os.PathLike)) else None for s in sources]
        if len(paths) != len(sources):
            raise ValueError("paths must name every source")
        return self._screen_batch(list(zip(paths, sources, strict=True)))

    def scan(self, paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str], *,
             all_files: bool = False, follow_symlinks: bool = False) -> Iterator[Report]:
        """Yield one report per input file under ``paths`` (files or folders), in order."""
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        inputs = iter_inputs(paths, all_files=all_files, follow_symlinks=follow_symlinks)
        yield from self.scan_inputs(inputs)

    def scan_inputs(self, inputs: Iterable[InputFile]) -> Iterator[Report]:
        """Yield one report per input, in order, streaming.

        Inputs are cut into batches. With one worker each batch is decoded, detected,
        checked and reported on the calling thread, torch using every core for each model
        call. With more, that many threads each screen a whole batch at a time, with one
        torch thread each (set for the scan and restored after): no core waits for another,
        decoding and the checks overlap the models, and a busy machine slows the scan
        gracefully instead of stalling torch's thread pool. Batches finish in order and at
        most ``workers + 1`` are in memory.
        """
        batches = _chunks(inputs, self.batch_size)
        if self.workers <= 1:
            for batch in batches:
                yield from self._screen_inputs(batch)
            return
        with _torch_threads(1), _Pool(self.workers, thread_name_prefix="ganscreen") as pool:
            running: deque[Future[list[Report]]] = deque()
            for batch in batches:
                running.append(pool.submit(self._screen_inputs, batch))
                if len(running) > self.workers:
                    yield from running.popleft().result()
            while running:
                yield from running.popleft().result()

    # ------------------------------------------------------------------ internals

    def _screen_inputs(self, batch: list[InputFile]) -> list[Report]:
        """Screen a batch, cut short whenever its decoded images reach ``BATCH_PIXELS``, so
        a folder of huge photos holds a few of them in memory per worker, not a batch."""
        reports: list[Report] = []
        works: list[_Work] = []
        pixels = 0
        for item in batch:
            works.append(self._load_input(item))
            image = works[-1].image
            pixels += 0 if image is None else image.width * image.height
            if pixels >= BATCH_PIXELS:
                reports += self._screen_works(works)
                works, pixels = [], 0
        if works:
            reports += self._screen_works(works)
        return reports

    def _screen_batch(self, items: list[tuple[str | None, object]]) -> list[Report]:
        return self._screen_works([self._load(path, source) for path, source in items])

    def _screen_works(self, works: list[_Work], *, robustness: bool | None = None) -> list[Report]:
        self._detect(works)
        for work in works:
            self._analyse(work)
        return self._finish(works, robustness=robustness)

    def _load_input(self, item: InputFile) -> _Work:
        """Read ``item`` once by the reading rule (its stamp is that of the bytes judged)."""
        path = str(item.path)
        if item.error is not None:
            return _Work(path, report=self._error(path, item.error))
        try:
            read = read_file(item.path, root=item.root)
        except ImageLoadError as exc:
            return _Work(path, report=self._error(path, str(exc), exc.stamp))
        except Exception as exc:  # never let one file end a batch
            return _Work(path, report=self._error(path, f"unexpected error while reading: {_one_line(exc)}"))
        work = self._load(path, read.data)
        work.file = read.stamp
        if work.report is not None:
            work.report.file = read.stamp
        return work

    def _load(self, path: str | None, source: object) -> _Work:
        """Decode and shrink for detection (worker threads)."""
        work = _Work(path)
        try:
            cost = header_cost(source) if isinstance(source, bytes) else 0
            with self.decode_gate.hold(cost):
                work.image = load_image(source, max_decode_bytes=self.max_decode_bytes)  # type: ignore[arg-type]
            if needs_mirror(work.image.rgb):  # screen the mirror-canonical orientation
                work.image = dataclasses.replace(work.image, rgb=np.ascontiguousarray(work.image.rgb[:, ::-1]))
                work.mirrored = True
            work.detect_input = self.detector.prepare(work.image.rgb)
        except ImageLoadError as exc:
            work.report = self._error(path, str(exc))
        except Exception as exc:  # never let one file end a batch
            work.report = self._error(path, f"unexpected error while reading: {_one_line(exc)}")
        return work

    def _detect(self, works: list[_Work]) -> None:
        """Face detection for every decoded image, one MTCNN batch per image size."""
        todo = [w for w in works if w.report is None and w.detect_input is not None]
        if not todo:
            return
        try:
            found: list[list[Face] | Exception] = list(self.detector.detect_prepared([w.detect_input for w in todo]))
        except Exception:
            found = [self._detect_one(w.detect_input) for w in todo]
        for work, faces in zip(todo, found, strict=True):
            work.detect_input = None  # no longer needed: free it
            if isinstance(faces, Exception):
                work.fail(self, f"analysis failed: {_one_line(faces)}")
            else:
                work.faces = faces

    def _detect_one(self, prepared: tuple[np.ndarray, float]) -> list[Face] | Exception:
        try:
            return self.detector.detect_prepared([prepared])[0]
        except Exception as exc:
            return exc

    def _analyse(self, work: _Work) -> None:
        """Align the face and run every per-image check; prepare the batched ones (workers)."""
        if work.report is not None or work.faces is None:
            return
        assert work.image is not None
        try:
            work.context = self._context(work.image, work.faces)
        except Exception as exc:
            work.fail(self, f"analysis failed: {_one_line(exc)}")
            return
        for check in self.checks:
            try:
                if _is_batched(check):
                    work.prepared[check.name] = check.prepare(work.context)  # type: ignore[attr-defined]
                else:
                    work.results[check.name] = check.run(work.context)
            except Exception as exc:
                work.fail(self, f"analysis failed: {_one_line(exc)}")
                return

    def _finish(self, works: list[_Work], *, robustness: bool | None = None) -> list[Report]:
        """Run the batched checks over a batch, fuse, and make its reports."""
        live = [w for w in works if w.report is None and w.context is not None]
        for check in self.checks:
            if not _is_batched(check) or not live:
                continue
            outcome = self._run_prepared(check, [w.prepared[check.name] for w in live])
            for work, result in zip(live, outcome, strict=True):
                if isinstance(result, Exception):
                    work.fail(self, f"analysis failed: {_one_line(result)}")
                else:
                    work.results[check.name] = result
            live = [w for w in live if w.report is None]
        for work in live:
            assert work.image is not None and work.context is not None
            ordered = {c.name: work.results[c.name] for c in self.checks}
            work.report = self._report(work.path, work.image, work.context, ordered, mirrored=work.mirrored)
            work.report.file = work.file
        reports = [w.report for w in works]
        assert all(r is not None for r in reports)
        if self.robustness if robustness is None else robustness:
            self._add_robustness(works)
        return reports  # type: ignore[return-value]

    @staticmethod
    def _run_prepared(check: Check, prepared: list[object]) -> list[CheckResult | Exception]:
        """A batched check over many images; a failed batch is retried one image at a time,
        so a failure stays with the image that caused it."""
        try:
            return list(check.run_prepared(prepared))  # type: ignore[attr-defined]
        except Exception:
            pass
        out: list[CheckResult | Exception] = []
        for item in prepared:
            try:
                out.append(check.run_prepared([item])[0])  # type: ignore[attr-defined]
            except Exception as exc:
                out.append(exc)
        return out

    def _add_robustness(self, works: list[_Work]) -> None:
        """Re-screen platform-processed copies of every judged image, in one batch."""
        variants: list[tuple[_Work, int, int, bytes]] = []
        for work in works:
            report = work.report
            if report is None or report.status != "ok" or report.score is None or work.image is None:
                continue
            image = work.image.pil()
            variants += [(work, side, quality, platform_copy(image, side, quality))
                         for side, quality in ROBUSTNESS_VARIANTS]
        scored = self._screen_works([self._load(None, data) for _, _, _, data in variants], robustness=False)
        by_work: dict[int, list[dict[str, object]]] = {}
        for (work, side, quality, _), variant in zip(variants, scored, strict=True):
            by_work.setdefault(id(work), []).append({
                "longer_side": side, "jpeg_quality": quality,
                "score": None if variant.score is None else round(float(variant.score), 5),
                "verdict": variant.verdict if variant.status == "ok" else variant.status,
            })
        for work in works:
            entries = by_work.get(id(work))
            if entries is not None and work.report is not None:
                work.report.robustness = {
                    "unstable": any(e["verdict"] != work.report.verdict for e in entries),
                    "variants": entries,
                }

    @staticmethod
    def _context(img: LoadedImage, faces: list[Face]) -> CheckContext:
        face = primary_face(faces)
        aligned = align_face(img.rgb, face, size=ALIGNED_SIZE) if face is not None else None
        return CheckContext(image=img.rgb, faces=tuple(faces), face=face, aligned=aligned)

    def _report(self, path: str | None, img: LoadedImage, ctx: CheckContext,
                results: dict[str, CheckResult], *, mirrored: bool = False) -> Report:
        decision = self.fusion.decide(results)
        verdict, reason = decision.verdict, decision.reason
        if ctx.face is None:
            reason = "no face found: nothing to judge"
        elif verdict is None:
            verdict = "uncertain"  # a face no check could judge is not cleared
        return Report(
            path=path,
            status="ok" if ctx.face is not None else "no_face",
            score=decision.score,
            verdict=verdict,
            reason=reason,
            flags=decision.flags,
            image=_info(img),
            faces=tuple(mirror_face(f, img.width) for f in ctx.faces) if mirrored else ctx.faces,
            checks=results,
            model=self.model_info,
        )

    def _error(self, path: str | None, message: str, file: dict | None = None, *,
               image: ImageInfo | None = None) -> Report:
        return Report(path=path, status="error", error=_one_line(message), image=image,
                      model=self.model_info, file=file)


# Platform-style processing for --robustness: (longer side in pixels, JPEG quality).
ROBUSTNESS_VARIANTS = ((512, 85), (384, 75), (256, 60))


def platform_copy(image: Image.Image, longer_side: int, quality: int) -> bytes:
    """The photo as a platform would serve it: shrunk to ``longer_side`` (never enlarged)
    and re-encoded as JPEG."""
    copy = image.convert("RGB")
    if max(copy.size) > longer_side:
        copy.thumbnail((longer_side, longer_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    copy.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


class _Work:
    """One input on its way through the pipeline; ``report`` is set once it is finished."""

    __slots__ = ("path", "file", "image", "mirrored", "detect_input", "faces", "context", "prepared", "results",
                 "report")

    def __init__(self, path: str | None, *, report: Report | None = None) -> None:
        self.path = path
        self.file: dict[str, int | float] | None = None
        self.image: LoadedImage | None = None
        self.mirrored = False  # screened as its mirror image (see ganscreen._orientation)
        self.detect_input: tuple[np.ndarray, float] | None = None
        self.faces: list[Face] | None = None
        self.context: CheckContext | None = None
        self.prepared: dict[str, object] = {}
        self.results: dict[str, CheckResult] = {}
        self.report = report

    def fail(self, screener: Screener, message: str) -> None:
        image = _info(self.image) if self.image is not None else None
        self.report = screener._error(self.path, message, self.file, image=image)
        self.context = None


class _Pool(ThreadPoolExecutor):
    """Worker threads that drop their queued work when the scan stops early."""

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(wait=True, cancel_futures=True)


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _is_batched(check: Check) -> bool:
    return isinstance(check, BatchedCheck)


def _info(img: LoadedImage) -> ImageInfo:
    return ImageInfo(width=img.width, height=img.height, format=img.format)


def _one_line(message: object) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= 300 else text[:297] + "..."


def screen(image: str | os.PathLike[str] | bytes | Image.Image, *, device: str = "auto") -> Report:
    """Screen one image with a fresh :class:`Screener` (convenient, not for batches)."""
    return Screener(device=device).screen(image)
