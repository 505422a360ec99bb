"""The CNN check: a small classifier trained by ``scripts/train_cnn.py`` on face crops.

It sees what the heuristics cannot: upsampling traces, skin and hair texture. Weights ship
as safetensors in the package (``models/cnn.safetensors``, configuration in ``cnn.json``),
verified by SHA-256 before loading. When ``cnn.json`` names a canonical copy
(:func:`ganscreen.model.canonical_face`: eyes at most ``canonical_eye_px`` apart, JPEG at
``canonical_jpeg``), the crop is taken from it, so every face is judged at a profile-photo
copy's resolution and compression; the shipped model names none. Each face is scored as the
mean of the crop and its mirror image; ``run_batch`` scores many faces in one forward pass,
and ``prepare`` / ``run_prepared`` split that into the per-image crop and the batched model
call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ganscreen._assets import asset_path, load_json
from ganscreen.checks import CheckContext, CheckResult, CheckSpec, Drawing, Flag, Presentation, not_judged
from ganscreen.checks._drawing import diverging, side_by_side, zoom
from ganscreen.faces import resolve_device
from ganscreen.model import ModelConfig, canonical_face, cnn_crop, load_model, to_tensor

__all__ = [
    "CONFIG",
    "DRAWING_ZOOM",
    "FLAG",
    "OCCLUSION_GREY",
    "OCCLUSION_GRID",
    "OCCLUSION_SCALE",
    "SPEC",
    "WEIGHTS",
    "CnnCheck",
]

FLAG = "cnn_artifacts"
WEIGHTS = "cnn.safetensors"
CONFIG = "cnn.json"
OCCLUSION_GRID = 8  # the crop is hidden patch by patch on a GRID x GRID raster
OCCLUSION_GREY = 128
OCCLUSION_SCALE = 0.05  # score change that gets full colour when all changes are smaller
DRAWING_ZOOM = 2


class CnnCheck:
    name = "cnn"

    def __init__(self, *, device: str | torch.device = "cpu", params: dict[str, Any] | None = None) -> None:
        meta = load_json(CONFIG)
        self.config = ModelConfig.from_dict(meta)
        self.device = resolve_device(device)
        self.model = load_model(asset_path(WEIGHTS), self.config, device=self.device)
        params = params if params is not None else load_json("checks.json").get("cnn", {})
        self.flag_threshold = float(params.get("flag_threshold", 0.5))

    def run(self, ctx: CheckContext) -> CheckResult:
        return self.run_batch([ctx])[0]

    def run_batch(self, contexts: Sequence[CheckContext]) -> list[CheckResult]:
        return self.run_prepared([self.prepare(ctx) for ctx in contexts])

    def prepare(self, ctx: CheckContext) -> np.ndarray | CheckResult:
        """The model's input crop for one face (thread-safe, no torch), or the result when
        there is nothing to score."""
        if ctx.face is None:
            return not_judged("no face")
        region, points = canonical_face(ctx.image, ctx.face.landmarks, self.config)
        return cnn_crop(region, ctx.face, size=self.config.input_size, zoom=self.config.zoom, landmarks=points)

    def run_prepared(self, prepared: Sequence[np.ndarray | CheckResult]) -> list[CheckResult]:
        """Score the crops from :meth:`prepare` in one forward pass."""
        results: list[CheckResult | None] = [p if isinstance(p, CheckResult) else None for p in prepared]
        where = [i for i, r in enumerate(results) if r is None]
        if where:
            crops = [p for p in prepared if not isinstance(p, CheckResult)]  # in the order of ``where``
            probabilities = self.probabilities(crops)
            for i, p in zip(where, probabilities, strict=True):
                results[i] = CheckResult(score=p, measures={}, flags=(FLAG,) if p >= self.flag_threshold else ())
        return [r for r in results if r is not None]

    @torch.inference_mode()
    def probabilities(self, crops: Sequence[np.ndarray]) -> list[float]:
        """Mean probability of each crop and its mirror image (one forward pass for both)."""
        x = to_tensor(list(crops), self.config).to(self.device)
        logits = self.model(torch.cat([x, torch.flip(x, dims=[3])]))
        mean = (logits[: len(crops)] + logits[len(crops):]) / 2
        return [float(p) for p in torch.sigmoid(mean).cpu()]

    def draw(self, ctx: CheckContext) -> Drawing:
        """An occlusion map of the crop :meth:`prepare` makes: a grey patch slides over it
        (``OCCLUSION_GRID`` x ``OCCLUSION_GRID`` positions, one batch) and each patch is
        coloured by how much hiding it changes the score.

        Red marks patches whose hiding lowers the score (they pushed it towards "GAN"), blue
        patches whose hiding raises it. An explanation aid, not proof: the network may react
        to the grey patch itself.
        """
        crop = self.prepare(ctx)
        if isinstance(crop, CheckResult):
            raise ValueError(crop.reason or "nothing to draw")
        grid = OCCLUSION_GRID
        size = crop.shape[0]
        edges = np.linspace(0, size, grid + 1).round().astype(int)
        batch = [crop]
        for i in range(grid):
            for j in range(grid):
                hidden = crop.copy()
                hidden[edges[i]:edges[i + 1], edges[j]:edges[j + 1]] = OCCLUSION_GREY
                batch.append(hidden)
        scores = np.asarray(self.probabilities(batch), np.float64)
        base = float(scores[0])
        drops = (base - scores[1:]).reshape(grid, grid)
        limit = max(float(np.abs(drops).max()), OCCLUSION_SCALE)
        cells = np.zeros((size, size), np.float32)
        for i in range(grid):
            for j in range(grid):
                cells[edges[i]:edges[i + 1], edges[j]:edges[j + 1]] = drops[i, j] / limit
        heat = diverging(cells)
        weight = np.abs(cells)[:, :, None] * 0.7
        overlay = (crop.astype(np.float32) * (1 - weight) + heat.astype(np.float32) * weight).astype(np.uint8)
        for edge in edges[1:-1]:  # faint grid lines show the patch raster
            overlay[edge, :] = overlay[edge, :] // 2 + 64
            overlay[:, edge] = overlay[:, edge] // 2 + 64
        image = side_by_side([zoom(crop, DRAWING_ZOOM), zoom(overlay, DRAWING_ZOOM)])
        return Drawing(image=image, measures=(
            ("CNN score on the redrawn crop", f"{base:.3f}"),
            ("largest drop when a patch is hidden", f"{float(drops.max()):.3f}"),
            ("largest rise when a patch is hidden", f"{float(-drops.min()):.3f}"),
        ))


SPEC = CheckSpec(
    name="cnn",
    build=lambda device="cpu": CnnCheck(device=device),
    flags=(Flag(
        FLAG,
        description="the face classifier finds GAN texture; fires on up to 14.9 % of ordinary real photos "
                    "(sharp studio portraits; weak evidence on its own)",
        words="GAN texture",
        campaign="show GAN texture to the CNN",
    ),),
    csv_columns=("score",),
    presentation=Presentation(
        title="CNN: which parts of the face drive its score?",
        legend="The CNN's face crop and an occlusion map: each of the 8 x 8 patches was hidden in turn. "
               "Red: hiding it lowers the CNN score (it pushed towards GAN); blue: hiding it raises it.",
        file="cnn_occlusion.png",
        file_legend="CNN face crop | occlusion map (red: hiding this patch lowers the CNN score; blue: "
                    "raises it). An explanation aid, not proof.",
        embed_side=384,
        aid=True,
    ),
)
