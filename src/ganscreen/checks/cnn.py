"""The CNN check: a small classifier trained by ``scripts/train_cnn.py`` on face crops.

It sees what the heuristics cannot: upsampling traces, skin and hair texture. Weights ship
as safetensors in the package (``models/cnn.safetensors``, configuration in ``cnn.json``),
verified by SHA-256 before loading. Each face is scored as the mean of the crop and its
mirror image; ``run_batch`` scores many faces in one forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ganscreen._assets import asset_path, load_json
from ganscreen.checks import CheckContext, CheckResult, not_judged
from ganscreen.faces import resolve_device
from ganscreen.model import ModelConfig, cnn_crop, load_model, to_tensor

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
        results: list[CheckResult | None] = [None] * len(contexts)
        crops, where = [], []
        for i, ctx in enumerate(contexts):
            if ctx.face is None:
                results[i] = not_judged("no face")
                continue
            crops.append(cnn_crop(ctx.image, ctx.face, size=self.config.input_size, zoom=self.config.zoom))
            where.append(i)
        if crops:
            for i, p in zip(where, self.probabilities(crops), strict=True):
                flags = (FLAG,) if p >= self.flag_threshold else ()
                results[i] = CheckResult(score=p, measures={}, flags=flags)
        return [r for r in results if r is not None]

    @torch.inference_mode()
    def probabilities(self, crops: list) -> list[float]:  # noqa: ANN001
        x = to_tensor(crops, self.config).to(self.device)
        logits = (self.model(x) + self.model(torch.flip(x, dims=[3]))) / 2
        return [float(p) for p in torch.sigmoid(logits).cpu()]
