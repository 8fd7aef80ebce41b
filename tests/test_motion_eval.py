"""Motion-lift curves: the quarter summary, and the main job's summary in both directions."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from agents.job.motion_curve import quarter_summary

ROOT = Path(__file__).resolve().parents[1]


def test_quarter_summary_weights_steps_by_their_clips():
    rows = [{"clips": float(i), "lift": v, "lift_n": n}
            for i, (v, n) in enumerate([(0.0, 8), (1.0, 2), (5.0, 8), (5.0, 8), (9.0, 8), (9.0, 8), (2.0, 4), (4.0, 4)])]
    out = quarter_summary(rows, keys=("lift",))["lift"]
    assert out["first"] == pytest.approx((0.0 * 8 + 1.0 * 2) / 10)  # first 2 of 8 steps, weighted by clips
    assert out["last"] == pytest.approx(3.0) and out["last_se"] == pytest.approx(1.0)  # std(2, 4) / sqrt(2)
    rows[0]["lift"] = rows[1]["lift"] = float("nan")
    assert math.isnan(quarter_summary(rows, keys=("lift",))["lift"]["first"])
    with pytest.raises(ValueError, match="4"):
        quarter_summary(rows[:3], keys=("lift",))


@pytest.mark.parametrize("method", ["reinforce_adamae", "reinforce_token"])
def test_main_job_summary_reports_the_lift_of_its_direction(synthetic_root, tmp_path, method):
    sys.path.insert(0, str(ROOT / "experiments"))
    import train_ppo

    direction = "show_hard" if method == "reinforce_adamae" else "mask_hard"
    summary = train_ppo.main(["--data", str(synthetic_root), "--out", str(tmp_path / "run"), "--method", method,
                              "--direction", direction, "--num-envs", "2", "--warmup-steps", "4", "--total-steps",
                              "16", "--no-progress-bar", "--export-formats", "native", "--image-every", "1000"])
    lift = summary["motion_lift"]
    assert lift["direction"] == direction and lift["steps"] == 8  # 16 clips, 2 per step
    assert -1.0 <= lift["first_quarter"] <= 1.0 and -1.0 <= lift["last_quarter"] <= 1.0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["motion_lift"] == lift
