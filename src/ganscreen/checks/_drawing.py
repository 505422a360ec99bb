"""Drawing helpers the checks share for their evidence images (RGB ``uint8`` arrays)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["BOX", "DETECTED", "LINK", "PANEL_GAP", "TEMPLATE", "colormap", "diverging", "point",
           "side_by_side", "zoom"]

# Colours (RGB) shared by the drawings and the legends in the HTML report.
DETECTED = (0, 215, 255)  # detected landmarks: cyan dots
TEMPLATE = (255, 40, 200)  # StyleGAN template points and their on-template zone: magenta
LINK = (255, 220, 0)  # detected eye to template eye: yellow
BOX = (255, 255, 255)  # face box: white
PANEL_GAP = 6


def colormap(values: np.ndarray, cmap: int) -> np.ndarray:
    """Values in [0, 1] to RGB through an OpenCV colour map."""
    index = np.clip(np.rint(values * 255), 0, 255).astype(np.uint8)
    rgb: np.ndarray = cv2.cvtColor(cv2.applyColorMap(index, cmap), cv2.COLOR_BGR2RGB)
    return rgb


def diverging(values: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] to blue (negative), white (0) and red (positive)."""
    v = np.clip(values, -1, 1)[..., None]
    white = np.array([255, 255, 255], np.float32)
    red = np.array([220, 30, 30], np.float32)
    blue = np.array([30, 80, 230], np.float32)
    out = np.where(v >= 0, white + (red - white) * v, white + (blue - white) * -v)
    rgb: np.ndarray = np.clip(out, 0, 255).astype(np.uint8)
    return rgb


def side_by_side(panels: Sequence[np.ndarray], gap: int = PANEL_GAP) -> np.ndarray:
    """Panels left to right on white, top-aligned, ``gap`` pixels apart."""
    height = max(p.shape[0] for p in panels)
    parts: list[np.ndarray] = []
    for k, panel in enumerate(panels):
        if k:
            parts.append(np.full((height, gap, 3), 255, np.uint8))
        pad = height - panel.shape[0]
        parts.append(np.pad(panel, ((0, pad), (0, 0), (0, 0)), constant_values=255) if pad else panel)
    return np.ascontiguousarray(np.hstack(parts))


def zoom(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Enlarge by a whole factor (small crops stay legible on a page)."""
    if factor == 1:
        return np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return cv2.resize(np.ascontiguousarray(rgb), (w * factor, h * factor), interpolation=cv2.INTER_CUBIC)


def point(xy: Sequence[float]) -> tuple[int, int]:
    """A point as OpenCV's integer pixel coordinates."""
    return (round(float(xy[0])), round(float(xy[1])))
