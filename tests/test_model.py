"""Tests for ganscreen.model: the CNN's architecture, its input crop and how weights load.

The shipped weights are safetensors (no pickle can run when they load), match the
architecture their ``cnn.json`` describes tensor for tensor, and stay under 2 M
parameters. The crop is checked geometrically on an image whose pixels encode their own
coordinates, so a landmark that lands in the wrong place shows up as a wrong colour.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ganscreen._assets import asset_path, load_json
from ganscreen.checks import CheckContext
from ganscreen.checks.cnn import CnnCheck
from ganscreen.faces import CANONICAL_LANDMARKS, Face
from ganscreen.model import (
    BACKDROP_FILL,
    BACKDROP_MIN_VISIBLE,
    INPUT_SIZE,
    ZOOM,
    FaceNet,
    ModelConfig,
    PatchNet,
    backdrop_crop,
    backdrop_mask,
    build_model,
    canonical_face,
    cnn_crop,
    count_parameters,
    load_model,
    save_model,
    to_tensor,
    widen_stem,
)

MAX_PARAMETERS = 2_000_000


@pytest.fixture(scope="module")
def shipped_config() -> ModelConfig:
    return ModelConfig.from_dict(load_json("cnn.json"))


@pytest.fixture(scope="module")
def cnn() -> CnnCheck:
    return CnnCheck(device="cpu")


def _safetensors_header(path: Path) -> dict[str, dict]:
    with path.open("rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(length))
    header.pop("__metadata__", None)
    return header


# --------------------------------------------------------------------------- weights


def test_shipped_weights_are_safetensors_matching_the_architecture(shipped_config: ModelConfig) -> None:
    header = _safetensors_header(asset_path("cnn.safetensors"))
    state = build_model(shipped_config).state_dict()
    assert set(header) == set(state)
    for name, tensor in state.items():
        assert header[name]["shape"] == list(tensor.shape), name
        assert header[name]["dtype"] in ("F32", "I64"), name


def test_shipped_model_loads_small_and_in_eval_mode(shipped_config: ModelConfig) -> None:
    model = load_model(asset_path("cnn.safetensors"), shipped_config)
    assert not model.training
    assert count_parameters(model) == load_json("cnn.json")["parameters"] <= MAX_PARAMETERS
    assert all(torch.isfinite(p).all() for p in model.state_dict().values() if p.is_floating_point())


class _Trap:
    """Unpickling this creates a file: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def test_a_pickle_in_place_of_the_weights_is_refused_without_running(tmp_path: Path,
                                                                     shipped_config: ModelConfig) -> None:
    marker = tmp_path / "pickle-ran"
    weights = tmp_path / "cnn.safetensors"
    torch.save({"stem.0.weight": _Trap(marker)}, weights)
    with pytest.raises(Exception):  # noqa: B017 - safetensors' own error type; what matters is below
        load_model(weights, shipped_config)
    assert not marker.exists()


def test_weights_of_another_shape_are_refused(tmp_path: Path) -> None:
    save_model(FaceNet(ModelConfig(widths=(8, 16, 32, 64, 128))), tmp_path / "m.safetensors", tmp_path / "m.json")
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_model(tmp_path / "m.safetensors", ModelConfig())
    saved = json.loads((tmp_path / "m.json").read_text())
    assert ModelConfig.from_dict(saved).widths == (8, 16, 32, 64, 128)


def test_config_round_trips_and_names_its_architecture() -> None:
    for config in (ModelConfig(), ModelConfig(arch="patchnet", widths=(32, 64, 128), zoom=1.5),
                   ModelConfig(canonical_eye_px=60.0, canonical_jpeg=60),
                   ModelConfig(input_size=256, stem_stride=2), ModelConfig(zoom=1.0, view="backdrop")):
        assert ModelConfig.from_dict(config.to_dict()) == config
    legacy = {k: v for k, v in ModelConfig().to_dict().items() if k != "arch"}
    assert ModelConfig.from_dict(legacy).arch == "facenet"
    assert ModelConfig.from_dict(legacy).view == "face" and "view" not in ModelConfig().to_dict()
    assert isinstance(build_model(ModelConfig(arch="patchnet", widths=(32, 64, 128))), PatchNet)
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model(ModelConfig(arch="resnet"))


def test_networks_give_one_logit_per_crop() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 3, INPUT_SIZE, INPUT_SIZE)
    face_net, patch_net = FaceNet().eval(), PatchNet().eval()
    with torch.inference_mode():
        assert face_net(x).shape == (3,)
        logit_map = patch_net.logit_map(x)
        assert logit_map.dim() == 3 and logit_map.shape[0] == 3 and logit_map.shape[1] > 1
        assert torch.allclose(patch_net(x), logit_map.mean(dim=(1, 2)))
    assert count_parameters(PatchNet()) <= MAX_PARAMETERS


def test_a_widened_stem_sees_twice_the_pixels_and_starts_as_the_network_it_came_from(
        shipped_config: ModelConfig) -> None:
    narrow = load_model(asset_path("cnn.safetensors"), shipped_config)
    wide_config = dataclasses.replace(shipped_config, input_size=2 * shipped_config.input_size, stem_stride=2)
    wide = load_model(asset_path("cnn.safetensors"), wide_config, transform=widen_stem)
    with pytest.raises(RuntimeError, match="stem"):  # the stored 3x3 stem does not fit as it is
        load_model(asset_path("cnn.safetensors"), wide_config)
    assert count_parameters(wide) <= MAX_PARAMETERS
    torch.manual_seed(0)
    x = torch.randn(2, 3, wide_config.input_size, wide_config.input_size)
    with torch.inference_mode():
        # On the 2x2 box-averaged copy the stride-1 network gives what the widened one gives.
        assert torch.allclose(wide(x), narrow(torch.nn.functional.avg_pool2d(x, 2)), atol=1e-4)
        # At its start it is as blind as that copy to a 2-px checkerboard, detail only the full
        # crop holds: what it sees beyond the copy, training has to teach it.
        checker = torch.ones_like(x)
        checker[..., ::2, ::2] = checker[..., 1::2, 1::2] = -1
        stem_alone = torch.nn.functional.conv2d(checker, wide.stem[0].weight, stride=2, padding=2)
        assert torch.allclose(stem_alone[..., 2:-2, 2:-2], torch.zeros(()), atol=1e-5)
    with pytest.raises(ValueError, match="stem_stride"):
        build_model(ModelConfig(stem_stride=3))
    with pytest.raises(ValueError, match="3x3 stem"):
        widen_stem(wide.state_dict())


# --------------------------------------------------------------------------- the crop


def _coordinate_image(width: int = 512, height: int = 512) -> np.ndarray:
    """Red = x / 2, green = y / 2: each pixel says where it is (to 2 px)."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.ascontiguousarray(np.stack([xs // 2, ys // 2, np.full_like(xs, 90)], axis=2).astype(np.uint8))


def _face(landmarks: np.ndarray) -> Face:
    box = np.array([*landmarks.min(0) - 40, *landmarks.max(0) + 40], np.float32)
    return Face(box=box, landmarks=landmarks.astype(np.float32), confidence=1.0)


def _tilted_landmarks(scale: float = 260.0, degrees: float = 12.0, centre: tuple[float, float] = (256, 250)
                      ) -> np.ndarray:
    angle = np.deg2rad(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (CANONICAL_LANDMARKS - 0.5) * scale @ rotation.T + np.array(centre)


def test_crop_puts_each_landmark_where_the_canonical_layout_says() -> None:
    image = _coordinate_image()
    landmarks = _tilted_landmarks()
    crop = cnn_crop(image, _face(landmarks))
    assert crop.shape == (INPUT_SIZE, INPUT_SIZE, 3) and crop.dtype == np.uint8
    targets = ((CANONICAL_LANDMARKS - 0.5) * ZOOM + 0.5) * INPUT_SIZE
    for (tx, ty), source in zip(targets, landmarks, strict=True):
        red, green, _ = crop[int(ty), int(tx)].astype(float)
        # One crop pixel spans about 2.6 source pixels here, and the colours count in steps of 2.
        assert np.hypot(2 * red - source[0], 2 * green - source[1]) < 6


def test_crop_is_deterministic_and_leaves_the_photo_alone() -> None:
    image = _coordinate_image()
    before = image.copy()
    face = _face(_tilted_landmarks())
    first = cnn_crop(image, face)
    assert np.array_equal(first, cnn_crop(image, face))
    assert np.array_equal(first, cnn_crop(image[::-1][::-1], face))  # a view, not contiguous memory
    assert np.array_equal(image, before)


def test_crop_zooms_in_rather_than_filling_past_the_border() -> None:
    image = _coordinate_image()
    # A face 70 px from the left edge: the canonical crop (200 px wide here) would reach 30 px
    # past x = 0, and the border would be repeated there (a run of columns with red 0).
    near_edge = cnn_crop(image, _face(_tilted_landmarks(scale=260, degrees=0, centre=(70, 250))))
    centred = cnn_crop(image, _face(_tilted_landmarks(scale=260, degrees=0, centre=(256, 250))))
    row = near_edge[INPUT_SIZE // 2, :, 0].astype(int)
    # Red 0 is source columns 0 and 1: about three crop columns. Repeating the border for
    # 30 px would make it about twenty.
    assert np.count_nonzero(row == 0) <= 4
    # Zoomed in: the crop spans fewer source pixels than the canonical one.
    assert np.ptp(row) < 0.8 * np.ptp(centred[INPUT_SIZE // 2, :, 0].astype(int))


# --------------------------------------------------------------------------- backdrop view


def test_backdrop_mask_hides_head_and_shoulders_and_follows_the_zoom() -> None:
    wide = backdrop_mask(INPUT_SIZE, 1.0)
    assert wide.dtype == bool and wide.shape == (INPUT_SIZE, INPUT_SIZE)
    assert wide[2, 2] and wide[2, -3]  # the top corners are backdrop
    centre = ((CANONICAL_LANDMARKS[:, ::-1]) * INPUT_SIZE).astype(int)
    assert not any(wide[y, x] for y, x in centre)  # eyes, nose and mouth are hidden
    assert not wide[-2].any()  # the shoulder band is hidden
    assert 0.25 < wide.mean() < 0.45
    # Zoomed in, the head fills more of the crop: less backdrop, and none that was hidden shows.
    tight = backdrop_mask(INPUT_SIZE, 1.3)
    assert tight.mean() < 0.8 * wide.mean()


def test_backdrop_crop_shows_the_photo_only_where_the_mask_and_the_photo_allow() -> None:
    image = _coordinate_image()
    landmarks = _tilted_landmarks(scale=300, degrees=0, centre=(256, 256))
    crop, visible = backdrop_crop(image, landmarks, zoom=1.0)
    assert crop.shape == (INPUT_SIZE, INPUT_SIZE, 3) and visible.shape == (INPUT_SIZE, INPUT_SIZE)
    assert np.all(crop[~visible] == BACKDROP_FILL)
    # Visible pixels are the photo's: the crop is the 300 px square about (256, 256), so its
    # top-left corner is source pixel (106, 106) (red and green count in steps of 2).
    assert visible[3, 3] and visible.mean() == backdrop_mask(INPUT_SIZE, 1.0).mean()
    red, green = crop[3, 3, :2].astype(float) * 2
    assert abs(red - 113) < 6 and abs(green - 113) < 6
    # A face 120 px from the left edge: the crop reaches 30 px past it. Those pixels are hidden,
    # never repeated, so a tight crop cannot hand the network a border to read.
    near_edge = _tilted_landmarks(scale=300, degrees=0, centre=(120, 256))
    edge_crop, edge_visible = backdrop_crop(image, near_edge, zoom=1.0)
    assert not edge_visible[:, :12].any() and edge_visible[:, 14:20].any()
    assert np.all(edge_crop[:, :12] == BACKDROP_FILL)


def test_a_tight_crop_leaves_too_little_backdrop_to_judge() -> None:
    image = _coordinate_image()
    full = _tilted_landmarks(scale=130, degrees=0, centre=(256, 240))  # a portrait with room around
    tight = _tilted_landmarks(scale=1100, degrees=0, centre=(256, 240))  # the face fills the photo
    assert backdrop_crop(image, full, zoom=1.0)[1].mean() >= BACKDROP_MIN_VISIBLE
    assert backdrop_crop(image, tight, zoom=1.0)[1].mean() < BACKDROP_MIN_VISIBLE


# --------------------------------------------------------------------------- canonical copy

def test_canonical_copy_off_leaves_photo_and_landmarks_alone() -> None:
    image = _coordinate_image()
    landmarks = _tilted_landmarks()
    region, points = canonical_face(image, landmarks, ModelConfig())
    assert region is image and np.allclose(points, landmarks)


def test_canonical_copy_shrinks_the_eyes_to_the_limit_and_keeps_the_crop() -> None:
    image = _coordinate_image()
    landmarks = _tilted_landmarks(scale=260)  # eyes about 87 px apart
    config = ModelConfig(canonical_eye_px=40.0, canonical_jpeg=None)
    region, points = canonical_face(image, landmarks, config)
    assert abs(float(np.linalg.norm(points[1] - points[0])) - 40.0) < 1.0
    assert region.shape[0] < image.shape[0] and region.shape[1] < image.shape[1]
    # Without JPEG the crop of the canonical copy is the photo's crop, only softer.
    ours = cnn_crop(region, _face(landmarks), landmarks=points).astype(float)
    theirs = cnn_crop(image, _face(landmarks)).astype(float)
    assert np.abs(ours - theirs).mean() < 3.0
    # Never enlarged: a face already smaller than the limit keeps its pixels.
    _, small = canonical_face(image, _tilted_landmarks(scale=90), config)
    assert abs(float(np.linalg.norm(small[1] - small[0])) - float(np.linalg.norm(
        _tilted_landmarks(scale=90)[1] - _tilted_landmarks(scale=90)[0]))) < 1e-6


def test_canonical_copy_keeps_the_photo_border_where_it_was() -> None:
    image = _coordinate_image()
    config = ModelConfig(canonical_eye_px=1000.0, canonical_jpeg=None)  # crop the region only
    for centre in ((70, 250), (256, 250), (440, 400)):
        landmarks = _tilted_landmarks(scale=260, degrees=0, centre=centre)
        region, points = canonical_face(image, landmarks, config)
        ours = cnn_crop(region, _face(landmarks), landmarks=points).astype(int)
        # The same crop up to interpolation rounding (a pixel shift in fixed-point maths).
        assert np.abs(ours - cnn_crop(image, _face(landmarks)).astype(int)).max() <= 1


def test_cnn_check_crops_the_canonical_copy_its_config_names(astronaut: np.ndarray, astronaut_face: Face) -> None:
    shipped = CnnCheck(device="cpu")
    cnn = CnnCheck(device="cpu")
    cnn.config = dataclasses.replace(cnn.config, canonical_eye_px=60.0, canonical_jpeg=60)
    # The astronaut enlarged 3x: eyes about 130 px apart, beyond the limit.
    big = cv2.resize(astronaut, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    landmarks = astronaut_face.landmarks * 3
    face = Face(box=astronaut_face.box * 3, landmarks=landmarks, confidence=astronaut_face.confidence)
    crop = cnn.prepare(CheckContext(image=big, faces=(face,), face=face, aligned=None))
    region, points = canonical_face(big, landmarks, cnn.config)
    assert np.array_equal(crop, cnn_crop(region, face, landmarks=points))
    assert abs(float(np.linalg.norm(points[1] - points[0])) - cnn.config.canonical_eye_px) < 1.0
    plain = cnn_crop(big, face)
    assert np.abs(crop.astype(float) - plain.astype(float)).mean() > 0.5  # it is not the plain crop
    # The shipped cnn.json names no canonical copy (measured, not adopted: model card).
    assert np.array_equal(shipped.prepare(CheckContext(image=big, faces=(face,), face=face, aligned=None)), plain)


def test_to_tensor_normalises_channels_in_order() -> None:
    crops = np.zeros((2, 4, 4, 3), np.uint8)
    crops[0, ..., 0] = 255  # red
    crops[1, ..., 2] = 128  # blue
    x = to_tensor(crops, ModelConfig())
    assert x.shape == (2, 3, 4, 4) and x.dtype == torch.float32
    assert torch.allclose(x[0, 0], torch.full((4, 4), 2.0)) and torch.allclose(x[0, 1], torch.full((4, 4), -2.0))
    assert torch.allclose(x[1, 2], torch.full((4, 4), (128 / 255 - 0.5) / 0.25), atol=1e-6)


# --------------------------------------------------------------------------- scores


def test_scores_are_probabilities_for_any_crop(cnn: CnnCheck, astronaut: np.ndarray, astronaut_face: Face) -> None:
    rng = np.random.default_rng(0)
    crops = [cnn_crop(astronaut, astronaut_face),
             np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8),
             np.full((INPUT_SIZE, INPUT_SIZE, 3), 255, np.uint8),
             rng.integers(0, 256, (INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)]
    scores = cnn.probabilities(crops)
    assert len(scores) == 4
    assert all(np.isfinite(s) and 0.0 <= s <= 1.0 for s in scores)


def test_score_is_the_mean_of_the_crop_and_its_mirror(cnn: CnnCheck, astronaut: np.ndarray,
                                                      astronaut_face: Face) -> None:
    crop = cnn_crop(astronaut, astronaut_face)
    mirrored = np.ascontiguousarray(crop[:, ::-1])
    plain_score, mirrored_score = cnn.probabilities([crop, mirrored])
    assert plain_score == pytest.approx(mirrored_score, abs=1e-6)
    x = to_tensor([crop, mirrored], cnn.config)
    with torch.inference_mode():
        logits = cnn.model(x)
    # Averaged in logit space, then squashed: not the plain model's score on either view.
    expected = torch.sigmoid(logits.mean()).item()
    assert plain_score == pytest.approx(expected, abs=1e-5)
