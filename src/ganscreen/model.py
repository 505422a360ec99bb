"""The CNN's architecture, input preparation and weight loading.

``FaceNet`` is a small residual network (about 1.2 M parameters, about 0.5 GFLOP per crop)
designed for GAN traces: the stem runs at full input resolution with no pooling, so the
high frequencies where upsampling leaves its marks are seen before any downsampling. Its input is a face-centred, landmark-aligned crop (:func:`cnn_crop`); the
same function prepares training and inference inputs, so they cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from ganscreen.faces import CANONICAL_LANDMARKS, Face, similarity_transform

__all__ = [
    "BACKDROP_FILL",
    "BACKDROP_HEAD",
    "BACKDROP_MIN_VISIBLE",
    "BACKDROP_SHOULDERS",
    "INPUT_SIZE",
    "MAX_ZOOM",
    "MEAN",
    "STD",
    "ZOOM",
    "FaceNet",
    "ModelConfig",
    "PatchNet",
    "backdrop_crop",
    "backdrop_mask",
    "build_model",
    "canonical_face",
    "cnn_crop",
    "count_parameters",
    "load_model",
    "save_model",
    "to_tensor",
    "widen_stem",
]

INPUT_SIZE = 128
# The crop is the canonical (FFHQ-like) layout zoomed in by this factor about its centre:
# eyes ~0.33 of the side apart, forehead to mouth, little background.
ZOOM = 1.3
MAX_ZOOM = 2.2  # tightest crop allowed to keep the crop inside the photo
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)
# The backdrop view (``ModelConfig.view == "backdrop"``, :func:`backdrop_crop`): in the
# canonical layout at zoom 1 (FFHQ framing, eyes at y 0.471, mouth at 0.730), the head and
# hair lie inside this ellipse (centre x, centre y, semi-axis x, semi-axis y, as fractions of
# the side) and the shoulders below this line; both scale with the crop's zoom about its
# centre, so what is hidden follows the face, not the framing. Hidden pixels get one grey.
BACKDROP_HEAD = (0.5, 0.44, 0.33, 0.44)
BACKDROP_SHOULDERS = 0.80
BACKDROP_FILL = 128
BACKDROP_MIN_VISIBLE = 0.15  # share of the crop that must be visible backdrop to judge it


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """What a set of weights expects; stored beside them in ``cnn.json``."""

    widths: tuple[int, ...] = (16, 32, 64, 128, 256)
    input_size: int = INPUT_SIZE
    zoom: float = ZOOM
    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD
    arch: str = "facenet"  # "facenet" (whole-crop residual CNN) or "patchnet" (patch logits averaged)
    # Inference-time canonical copy (:func:`canonical_face`): the face shrunk so its eyes are
    # at most this many pixels apart, then re-encoded as JPEG at this quality. ``None``: off.
    canonical_eye_px: float | None = None
    canonical_jpeg: int | None = None
    # FaceNet's stem stride: 1 (a 3x3 conv at the crop's resolution) or 2 (a 6x6 stride-2
    # conv: twice the input pixels for the same cost after the stem; see FaceNet).
    stem_stride: int = 1
    # What the network sees: "face" (:func:`cnn_crop`) or "backdrop" (:func:`backdrop_crop`:
    # the FFHQ-framed crop with head, hair, shoulders and everything outside the photo hidden).
    view: str = "face"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        eye, quality = data.get("canonical_eye_px"), data.get("canonical_jpeg")
        return cls(widths=tuple(data["widths"]), input_size=int(data["input_size"]),
                   zoom=float(data["zoom"]), mean=tuple(data["mean"]), std=tuple(data["std"]),
                   arch=str(data.get("arch", "facenet")),
                   canonical_eye_px=None if eye is None else float(eye),
                   canonical_jpeg=None if quality is None else int(quality),
                   stem_stride=int(data.get("stem_stride", 1)), view=str(data.get("view", "face")))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"arch": self.arch, "widths": list(self.widths), "input_size": self.input_size,
                               "zoom": self.zoom, "mean": list(self.mean), "std": list(self.std)}
        if self.canonical_eye_px is not None:
            out["canonical_eye_px"] = self.canonical_eye_px
        if self.canonical_jpeg is not None:
            out["canonical_jpeg"] = self.canonical_jpeg
        if self.stem_stride != 1:
            out["stem_stride"] = self.stem_stride
        if self.view != "face":
            out["view"] = self.view
        return out


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (nn.Identity() if stride == 1 and cin == cout else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.act(y + self.skip(x))


class FaceNet(nn.Module):
    """Residual CNN: full-resolution stem, four stride-2 stages, global pooling, one logit.

    With ``stem_stride`` 2 the stem is a 6x6 conv at stride 2 and padding 2: each output sees
    the same 3x3 neighbourhood of 2x2 pixel blocks as a 3x3 stem on the half-size crop, but
    with every input pixel's own weight, so traces finer than the half-size crop can hold
    reach the network (:func:`widen_stem` maps a stride-1 stem onto it exactly).
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        w = self.config.widths
        s = self.config.stem_stride
        if s not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {s}")
        conv = nn.Conv2d(3, w[0], 3, 1, 1, bias=False) if s == 1 else nn.Conv2d(3, w[0], 6, 2, 2, bias=False)
        self.stem = nn.Sequential(conv, nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True))
        self.stages = nn.Sequential(*[_Block(w[i], w[i + 1], 2) for i in range(len(w) - 1)])
        self.head = nn.Linear(w[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)).squeeze(1)


class PatchNet(nn.Module):
    """Patch classifier with a small receptive field (about 40 px of the crop): a logit per
    location, averaged over the crop, so every patch of face, hair and background votes on
    its own (Chai et al., ECCV 2020: GAN traces are local, the face's identity is not)."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig(arch="patchnet", widths=(32, 64, 128))
        w = self.config.widths
        self.stem = nn.Sequential(nn.Conv2d(3, w[0], 3, 1, 1, bias=False), nn.BatchNorm2d(w[0]),
                                  nn.ReLU(inplace=True))
        self.stages = nn.Sequential(*[_Block(w[i], w[i + 1], 2) for i in range(len(w) - 1)])
        self.head = nn.Conv2d(w[-1], 1, 1)

    def logit_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit_map(x).mean(dim=(1, 2))


def widen_stem(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Stride-1 FaceNet weights as stride-2 ones that compute the same thing on a crop of
    twice the size as the stride-1 network on its 2x2 box-averaged copy: each 3x3 stem tap
    becomes a 2x2 block of quarter weights (a warm start for ``stem_stride`` 2)."""
    out = dict(state)
    weight = state["stem.0.weight"]
    if weight.shape[-1] != 3:
        raise ValueError(f"expected a 3x3 stem, got {tuple(weight.shape)}")
    out["stem.0.weight"] = weight.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3) / 4
    return out


def build_model(config: ModelConfig) -> nn.Module:
    if config.arch == "patchnet":
        return PatchNet(config)
    if config.arch == "facenet":
        return FaceNet(config)
    raise ValueError(f"unknown architecture {config.arch!r}")


def cnn_crop(image: np.ndarray, face: Face, *, size: int = INPUT_SIZE, zoom: float = ZOOM,
             landmarks: np.ndarray | None = None) -> np.ndarray:
    """The face-centred crop the CNN sees (uint8, size x size x 3).

    When the crop would run past the photo's border it is zoomed in (up to ``MAX_ZOOM``)
    until it fits: a filled border would tell tight real crops from full GAN portraits.
    Whatever still lies outside repeats the border, for every class alike.
    """
    points = face.landmarks if landmarks is None else landmarks
    height, width = image.shape[:2]
    matrix = _crop_matrix(points, size, zoom)
    if not _inside(matrix, size, width, height):
        lo, hi = zoom, max(zoom, MAX_ZOOM)
        if _inside(_crop_matrix(points, size, hi), size, width, height):
            for _ in range(12):  # bisect the smallest zoom that fits
                mid = (lo + hi) / 2
                lo, hi = (lo, mid) if _inside(_crop_matrix(points, size, mid), size, width, height) else (mid, hi)
        matrix = _crop_matrix(points, size, hi)
    return _warp(image, matrix, size)


def _warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """``image`` through ``matrix`` onto a ``size`` square; past the border it repeats."""
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    source = image
    if scale < 0.5:  # area-average before a large reduction, as in faces.align_face
        factor = min(1.0, 1.5 * scale)
        source = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        matrix = matrix.copy()
        matrix[:, :2] /= factor
    return cv2.warpAffine(source, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def backdrop_mask(size: int, zoom: float) -> np.ndarray:
    """The part of a ``size`` crop at ``zoom`` that is backdrop (True): outside the head
    ellipse and above the shoulder line of :data:`BACKDROP_HEAD`, scaled about the centre."""
    cx, cy, ax, ay = BACKDROP_HEAD
    grid = (np.arange(size, dtype=np.float64) + 0.5) / size
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    # Crop coordinates u map to layout coordinates (u - 0.5) / zoom + 0.5.
    lx, ly = (xx - 0.5) / zoom + 0.5, (yy - 0.5) / zoom + 0.5
    head = ((lx - cx) / ax) ** 2 + ((ly - cy) / ay) ** 2 <= 1.0
    return ~head & (ly < BACKDROP_SHOULDERS)


def backdrop_crop(image: np.ndarray, landmarks: np.ndarray, *, size: int = INPUT_SIZE,
                  zoom: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The backdrop the backdrop network sees: the FFHQ-framed crop at ``zoom`` (never
    zoomed in to fit), with :func:`backdrop_mask`'s head and shoulders and every pixel
    outside the photo set to :data:`BACKDROP_FILL`. Returns the uint8 crop and its visible
    mask (True = backdrop)."""
    points = np.asarray(landmarks, np.float64)
    height, width = image.shape[:2]
    matrix = _crop_matrix(points, size, zoom)
    crop = _warp(image, matrix, size)
    inside = np.full((height, width), 255, np.uint8)
    inside_crop = cv2.warpAffine(inside, matrix, (size, size), flags=cv2.INTER_NEAREST,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
    visible = backdrop_mask(size, zoom) & inside_crop
    crop = crop.copy()
    crop[~visible] = BACKDROP_FILL
    return crop, visible


def canonical_face(image: np.ndarray, landmarks: np.ndarray, config: ModelConfig,
                   *, zoom: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The part of the photo the CNN's crop can reach, as every photo of the face would look
    after a platform's processing: shrunk so the eyes are at most ``canonical_eye_px`` apart
    (area averaging; never enlarged), then re-encoded as JPEG at ``canonical_jpeg``.

    Every face then reaches the network at no more than a profile-photo copy's resolution
    and at one compression level, whatever file it came from (the model card says what that
    did to the shipped weights' held-out scores, and why they do not use it). The region
    holds the crop at ``zoom`` (default: the model's; wider for training's framing jitter),
    clamped inside the photo, so :func:`cnn_crop` at that zoom or tighter finds the photo's
    borders where they were. Returns the region and the landmarks in it; with both settings
    ``None``, the photo and landmarks unchanged.
    """
    points = np.asarray(landmarks, np.float64)
    if config.canonical_eye_px is None and config.canonical_jpeg is None:
        return image, points
    height, width = image.shape[:2]
    corners = _source_corners(_crop_matrix(points, config.input_size, zoom or config.zoom), config.input_size)
    # The region starts on the photo's 8-px JPEG block grid: a file that is already a JPEG at
    # this size is then re-encoded block for block, as a platform's second pass would.
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - 2, 0, width - 1)) // 8 * 8
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - 2, 0, height - 1)) // 8 * 8
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + 2, x0 + 1, width))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + 2, y0 + 1, height))
    region = image[y0:y1, x0:x1]
    points = points - np.array([x0, y0], np.float64)
    eye = float(np.linalg.norm(points[1] - points[0]))
    if config.canonical_eye_px is not None and eye > config.canonical_eye_px:
        factor = config.canonical_eye_px / eye
        size = (max(8, round(region.shape[1] * factor)), max(8, round(region.shape[0] * factor)))
        points = points * np.array([size[0] / region.shape[1], size[1] / region.shape[0]])
        region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
    if config.canonical_jpeg is not None:
        ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(region[:, :, ::-1]),
                                   [cv2.IMWRITE_JPEG_QUALITY, config.canonical_jpeg])
        if not ok:
            raise ValueError("JPEG encoding of the face region failed")
        decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
        if decoded is None:
            raise ValueError("JPEG decoding of the face region failed")
        region = decoded[:, :, ::-1]
    return np.ascontiguousarray(region), points


def _crop_matrix(points: np.ndarray, size: int, zoom: float) -> np.ndarray:
    target = ((CANONICAL_LANDMARKS - 0.5) * zoom + 0.5) * size
    return similarity_transform(points, target)


def _source_corners(matrix: np.ndarray, size: int) -> np.ndarray:
    """The output square's four corners mapped back into the source photo, (4, 2)."""
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64)
    return corners @ inverse.T


def _inside(matrix: np.ndarray, size: int, width: int, height: int) -> bool:
    """Whether the output square, mapped back to the source, lies inside the photo."""
    src = _source_corners(matrix, size)
    return bool(np.all(src[:, 0] >= -1) and np.all(src[:, 0] <= width + 1)
                and np.all(src[:, 1] >= -1) and np.all(src[:, 1] <= height + 1))


def to_tensor(crops: list[np.ndarray] | np.ndarray, config: ModelConfig) -> torch.Tensor:
    """uint8 N x H x W x 3 crops → normalised float N x 3 x H x W."""
    batch = torch.from_numpy(np.ascontiguousarray(np.stack(list(crops)))).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(config.mean).view(1, 3, 1, 1)
    std = torch.tensor(config.std).view(1, 3, 1, 1)
    return (batch - mean) / std


def save_model(model: FaceNet | PatchNet, weights: Path, config_path: Path, extra: dict[str, Any] | None = None) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights))
    config_path.write_text(json.dumps({**model.config.to_dict(), **(extra or {})}, indent=2) + "\n")


def load_model(weights: Path, config: ModelConfig, *, device: torch.device | str = "cpu",
               transform: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None) -> nn.Module:
    """Build the network and load safetensors weights (no pickle is ever executed).
    ``transform`` maps the stored tensors before the strict load (e.g. :func:`widen_stem`,
    to fine-tune a stride-2 network from stride-1 weights)."""
    from safetensors.torch import load_file

    state = load_file(str(weights), device="cpu")
    model = build_model(config)
    model.load_state_dict(state if transform is None else transform(state), strict=True)
    return model.to(device).eval()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
