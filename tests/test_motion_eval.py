"""Motion-lift curves: the quarter summary and the measurement script end to end on a tiny budget."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.motion_eval import quarter_summary

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


@pytest.mark.parametrize("method", ["token_ppo", "reinforce_adamae"])
def test_measure_lift_script_writes_quarters(synthetic_root, tmp_path, method):
    out = tmp_path / "lift.json"
    cmd = [sys.executable, str(ROOT / "experiments" / "measure_lift.py"), "--method", method, "--data", str(synthetic_root),
           "--num-envs", "2", "--warmup-clips", "4", "--rl-clips", "16", "--n-steps", "2", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert len(summary["curve"]) == 8 and summary["curve"][-1]["clips"] == 16
    lift = summary["quarters"]["motion_lift_show_hard"]
    assert -1.0 <= lift["first"] <= 1.0 and -1.0 <= lift["last"] <= 1.0
    assert f"{method} show_hard seed=0" in proc.stdout
