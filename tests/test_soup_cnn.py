"""scripts/soup_cnn.py: a weight-space interpolation of two networks of one architecture."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from ganscreen.model import FaceNet, ModelConfig, load_model, save_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import soup_cnn  # noqa: E402

SMALL = ModelConfig(widths=(4, 8, 8, 8, 8), input_size=32)


def _trained_state(seed: int) -> dict[str, torch.Tensor]:
    """A small network with its seed's weights and batch-norm statistics moved off their
    initial values by one forward pass in training mode."""
    torch.manual_seed(seed)
    model = FaceNet(SMALL)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 32, 32) * (1 + seed))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_end_points_and_midpoint() -> None:
    a, b = _trained_state(0), _trained_state(1)
    assert not torch.equal(a["stem.0.weight"], b["stem.0.weight"])
    zero, one, half = (soup_cnn.interpolate(a, b, alpha) for alpha in (0.0, 1.0, 0.5))
    running = [n for n in a if n.endswith("running_mean")]
    assert running, "the network has batch-norm statistics to interpolate"
    for name in a:
        assert torch.equal(zero[name], a[name]), name
        if a[name].is_floating_point():
            assert torch.allclose(one[name], b[name], atol=1e-7), name
            assert torch.allclose(half[name], (a[name] + b[name]) / 2, atol=1e-7), name
        else:  # batch-norm step counters are A's
            assert torch.equal(half[name], a[name]), name


def test_soup_of_a_network_with_itself_is_that_network() -> None:
    a = _trained_state(0)
    same = soup_cnn.interpolate(a, a, 0.37)
    x = torch.randn(2, 3, 32, 32)
    m1, m2 = FaceNet(SMALL).eval(), FaceNet(SMALL).eval()
    m1.load_state_dict(a)
    m2.load_state_dict(same)
    assert torch.allclose(m1(x), m2(x), atol=1e-6)


def test_refuses_networks_that_do_not_match() -> None:
    a = _trained_state(0)
    other = FaceNet(ModelConfig(widths=(4, 8, 8, 8, 16), input_size=32)).state_dict()
    with pytest.raises(ValueError, match="tensor"):
        soup_cnn.interpolate(a, dict(other), 0.5)
    with pytest.raises(ValueError, match="different tensors"):
        soup_cnn.interpolate(a, {k: v for k, v in a.items() if "stem" not in k}, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        soup_cnn.interpolate(a, a, 1.5)


def test_main_writes_weights_the_package_loads(tmp_path: Path) -> None:
    paths = []
    for seed in (0, 1):
        model = FaceNet(SMALL)
        model.load_state_dict(_trained_state(seed))
        paths.append(tmp_path / f"m{seed}.safetensors")
        save_model(model, paths[-1], tmp_path / f"m{seed}.json")
    soup_cnn.main([str(paths[0]), str(paths[1]), "--alpha", "0.25", "--out", str(tmp_path / "soups")])
    soup = load_model(tmp_path / "soups" / "soup-0.25.safetensors", SMALL)
    parents = [load_model(p, SMALL) for p in paths]
    x = torch.randn(2, 3, 32, 32)
    out = soup(x)
    assert not torch.allclose(out, parents[0](x)) and not torch.allclose(out, parents[1](x))
    assert json.loads((tmp_path / "soups" / "soup-0.25.json").read_text())["alpha"] == 0.25
