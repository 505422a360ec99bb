"""The CNN check: a small classifier trained by ``scripts/train_cnn.py`` on face crops.

It sees what the heuristics cannot: upsampling traces, skin and hair texture. Weights ship
as safetensors in the package (``models/cnn.safetensors``, configuration in ``cnn.json``),
verified by SHA-256 before loading. Each face is scored as the mean of the crop and its
mirror image; ``run_batch`` scores many faces in one forward pass, and ``prepare`` /
``run_prepared`` split that into the per-image crop and the batched model call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ganscreen._assets import asset_path, load_json
from ganscreen.checks import CheckContext, CheckResult, not_judged
from ganscreen.faces import resolve_device
from ganscreen.model import ModelConfig, cnn_crop, load_model, to_tensor

__all__ = [
    "CONFIG",
    "FLAG",
    "WEIGHTS",
    "CnnCheck",
]

FLAG = "cnn_artifacts"
WEIGHTS = "cnn.safetensors"
CONFIG = "cnn.json"


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
        return cnn_crop(ctx.image, ctx.face, size=self.config.input_size, zoom=self.config.zoom)

    def run_prepared(self, prepared: Sequence[np.ndarray | CheckResult]) -> list[CheckResult]:
        """Score the crops from :meth:`prepare` in one forward pass."""
        results: list[CheckResult | None] = [p if isinstance(p, CheckResult) else None for p in prepared]
        where = [i for i, r in enumerate(results) if r is None]
        if where:
            probabilities = self.probabilities([prepared[i] for i in where])
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
