"""The stages one batch goes through: load, detect, align and analyse, batched checks, fuse.

Every input ends with exactly one :class:`~ganscreen.report.Report`; nothing here raises for
a bad input. A failure stays with the image that caused it: a batched call (face detection,
a check with a model) that fails is redone one image at a time (:func:`each_or_alone`), and
every unforeseen exception is logged on the ``ganscreen`` logger and becomes the one-line
``error`` of its record.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import numpy as np

from ganscreen._orientation import mirror_face, needs_mirror
from ganscreen._records import one_line
from ganscreen._scheduling import MemoryGate
from ganscreen.checks import ALIGNED_SIZE, BatchedCheck, Check, CheckContext, CheckResult
from ganscreen.faces import Face, FaceDetector, align_face, primary_face
from ganscreen.fusion import Fusion
from ganscreen.images import ImageLoadError, InputFile, LoadedImage, header_cost, load_image, read_file
from ganscreen.report import ImageInfo, Report

log = logging.getLogger("ganscreen")
log.addHandler(logging.NullHandler())  # a library: what is shown is the application's choice

T = TypeVar("T")
R = TypeVar("R")
Stamp = Mapping[str, int | float | str]


def each_or_alone(call: Callable[[list[T]], Sequence[R]], items: Sequence[T], *, what: str) -> list[R | Exception]:
    """``call`` over all ``items`` at once; when that fails, over each item alone, so one bad
    item costs only its own result. Each item's result, or the exception it raised."""
    if not items:
        return []
    if len(items) > 1:
        try:
            results = list(call(list(items)))
            if len(results) != len(items):
                raise RuntimeError(f"{len(results)} results for {len(items)} inputs")
            return list(results)
        except Exception as exc:  # redone one by one below, where it is recorded per image
            log.warning("%s failed for a batch of %d images (%s); retrying one at a time",
                        what, len(items), one_line(exc), exc_info=True)
    out: list[R | Exception] = []
    for item in items:
        try:
            out.append(call([item])[0])
        except Exception as exc:  # the caller records it as this image's error
            log.warning("%s failed for one image: %s", what, one_line(exc), exc_info=True)
            out.append(exc)
    return out


class Work:
    """One input on its way through the stages; ``report`` is set once it is finished."""

    __slots__ = ("path", "file", "image", "mirrored", "detect_input", "faces", "context", "prepared",
                 "results", "report")

    def __init__(self, path: str | None, *, file: Stamp | None = None, report: Report | None = None) -> None:
        self.path = path
        self.file = file  # size, mtime and sha256 of the bytes judged, for --resume
        self.image: LoadedImage | None = None
        self.mirrored = False  # screened as its mirror image (see ganscreen._orientation)
        self.detect_input: tuple[np.ndarray, float] | None = None
        self.faces: list[Face] | None = None
        self.context: CheckContext | None = None
        self.prepared: dict[str, object] = {}
        self.results: dict[str, CheckResult] = {}
        self.report = report

    @property
    def pixels(self) -> int:
        return 0 if self.image is None else self.image.width * self.image.height


class Stages:
    """The models and settings the stages share; one per :class:`~ganscreen.pipeline.Screener`.

    ``load``/``read`` and the per-image checks run on worker threads; :meth:`screen` runs a
    whole batch (detection and batched checks included) on the thread that calls it.
    """

    def __init__(self, *, detector: FaceDetector, checks: Sequence[Check], fusion: Fusion,
                 model_info: Mapping[str, str], max_decode_bytes: int, decode_gate: MemoryGate) -> None:
        self.detector = detector
        self.checks = list(checks)
        self.fusion = fusion
        self.model_info = model_info
        self.max_decode_bytes = max_decode_bytes
        self.decode_gate = decode_gate

    # ------------------------------------------------------------------ load

    def read(self, item: InputFile) -> Work:
        """Read ``item`` once by the reading rule (its stamp is that of the bytes judged)."""
        path = str(item.path)
        if item.error is not None:
            return Work(path, report=self.error(path, item.error))
        try:
            read = read_file(item.path, root=item.root)
        except ImageLoadError as exc:
            return Work(path, report=self.error(path, str(exc), file=exc.stamp))
        except Exception as exc:  # never let one file end a batch
            return Work(path, report=self._unexpected(path, "reading", exc))
        return self.load(path, read.data, file=read.stamp)

    def load(self, path: str | None, source: object, *, file: Stamp | None = None) -> Work:
        """Decode ``source`` (path, bytes or PIL image) and shrink it for detection."""
        work = Work(path, file=file)
        try:
            cost = header_cost(source) if isinstance(source, bytes) else 0
            with self.decode_gate.hold(cost):
                image = load_image(source, max_decode_bytes=self.max_decode_bytes)  # type: ignore[arg-type]
            if needs_mirror(image.rgb):  # screen the mirror-canonical orientation
                image = dataclasses.replace(image, rgb=np.ascontiguousarray(image.rgb[:, ::-1]))
                work.mirrored = True
            work.image = image
            work.detect_input = self.detector.prepare(image.rgb)
        except ImageLoadError as exc:
            work.report = self.error(path, str(exc), file=file)
        except Exception as exc:  # never let one file end a batch
            work.report = self._unexpected(path, "reading", exc, file=file)
        return work

    # ------------------------------------------------------------------ screen

    def screen(self, works: list[Work]) -> list[Report]:
        """Finish every work of a batch; one report per work, in order."""
        self._detect(works)
        for work in works:
            self._analyse(work)
        self._run_batched(works)
        for work in works:
            if work.report is None:
                work.report = self._fuse(work)
        return [_finished(w) for w in works]

    def _detect(self, works: list[Work]) -> None:
        """Face detection for every decoded image, one MTCNN batch per image size."""
        todo = [w for w in works if w.report is None and w.detect_input is not None]
        prepared = [w.detect_input for w in todo if w.detect_input is not None]
        found = each_or_alone(self.detector.detect_prepared, prepared, what="face detection")
        for work, faces in zip(todo, found, strict=True):
            work.detect_input = None  # no longer needed: free it
            if isinstance(faces, Exception):
                self._fail(work, faces)
            else:
                work.faces = faces

    def _analyse(self, work: Work) -> None:
        """Align the face and run every per-image check; prepare the batched ones."""
        if work.report is not None or work.faces is None or work.image is None:
            return
        try:
            work.context = check_context(work.image, work.faces)
            for check in self.checks:
                if isinstance(check, BatchedCheck):
                    work.prepared[check.name] = check.prepare(work.context)
                else:
                    work.results[check.name] = check.run(work.context)
        except Exception as exc:  # a check's bug fails its image, not the batch
            log.warning("analysis failed for %s: %s", work.path, one_line(exc), exc_info=True)
            self._fail(work, exc)

    def _run_batched(self, works: list[Work]) -> None:
        for check in self.checks:
            live = [w for w in works if w.report is None and w.context is not None]
            if not isinstance(check, BatchedCheck) or not live:
                continue
            outcome = each_or_alone(check.run_prepared, [w.prepared[check.name] for w in live],
                                    what=f"the {check.name} check")
            for work, result in zip(live, outcome, strict=True):
                if isinstance(result, Exception):
                    self._fail(work, result)
                else:
                    work.results[check.name] = result

    def _fuse(self, work: Work) -> Report:
        assert work.image is not None and work.context is not None
        ctx, image = work.context, work.image
        results = {c.name: work.results[c.name] for c in self.checks}
        decision = self.fusion.decide(results, face_found=ctx.face is not None)
        return Report(
            path=work.path,
            status="ok" if ctx.face is not None else "no_face",
            score=decision.score,
            verdict=decision.verdict,
            reason=decision.reason,
            flags=decision.flags,
            image=image_info(image),
            faces=tuple(mirror_face(f, image.width) for f in ctx.faces) if work.mirrored else ctx.faces,
            checks=results,
            model=self.model_info,
            file=work.file,
        )

    # ------------------------------------------------------------------ errors

    def error(self, path: str | None, message: str, *, file: Stamp | None = None,
              image: ImageInfo | None = None) -> Report:
        """The error record of an input (``message`` becomes one line)."""
        return Report(path=path, status="error", error=one_line(message), image=image,
                      model=self.model_info, file=file)

    def _unexpected(self, path: str | None, doing: str, exc: Exception, *, file: Stamp | None = None) -> Report:
        log.warning("unexpected error while %s %s: %s", doing, path, one_line(exc), exc_info=True)
        return self.error(path, f"unexpected error while {doing}: {one_line(exc)}", file=file)

    def _fail(self, work: Work, exc: Exception) -> None:
        """End ``work`` with the error record of an analysis failure (logged where caught)."""
        image = image_info(work.image) if work.image is not None else None
        work.report = self.error(work.path, f"analysis failed: {one_line(exc)}", file=work.file, image=image)
        work.context = None


def image_info(img: LoadedImage) -> ImageInfo:
    return ImageInfo(width=img.width, height=img.height, format=img.format)


def check_context(img: LoadedImage, faces: list[Face]) -> CheckContext:
    """What every check looks at: the image, its faces, the primary face and its aligned crop."""
    face = primary_face(faces)
    aligned = align_face(img.rgb, face, size=ALIGNED_SIZE) if face is not None else None
    return CheckContext(image=img.rgb, faces=tuple(faces), face=face, aligned=aligned)


def _finished(work: Work) -> Report:
    assert work.report is not None, "every work ends with a report"
    return work.report
