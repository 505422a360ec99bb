"""Evidence images: what each check looked at, drawn so a person can see it.

Everything here works from a scan *record* (the JSON object of :class:`ganscreen.report.Report`)
and the image re-read from the record's path, so evidence can be drawn long after the scan
(``ganscreen report``) as well as during it. Each drawing function returns an RGB ``uint8``
array; :class:`EvidenceMaker` puts them together for one record and :func:`write_evidence`
saves them as PNG files for takedown write-ups.

The drawings repeat the few lines of each check that locate its evidence (the aligned eye
band, the background mask, the structure tensor, the CNN crop) using the checks' public
constants and helpers, so they show what the check measured, not a lookalike.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ganscreen._records import largest_face, one_line, write_bytes_atomic
from ganscreen.faces import Face, align_face
from ganscreen.images import ImageLoadError, file_stamp, load_recorded

# Colours (RGB) shared by the drawings and the legends in the HTML report.
DETECTED = (0, 215, 255)  # detected landmarks: cyan dots
TEMPLATE = (255, 40, 200)  # StyleGAN template points and their on-template zone: magenta
LINK = (255, 220, 0)  # detected eye to template eye: yellow
BOX = (255, 255, 255)  # face box: white

GEOMETRY_SIDE = 512  # longer side of the geometry drawing
GLASSES_ZOOM = 2  # the eye band is small (about 185 x 61 px): enlarge it
OCCLUSION_GRID = 8  # the CNN crop is hidden patch by patch on a GRID x GRID raster
OCCLUSION_GREY = 128
OCCLUSION_SCALE = 0.05  # score change that gets full colour when all changes are smaller
CNN_ZOOM = 2
PANEL_GAP = 6
EVIDENCE_KINDS = ("thumbnail", "geometry", "glasses", "backdrop", "cnn")


# --------------------------------------------------------------------------- records


def face_from_record(record: Mapping[str, Any]) -> Face | None:
    """The primary (largest) face of a record, or ``None`` when it holds no usable face."""
    entry = largest_face(record.get("faces"))
    if entry is None:
        return None
    confidence = entry.get("confidence")
    # largest_face vouches for the box and landmarks; the confidence is only shown.
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
        confidence = 0.0
    return Face(box=np.asarray(entry["box"], dtype=np.float32),
                landmarks=np.asarray(entry["landmarks"], dtype=np.float32), confidence=float(confidence))


def evidence_folder_name(path: str) -> str:
    """A safe folder name for one input's evidence: a hash of its path, never the raw name."""
    return hashlib.sha256(os.fsencode(path)).hexdigest()[:16]


# --------------------------------------------------------------------------- drawings


def thumbnail(rgb: np.ndarray, max_side: int = 192) -> np.ndarray:
    return fit(rgb, max_side)


def fit(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """``rgb`` shrunk (never enlarged) so its longer side is at most ``max_side``."""
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def geometry_overlay(rgb: np.ndarray, face: Face, template_points: Sequence[Sequence[float]], *,
                     threshold: float | None = None, max_side: int = GEOMETRY_SIDE) -> np.ndarray:
    """The whole photo with the detected landmarks (cyan dots), the StyleGAN template points
    (magenta crosses) and, with ``threshold``, the on-template zone around each template eye
    (magenta ellipses: an eye inside its zone is on the template); yellow lines join each
    detected eye to its template eye.

    The template is a set of fractions of the image's width and height, so it is drawn on
    the whole frame: that is where a StyleGAN face would have its eyes.
    """
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    # Draw on a canvas at least 384 px wide so marks stay visible on small photos.
    scale = max(scale, min(4.0, 384 / max(h, w)))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    canvas = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.ascontiguousarray(canvas)
    side = max(size)
    thick = max(1, round(side / 300))
    radius = max(3, round(side / 110))
    cw, ch = size
    points = np.asarray(template_points, np.float64)[:5] * np.array([cw, ch], np.float64)
    landmarks = face.landmarks.astype(np.float64) * scale
    x1, y1, x2, y2 = (face.box.astype(np.float64) * scale).tolist()
    cv2.rectangle(canvas, _pt((x1, y1)), _pt((x2, y2)), BOX, 1, cv2.LINE_AA)
    if threshold is not None and threshold > 0:
        for eye in points[:2]:
            axes = (max(1, round(threshold * cw)), max(1, round(threshold * ch)))
            cv2.ellipse(canvas, _pt(eye), axes, 0, 0, 360, TEMPLATE, 1, cv2.LINE_AA)
    for detected, template in zip(landmarks[:2], points[:2], strict=True):
        cv2.line(canvas, _pt(detected), _pt(template), LINK, thick, cv2.LINE_AA)
    for template in points:
        cv2.drawMarker(canvas, _pt(template), TEMPLATE, cv2.MARKER_CROSS, 3 * radius, thick + 1, cv2.LINE_AA)
    for point in landmarks:
        cv2.circle(canvas, _pt(point), radius + 1, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.circle(canvas, _pt(point), radius, DETECTED, -1, cv2.LINE_AA)
    return canvas


def glasses_halves(rgb: np.ndarray, face: Face) -> np.ndarray:
    """The eye band of the landmark-aligned face as the glasses check compares it: its left
    half, its right half mirrored onto the left, and the difference of their edge strength
    (bright = edges on one side only), side by side."""
    from ganscreen.checks.glasses import ALIGNED_SIZE, EYE_BAND, halves

    aligned = align_face(rgb, face, size=ALIGNED_SIZE)
    band = _region(aligned.image, EYE_BAND)
    left, right = halves(band)
    grey = cv2.cvtColor(band, cv2.COLOR_RGB2GRAY).astype(np.float32)
    magnitude = cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3),
                              cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))
    mag_left, mag_right = halves(cv2.GaussianBlur(magnitude, (0, 0), 1.0))
    difference = np.abs(mag_left - mag_right)
    top = float(np.percentile(np.maximum(mag_left, mag_right), 99)) or 1.0
    diff_rgb = colormap(np.clip(difference / top, 0, 1), cv2.COLORMAP_INFERNO)
    panels = [_zoom(p, GLASSES_ZOOM) for p in (left, np.ascontiguousarray(right), diff_rgb)]
    return side_by_side(panels)


def backdrop_map(rgb: np.ndarray, face: Face) -> np.ndarray:
    """The background the backdrop check measures, with its distortion map.

    Face, hair and shoulders (outside the check's background mask) are dimmed and greyed;
    on the textured part of the background, colour shows the structure-tensor
    *incoherence* (1 - coherence): dark purple where edges run straight and oriented (as in
    real rooms), yellow where texture is isotropic, smeared or blob-like. Background too
    flat to have texture is left uncoloured.
    """
    from ganscreen.checks.backdrop import WORK_SIDE, masks, structure_tensor

    height, width = rgb.shape[:2]
    scale = WORK_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    background, _face_region = masks(grey.shape, face.box.astype(np.float64) * scale)
    coherence, trace = structure_tensor(grey)
    floor = max(100.0, float(np.median(trace[background]))) if background.any() else 100.0
    textured = background & (trace > floor)
    heat = colormap(np.clip(1.0 - coherence, 0, 1), cv2.COLORMAP_PLASMA)
    out = small.astype(np.float32)
    dimmed = 0.35 * np.repeat(grey[:, :, None], 3, axis=2)
    out[~background] = dimmed[~background]
    alpha = 0.65
    out[textured] = (1 - alpha) * out[textured] + alpha * heat[textured].astype(np.float32)
    out = np.clip(out, 0, 255).astype(np.uint8)
    contours, _ = cv2.findContours(background.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, (255, 255, 255), 1, cv2.LINE_AA)
    return out


@dataclass(frozen=True, slots=True)
class Occlusion:
    """An occlusion map of the CNN's face crop."""

    image: np.ndarray  # the crop and the map over it, side by side
    base_score: float  # the CNN's score on the untouched crop
    drops: np.ndarray  # GRID x GRID: base score minus the score with that patch hidden

    @property
    def largest_drop(self) -> float:
        return float(self.drops.max())

    @property
    def largest_rise(self) -> float:
        return float(-self.drops.min())


def cnn_occlusion(rgb: np.ndarray, face: Face, cnn: Any, *, grid: int = OCCLUSION_GRID) -> Occlusion:
    """Slide a grey patch over the CNN's face crop (``grid`` x ``grid`` positions) and record
    how much the CNN's score drops with each patch hidden, in one batch.

    Red marks patches whose hiding lowers the score (they pushed it towards "GAN"), blue
    patches whose hiding raises it. An explanation aid, not proof: the network may react to
    the grey patch itself.
    """
    from ganscreen.model import cnn_crop

    config = cnn.config
    crop = cnn_crop(rgb, face, size=config.input_size, zoom=config.zoom)
    size = crop.shape[0]
    edges = np.linspace(0, size, grid + 1).round().astype(int)
    batch = [crop]
    for i in range(grid):
        for j in range(grid):
            hidden = crop.copy()
            hidden[edges[i]:edges[i + 1], edges[j]:edges[j + 1]] = OCCLUSION_GREY
            batch.append(hidden)
    scores = np.asarray(cnn.probabilities(batch), np.float64)
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
    image = side_by_side([_zoom(crop, CNN_ZOOM), _zoom(overlay, CNN_ZOOM)])
    return Occlusion(image=image, base_score=base, drops=drops)


# --------------------------------------------------------------------------- helpers


def colormap(values: np.ndarray, cmap: int) -> np.ndarray:
    """Values in [0, 1] to RGB through an OpenCV colour map."""
    index = np.clip(np.rint(values * 255), 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(index, cmap), cv2.COLOR_BGR2RGB)


def diverging(values: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] to blue (negative), white (0) and red (positive)."""
    v = np.clip(values, -1, 1)[..., None]
    white = np.array([255, 255, 255], np.float32)
    red = np.array([220, 30, 30], np.float32)
    blue = np.array([30, 80, 230], np.float32)
    out = np.where(v >= 0, white + (red - white) * v, white + (blue - white) * -v)
    return np.clip(out, 0, 255).astype(np.uint8)


def side_by_side(panels: Sequence[np.ndarray], gap: int = PANEL_GAP) -> np.ndarray:
    height = max(p.shape[0] for p in panels)
    parts: list[np.ndarray] = []
    for k, panel in enumerate(panels):
        if k:
            parts.append(np.full((height, gap, 3), 255, np.uint8))
        pad = height - panel.shape[0]
        parts.append(np.pad(panel, ((0, pad), (0, 0), (0, 0)), constant_values=255) if pad else panel)
    return np.ascontiguousarray(np.hstack(parts))


def _zoom(rgb: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return cv2.resize(np.ascontiguousarray(rgb), (w * factor, h * factor), interpolation=cv2.INTER_CUBIC)


def _region(array: np.ndarray, frac: tuple[float, float, float, float]) -> np.ndarray:
    # The same rounding as the glasses check's own region helper.
    h, w = array.shape[:2]
    x0, y0, x1, y1 = frac
    return array[round(y0 * h): round(y1 * h), round(x0 * w): round(x1 * w)]


def _pt(xy: Sequence[float]) -> tuple[int, int]:
    return (round(float(xy[0])), round(float(xy[1])))


def encode(rgb: np.ndarray, fmt: str = "PNG", *, quality: int = 85) -> bytes:
    """An RGB array as PNG or JPEG bytes."""
    import io

    buf = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")
    if fmt == "JPEG":
        image.save(buf, format="JPEG", quality=quality, optimize=True)
    else:
        image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# --------------------------------------------------------------------------- one record


@dataclass(slots=True)
class Evidence:
    """The evidence images for one record; ``notes`` say what could not be drawn and why."""

    images: dict[str, np.ndarray] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # kind (or "image") -> one line
    occlusion: Occlusion | None = None
    image_available: bool = False


class EvidenceMaker:
    """Draws the evidence of scan records, re-reading each image from its recorded path.

    ``cnn`` is the CNN check whose model the occlusion map probes (the scan's own, when
    there is one); without it, one is loaded on first use on ``device``.
    """

    def __init__(self, *, cnn: Any | None = None, device: str = "cpu", occlusion: bool = True) -> None:
        from ganscreen._assets import load_json

        self._cnn = cnn
        self._device = device
        self._cnn_error: str | None = None
        self.occlusion = occlusion
        template = load_json("ffhq_template.json")
        self.template_points = template["points"]
        self.template_threshold = float(template["on_template_threshold"])

    def cnn(self) -> Any | None:
        if self._cnn is None and self._cnn_error is None:
            try:
                from ganscreen.checks.cnn import CnnCheck

                self._cnn = CnnCheck(device=self._device)
            except Exception as exc:  # a missing or altered weights file: say so on the card
                self._cnn_error = one_line(exc)
        return self._cnn

    def build(self, record: Mapping[str, Any]) -> Evidence:
        evidence = Evidence()
        path = record.get("path")
        if not isinstance(path, str):
            evidence.notes["image"] = "the record names no file"
            return evidence
        try:
            # The scan's own reading rule; an error record or changed content is not shown.
            rgb = load_recorded(record).rgb
        except ImageLoadError as exc:
            message = str(exc)
            if record.get("status") != "error" and not message.startswith("not shown"):
                message = f"cannot re-read the image from its recorded path: {message}"
            evidence.notes["image"] = message
            return evidence
        except Exception as exc:  # never let one record end a report
            evidence.notes["image"] = f"cannot re-read the image: {one_line(exc)}"
            return evidence
        evidence.image_available = True
        evidence.images["thumbnail"] = thumbnail(rgb, 256)
        changed = _changed(record, rgb, path)
        if changed is not None:
            evidence.notes["image"] = changed
            if changed.startswith("the image is now"):
                return evidence  # landmarks would land on the wrong pixels: draw nothing
        if record.get("status") != "ok":
            return evidence
        face = face_from_record(record)
        if face is None:
            evidence.notes["face"] = "the record holds no usable face landmarks"
            return evidence
        self._draw(evidence, "geometry", lambda: geometry_overlay(
            rgb, face, self.template_points, threshold=self.template_threshold))
        self._draw(evidence, "glasses", lambda: glasses_halves(rgb, face))
        self._draw(evidence, "backdrop", lambda: backdrop_map(rgb, face))
        if self.occlusion:
            cnn = self.cnn()
            if cnn is None:
                evidence.notes["cnn"] = f"the CNN could not be loaded: {self._cnn_error}"
            else:
                try:
                    evidence.occlusion = cnn_occlusion(rgb, face, cnn)
                    evidence.images["cnn"] = evidence.occlusion.image
                except Exception as exc:
                    evidence.notes["cnn"] = f"could not draw: {one_line(exc)}"
        return evidence

    @staticmethod
    def _draw(evidence: Evidence, kind: str, draw: Any) -> None:
        try:
            evidence.images[kind] = draw()
        except Exception as exc:
            evidence.notes[kind] = f"could not draw: {one_line(exc)}"


def _changed(record: Mapping[str, Any], rgb: np.ndarray, path: str) -> str | None:
    """A note when the file on disk is not the one that was scanned, else ``None``."""
    image = record.get("image")
    if isinstance(image, dict):
        size = (image.get("width"), image.get("height"))
        if size != (rgb.shape[1], rgb.shape[0]) and all(isinstance(v, int) for v in size):
            return (f"the image is now {rgb.shape[1]}x{rgb.shape[0]} px, not the {size[0]}x{size[1]} px "
                    "that were scanned; evidence is not drawn")
    file = record.get("file")
    if isinstance(file, dict) and isinstance(file.get("sha256"), str):
        return None  # load_recorded found the very bytes that were scanned
    stamp = file_stamp(path)
    if isinstance(file, dict) and stamp is not None and file and \
            (file.get("size"), file.get("mtime")) != (stamp["size"], stamp["mtime"]):
        return "the file was modified after the scan; evidence is drawn from the current file"
    return None


# --------------------------------------------------------------------------- files


EVIDENCE_FILES = {
    "thumbnail": ("thumbnail.png", "the photo, shrunk"),
    "geometry": ("geometry.png", "cyan dots: detected landmarks; magenta crosses: StyleGAN (FFHQ) "
                                 "template points; magenta ellipses: on-template zone of each eye; "
                                 "yellow lines: each detected eye to its template eye"),
    "glasses": ("glasses.png", "eye band of the aligned face: left half | right half mirrored | "
                               "difference of edge strength (bright = edges on one side only)"),
    "backdrop": ("backdrop.png", "background region (face, hair and shoulders dimmed); colour = "
                                 "texture incoherence (yellow = smeared or blob-like)"),
    "cnn": ("cnn_occlusion.png", "CNN face crop | occlusion map (red: hiding this patch lowers the "
                                 "CNN score; blue: raises it). An explanation aid, not proof."),
}


def write_evidence(root: Path, record: Mapping[str, Any], evidence: Evidence) -> Path | None:
    """Write one record's evidence to ``root/<hash of its path>/``: a PNG per drawing, the
    record (``record.json``) and a plain-text legend (``evidence.txt``). Returns the folder."""
    path = record.get("path")
    if not isinstance(path, str):
        return None
    folder = root / evidence_folder_name(path)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, image in evidence.images.items():
        name, _legend = EVIDENCE_FILES[kind]
        write_bytes_atomic(folder / name, encode(image, "PNG"))
        written.append(kind)
    try:
        record_text = json.dumps(record, ensure_ascii=True, indent=2, allow_nan=False)
    except ValueError:  # a hand-edited record with NaN: keep it readable rather than fail
        record_text = json.dumps(record, ensure_ascii=True, indent=2)
    write_bytes_atomic(folder / "record.json", (record_text + "\n").encode("ascii"))
    write_bytes_atomic(folder / "evidence.txt", _legend_text(record, evidence, written).encode("utf-8"))
    return folder


def _legend_text(record: Mapping[str, Any], evidence: Evidence, written: list[str]) -> str:
    from ganscreen.report import FLAG_DESCRIPTIONS, portable_text

    lines = [f"file: {portable_text(str(record.get('path')))}",
             f"status: {record.get('status')}"]
    if record.get("error"):
        lines.append(f"error: {portable_text(str(record.get('error')))}")
    if record.get("score") is not None:
        lines.append(f"score: {record.get('score')} (probability of a GAN-generated face)")
    if record.get("verdict"):
        lines.append(f"verdict: {record.get('verdict')}")
    flags = record.get("flags") if isinstance(record.get("flags"), list) else []
    for flag in flags:
        lines.append(f"flag {flag}: {FLAG_DESCRIPTIONS.get(str(flag), 'unknown flag')}")
    model = record.get("model") if isinstance(record.get("model"), dict) else {}
    if model.get("version"):
        lines.append(f"model: {model.get('version')}")
    lines.append("")
    for kind in written:
        name, legend = EVIDENCE_FILES[kind]
        lines.append(f"{name}: {legend}")
    if evidence.occlusion is not None:
        lines.append(f"  CNN score on the crop {evidence.occlusion.base_score:.3f}; largest drop when a "
                     f"patch is hidden {evidence.occlusion.largest_drop:.3f}")
    for kind, note in evidence.notes.items():
        lines.append(f"note ({kind}): {portable_text(note)}")
    lines.append("record.json: the scan record")
    return "\n".join(lines) + "\n"
