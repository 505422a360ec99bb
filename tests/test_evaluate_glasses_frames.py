"""scripts/evaluate_glasses_frames.py: the pose report says how much head turn explains."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import evaluate_glasses_frames as egf  # noqa: E402


def _landmarks(nose_offset: float, roll_degrees: float = 0.0) -> np.ndarray:
    """Eyes 60 px apart, the nose ``nose_offset`` eye distances along the eye line, rolled."""
    points = np.array([[-30.0, 0.0], [30.0, 0.0], [60.0 * nose_offset, 35.0], [-25.0, 60.0], [25.0, 60.0]])
    a = math.radians(roll_degrees)
    rotation = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return points @ rotation.T + np.array([200.0, 150.0])


def test_yaw_is_the_nose_offset_along_the_eye_line_whatever_the_roll() -> None:
    assert egf.yaw(_landmarks(0.0)) == pytest.approx(0.0, abs=1e-9)
    assert egf.yaw(_landmarks(0.2)) == pytest.approx(0.2)
    assert egf.yaw(_landmarks(-0.15, roll_degrees=25)) == pytest.approx(-0.15)


def _row(asym: int, yaw: float, temple: float) -> dict:
    return {"judged": True, "asym": asym, "yaw": yaw, "score": temple,
            "measures": {"temple_asymmetry": temple, "lens_asymmetry": 0.1, "orientation_asymmetry": 0.2,
                         "asymmetry": 0.3}}


def test_pose_report_separates_what_head_turn_explains() -> None:
    # Symmetric frames whose temple measure grows with the turn; asymmetric ones more turned.
    sym = [_row(0, y, 2 * abs(y)) for y in (-0.05, 0.02, 0.04, -0.2, 0.1)]
    asym = [_row(1, y, 0.5) for y in (0.3, -0.25)]
    report = egf.pose(sym + asym)
    assert report["abs_yaw_auc"]["auc"] == pytest.approx(1.0)  # pose alone "finds" these labels
    assert report["correlation_with_abs_yaw_among_symmetric"]["temple_asymmetry"] == pytest.approx(1.0)
    assert report["correlation_with_abs_yaw_among_symmetric"]["lens_asymmetry"] is None  # constant: no correlation
    assert report["mean_abs_yaw"]["asymmetric"] > report["mean_abs_yaw"]["symmetric"]
    # Only the three near-frontal symmetric faces are frontal: no asymmetric one to rank.
    assert report["frontal"]["score"]["n_pos"] == 0 and report["frontal"]["score"]["n_neg"] == 3
