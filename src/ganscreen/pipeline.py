"""The Screener: images → faces → checks → fusion → one Report per input.

``Screener.scan`` streams: it decodes a batch of inputs, detects faces for the whole batch
in one MTCNN pass per image size, aligns each face once for every check, runs the checks
(the CNN over the whole batch in one forward pass) and yields reports in input order, so
memory stays flat however many files are scanned. The stages live in
:mod:`ganscreen._stages`, how batches are spread over threads and memory in
:mod:`ganscreen._scheduling`, and every option in :class:`ganscreen._options.ScanOptions`.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Unpack

from PIL import Image

from ganscreen._assets import bundle_digest, verify_all
from ganscreen._options import OptionFields, ResolvedOptions, ScanOptions
from ganscreen._scheduling import (  # noqa: F401  (re-exported: scripts and tests import them here)
    BASE_MEMORY,
    BATCH_PIXELS,
    CUDA_BATCH_SIZE,
    DEFAULT_BATCH_SIZE,
    MIN_DECODE_BYTES,
    WORKER_MEMORY,
    MemoryGate,
    auto_batch_size,
    auto_workers,
    available_memory,
    chunks,
    decode_limit,
    decode_pool,
    default_memory_budget,
    in_order,
    memory_workers,
    pixel_batches,
    torch_threads,
    usable_cpus,
)
from ganscreen._stages import Stages, Work
from ganscreen._version import __version__
from ganscreen.checks import Check, build_checks
from ganscreen.faces import FaceDetector, resolve_device
from ganscreen.fusion import Fusion
from ganscreen.images import InputFile, LoadedImage, iter_inputs
from ganscreen.report import Report

if TYPE_CHECKING:
    import torch

__all__ = [
    "BASE_MEMORY",
    "BATCH_PIXELS",
    "CUDA_BATCH_SIZE",
    "DEFAULT_BATCH_SIZE",
    "MIN_DECODE_BYTES",
    "ROBUSTNESS_VARIANTS",
    "WORKER_MEMORY",
    "ImageInput",
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
    "with_robustness",
]

_chunks = chunks  # the name scripts/benchmark.py imports

ImageInput = str | os.PathLike[str] | bytes | Image.Image
# Platform-style processing for robustness: (longer side in pixels, JPEG quality).
ROBUSTNESS_VARIANTS = ((512, 85), (384, 75), (256, 60))


def default_checks(device: str | torch.device = "cpu") -> list[Check]:
    """Every registered check (see :func:`ganscreen.checks.registered`), in report order."""
    return build_checks(device)


class Screener:
    """Screens images for GAN-generated faces.

    ``options`` (or its fields as keywords: ``Screener(device="cpu", workers=2)``) says how;
    see :class:`~ganscreen._options.ScanOptions`. The library screens on the calling thread
    and leaves torch's thread count alone unless asked; ``ganscreen scan`` asks for
    automatic workers with one torch thread each. ``checks`` defaults to every shipped check.
    """

    def __init__(self, *, options: ScanOptions | None = None, checks: Sequence[Check] | None = None,
                 fusion: Fusion | None = None, **fields: Unpack[OptionFields]) -> None:
        options = dataclasses.replace(options or ScanOptions(), **fields)
        verify_all()  # every shipped parameter file and MTCNN's weights, before any is used
        self.plan: ResolvedOptions = options.resolve()
        self.options = self.plan.options
        self.device = resolve_device(self.plan.device)
        self.batch_size, self.workers = self.plan.batch_size, self.plan.workers
        self.max_memory, self.max_decode_bytes = self.plan.max_memory, self.plan.max_decode_bytes
        self.detector = FaceDetector(device=self.device)
        self.checks: list[Check] = list(checks) if checks is not None else default_checks(self.device)
        self.fusion = fusion if fusion is not None else Fusion()
        self.model_info = {"version": f"ganscreen-{__version__}/{self.fusion.version}", "sha256": bundle_digest()}
        self.decode_gate = MemoryGate(self.plan.decode_pool)
        self._stages = Stages(detector=self.detector, checks=self.checks, fusion=self.fusion,
                              model_info=self.model_info, max_decode_bytes=self.max_decode_bytes,
                              decode_gate=self.decode_gate)

    @property
    def robustness(self) -> bool:
        return self.options.robustness

    def screen(self, image: ImageInput) -> Report:
        """Screen one image given as a path, encoded bytes or a PIL image."""
        return self.screen_batch([image])[0]

    def screen_batch(self, sources: Sequence[ImageInput], *, paths: Sequence[str | None] | None = None) -> list[Report]:
        """Screen several images in one detection and CNN batch; one report per source, in order.

        ``paths`` names the sources in the reports (defaults to the source itself when it is
        a path). A source that cannot be read gets an error report; nothing raises.
        """
        if paths is None:
            paths = [str(s) if isinstance(s, (str, os.PathLike)) else None for s in sources]
        if len(paths) != len(sources):
            raise ValueError("paths must name every source")
        with torch_threads(self.plan.torch_threads):
            return self._screen([self._stages.load(p, s) for p, s in zip(paths, sources, strict=True)])

    def scan(self, paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str]) -> Iterator[Report]:
        """Yield one report per input file under ``paths`` (files or folders), in order."""
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        yield from self.scan_inputs(iter_inputs(paths, all_files=self.options.all_files,
                                                follow_symlinks=self.options.follow_symlinks))

    def scan_inputs(self, inputs: Iterable[InputFile]) -> Iterator[Report]:
        """Yield one report per input, in order, streaming.

        Inputs are cut into batches of ``batch_size``, screened ``workers`` at a time (see
        :func:`~ganscreen._scheduling.in_order`); a batch whose decoded images grow past
        :data:`~ganscreen._scheduling.BATCH_PIXELS` is screened in parts.
        """
        with torch_threads(self.plan.torch_threads):
            yield from in_order(chunks(inputs, self.batch_size), self._screen_inputs, workers=self.workers)

    def _screen_inputs(self, batch: list[InputFile]) -> list[Report]:
        groups = pixel_batches(batch, self._stages.read, lambda work: work.pixels)
        return [report for works in groups for report in self._screen(works)]

    def _screen(self, works: list[Work]) -> list[Report]:
        reports = self._stages.screen(works)
        if not self.options.robustness:
            return reports
        return with_robustness(self._without_robustness(), reports, [w.image for w in works])

    def _without_robustness(self) -> Screener:
        """This screener (the same models) with robustness off, to score the variants. It is
        called inside this screener's own calls, where torch's threads are already as asked:
        setting them again from a worker thread would touch a process-wide count mid-scan."""
        plain = copy.copy(self)
        plain.options = self.options.replace(robustness=False)
        plain.plan = dataclasses.replace(self.plan, options=plain.options, torch_threads=None)
        return plain


def with_robustness(screener: Screener, reports: list[Report], images: Sequence[LoadedImage | None]) -> list[Report]:
    """``reports`` with their ``robustness``: every judged image is re-screened (in one batch,
    through ``screener.screen_batch``) as each :data:`ROBUSTNESS_VARIANTS` platform copy, and
    marked unstable when a copy's verdict differs."""
    judged = [i for i, (r, img) in enumerate(zip(reports, images, strict=True))
              if r.status == "ok" and r.score is not None and img is not None]
    copies = [platform_copy(images[i].pil(), side, quality)  # type: ignore[union-attr]
              for i in judged for side, quality in ROBUSTNESS_VARIANTS]
    scored = screener.screen_batch(copies)
    out = list(reports)
    n = len(ROBUSTNESS_VARIANTS)
    for k, i in enumerate(judged):
        entries = [{"longer_side": side, "jpeg_quality": quality,
                    "score": None if v.score is None else round(float(v.score), 5),
                    "verdict": v.verdict if v.status == "ok" else v.status}
                   for (side, quality), v in zip(ROBUSTNESS_VARIANTS, scored[k * n:(k + 1) * n], strict=True)]
        out[i] = dataclasses.replace(reports[i], robustness={
            "unstable": any(e["verdict"] != reports[i].verdict for e in entries), "variants": entries})
    return out


def platform_copy(image: Image.Image, longer_side: int, quality: int) -> bytes:
    """The photo as a platform would serve it: shrunk to ``longer_side`` (never enlarged)
    and re-encoded as JPEG."""
    copy = image.convert("RGB")
    if max(copy.size) > longer_side:
        copy.thumbnail((longer_side, longer_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    copy.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def screen(image: ImageInput, *, device: str = "auto") -> Report:
    """Screen one image with a fresh :class:`Screener` (convenient, not for batches)."""
    return Screener(device=device).screen(image)
