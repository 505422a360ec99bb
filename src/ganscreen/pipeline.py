"""The Screener: images → faces → checks → fusion → one Report per input.

``Screener.scan`` streams: it decodes a batch of inputs, detects faces for the whole batch
in one MTCNN pass per image size, runs the checks and yields reports in input order, so
memory stays flat however many files are scanned.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganscreen._assets import bundle_digest
from ganscreen._version import __version__
from ganscreen.checks import Check, CheckContext, CheckResult
from ganscreen.checks.backdrop import BackdropCheck
from ganscreen.checks.cnn import CnnCheck
from ganscreen.checks.geometry import GeometryCheck
from ganscreen.checks.glasses import ALIGNED_SIZE, GlassesCheck
from ganscreen.faces import Face, FaceDetector, align_face, primary_face, resolve_device
from ganscreen.fusion import Fusion
from ganscreen.images import ImageLoadError, InputFile, LoadedImage, file_stamp, iter_inputs, load_image
from ganscreen.report import ImageInfo, Report

DEFAULT_BATCH_SIZE = 8


def default_checks(device: str | torch.device = "cpu") -> list[Check]:
    """Every shipped check, in report order."""
    return [GeometryCheck(), GlassesCheck(), BackdropCheck(), CnnCheck(device=device)]


class Screener:
    """Screens images for GAN-generated faces.

    Parameters
    ----------
    device:
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or a ``torch.device``.
    batch_size:
        Images decoded and sent through face detection together.
    checks:
        The checks to run; defaults to every shipped check.
    robustness:
        Also re-score every judged face after platform-style processing (downscale, JPEG;
        see :data:`ROBUSTNESS_VARIANTS`) and mark the report unstable when a verdict flips.
    """

    def __init__(self, *, device: str | torch.device = "auto", batch_size: int = DEFAULT_BATCH_SIZE,
                 checks: Sequence[Check] | None = None, fusion: Fusion | None = None,
                 robustness: bool = False) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.device = resolve_device(device)
        self.batch_size = batch_size
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
        batch: list[InputFile] = []
        for item in inputs:
            batch.append(item)
            if len(batch) >= self.batch_size:
                yield from self._screen_inputs(batch)
                batch = []
        if batch:
            yield from self._screen_inputs(batch)

    # ------------------------------------------------------------------ internals

    def _screen_inputs(self, batch: list[InputFile]) -> list[Report]:
        reports: list[Report | None] = [None] * len(batch)
        todo: list[tuple[int, str, Path]] = []
        for i, item in enumerate(batch):
            if item.error is not None:
                reports[i] = self._error(str(item.path), item.error, file_stamp(item.path))
            else:
                todo.append((i, str(item.path), item.path))
        screened = self._screen_batch([(p, src) for _, p, src in todo])
        for (i, _, src), report in zip(todo, screened, strict=True):
            report.file = file_stamp(src)
            reports[i] = report
        return [r for r in reports if r is not None]

    def _screen_batch(self, items: list[tuple[str | None, object]]) -> list[Report]:
        decoded: dict[int, LoadedImage] = {}
        reports = self._screen_plain(items, decoded=decoded if self.robustness else None)
        if self.robustness:
            self._add_robustness(decoded, reports)
        return reports

    def _add_robustness(self, decoded: dict[int, LoadedImage], reports: list[Report]) -> None:
        """Re-screen platform-processed copies of every judged image, in one batch."""
        variants: list[tuple[int, int, int, bytes]] = []
        for i, report in enumerate(reports):
            if report.status != "ok" or report.score is None:
                continue
            image = decoded[i].pil()
            variants += [(i, side, quality, platform_copy(image, side, quality))
                         for side, quality in ROBUSTNESS_VARIANTS]
        scored = self._screen_plain([(None, data) for _, _, _, data in variants])
        by_image: dict[int, list[dict[str, object]]] = {}
        for (i, side, quality, _), variant in zip(variants, scored, strict=True):
            by_image.setdefault(i, []).append({
                "longer_side": side, "jpeg_quality": quality,
                "score": None if variant.score is None else round(float(variant.score), 5),
                "verdict": variant.verdict if variant.status == "ok" else variant.status,
            })
        for i, entries in by_image.items():
            reports[i].robustness = {
                "unstable": any(e["verdict"] != reports[i].verdict for e in entries),
                "variants": entries,
            }

    def _screen_plain(self, items: list[tuple[str | None, object]], *,
                      decoded: dict[int, LoadedImage] | None = None) -> list[Report]:
        """Screen items without robustness variants; ``decoded`` collects the images."""
        reports: list[Report | None] = [None] * len(items)
        loaded: list[tuple[int, LoadedImage]] = []
        for i, (path, source) in enumerate(items):
            try:
                loaded.append((i, load_image(source)))  # type: ignore[arg-type]
                if decoded is not None:
                    decoded[i] = loaded[-1][1]
            except ImageLoadError as exc:
                reports[i] = self._error(path, str(exc))
            except Exception as exc:  # never let one file end a batch
                reports[i] = self._error(path, f"unexpected error while reading: {_one_line(exc)}")
        if loaded:
            try:
                all_faces = self.detector.detect_batch([img.rgb for _, img in loaded])
            except Exception:
                all_faces = [self._detect_one(img.rgb) for _, img in loaded]
            contexts: list[tuple[int, LoadedImage, CheckContext]] = []
            for (i, img), faces in zip(loaded, all_faces, strict=True):
                try:
                    if isinstance(faces, Exception):
                        raise faces
                    contexts.append((i, img, self._context(img, faces)))
                except Exception as exc:
                    reports[i] = self._error(items[i][0], f"analysis failed: {_one_line(exc)}", image=_info(img))
            results = self._run_checks([ctx for _, _, ctx in contexts])
            for (i, img, ctx), outcome in zip(contexts, results, strict=True):
                if isinstance(outcome, Exception):
                    reports[i] = self._error(items[i][0], f"analysis failed: {_one_line(outcome)}",
                                             image=_info(img))
                else:
                    reports[i] = self._report(items[i][0], img, ctx, outcome)
        return [r for r in reports if r is not None]

    def _detect_one(self, rgb: np.ndarray) -> list[Face] | Exception:
        try:
            return self.detector.detect(rgb)
        except Exception as exc:
            return exc

    @staticmethod
    def _context(img: LoadedImage, faces: list[Face]) -> CheckContext:
        face = primary_face(faces)
        aligned = align_face(img.rgb, face, size=ALIGNED_SIZE) if face is not None else None
        return CheckContext(image=img.rgb, faces=tuple(faces), face=face, aligned=aligned)

    def _run_checks(self, contexts: list[CheckContext]) -> list[dict[str, CheckResult] | Exception]:
        """Every check on every context; a check with ``run_batch`` sees them all at once.

        A failure is isolated to the image that caused it: a failed batch is retried one
        image at a time.
        """
        out: list[dict[str, CheckResult] | Exception] = [{} for _ in contexts]
        for check in self.checks:
            batched = getattr(check, "run_batch", None)
            results: list[CheckResult | Exception] | None = None
            if batched is not None and len(contexts) > 1:
                try:
                    results = list(batched(contexts))
                except Exception:
                    results = None
            if results is None:
                results = [self._run_one(check, ctx) for ctx in contexts]
            for j, result in enumerate(results):
                current = out[j]
                if isinstance(current, Exception):
                    continue
                if isinstance(result, Exception):
                    out[j] = result
                else:
                    current[check.name] = result
        return out

    @staticmethod
    def _run_one(check: Check, ctx: CheckContext) -> CheckResult | Exception:
        try:
            return check.run(ctx)
        except Exception as exc:
            return exc

    def _report(self, path: str | None, img: LoadedImage, ctx: CheckContext,
                results: dict[str, CheckResult]) -> Report:
        decision = self.fusion.decide(results)
        verdict = decision.verdict
        if verdict is None and ctx.face is not None:
            verdict = "uncertain"  # a face no check could judge is not cleared
        return Report(
            path=path,
            status="ok" if ctx.face is not None else "no_face",
            score=decision.score,
            verdict=verdict,
            flags=decision.flags,
            image=_info(img),
            faces=ctx.faces,
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


def _info(img: LoadedImage) -> ImageInfo:
    return ImageInfo(width=img.width, height=img.height, format=img.format)


def _one_line(message: object) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= 300 else text[:297] + "..."


def screen(image: str | os.PathLike[str] | bytes | Image.Image, *, device: str = "auto") -> Report:
    """Screen one image with a fresh :class:`Screener` (convenient, not for batches)."""
    return Screener(device=device).screen(image)
