"""Non-finite values: skipped MAE steps, zero rewards, and nothing NaN ever checkpointed or exported."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.job.checkpoint import load_checkpoint
from agents.job.guards import NonFiniteError, check_finite
from agents.job.config import parse_train_config
from agents.job.trainer import CoTrainer
from tats_env.config import get_preset
from tats_env.env import CoTrainingEngine, EngineConfig, RewardConfig, RewardFunction
from tats_env.export import load_encoder
from tats_env.mae import VideoMAE, random_mask
from tats_env.utils import nonfinite_tensors

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import train_ppo  # noqa: E402

SPEC = get_preset("tiny").video


def test_nonfinite_tensors_names_nested_tensors_and_ignores_integers():
    tree = {"a": torch.zeros(3), "b": [torch.tensor([1.0, float("nan")]), np.array([np.inf])],
            "c": {"d": float("-inf"), "e": torch.tensor([7], dtype=torch.int64), "f": (0.5, "text", None)}}
    assert nonfinite_tensors(tree) == ["b.0", "b.1", "c.d"]
    with pytest.raises(NonFiniteError, match=r"the state: non-finite values in b.0, b.1, c.d; lower it"):
        check_finite(tree, "the state", "lower it")
    check_finite({"a": torch.ones(2), "rng": torch.ByteTensor([1, 2])}, "fine")


def test_engine_skips_a_step_with_a_non_finite_loss():
    torch.manual_seed(0)
    engine = CoTrainingEngine(get_preset("tiny"), EngineConfig(lr=1e-3, warmup_updates=0), batch_size=2)
    clips = torch.randn(2, 3, SPEC.num_frames, SPEC.image_size, SPEC.image_size)
    mask = random_mask(clips, SPEC, 0.9, generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in engine.model.state_dict().items()}
    poisoned = clips.clone()
    poisoned[0, 0, 0, 0, 0] = float("nan")
    for _ in range(2):
        result = engine.update(poisoned, mask)
        assert result.skipped and not np.isfinite(result.loss)
    assert engine.skipped_updates == 2 and engine.consecutive_skipped == 2 and engine.num_updates == 0
    assert all(torch.equal(before[k], v) for k, v in engine.model.state_dict().items())
    assert not engine.optimizer.state  # AdamW never saw the NaN gradient

    result = engine.update(clips, mask)
    assert not result.skipped and np.isfinite(result.loss) and result.grad_norm > 0
    assert engine.num_updates == 1 and engine.consecutive_skipped == 0 and engine.skipped_updates == 2
    assert engine.state_dict()["skipped_updates"] == 2


def test_non_finite_errors_give_zero_reward_and_stay_out_of_the_statistics():
    reward_fn = RewardFunction(RewardConfig(normalize=True))
    per_token = torch.tensor([[1.0, 2.0, 0.0], [float("nan"), 1.0, 0.0], [3.0, 1.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0], [1, 1, 0]], dtype=torch.bool)
    rewards = reward_fn(per_token, mask)
    assert np.isfinite(rewards).all() and rewards[1] == 0.0
    assert reward_fn.stats.count == pytest.approx(2 + 1e-4) and np.isfinite(reward_fn.stats.mean)


def _tiny_args(data: Path, out: Path, **extra: object) -> list[str]:
    args = ["--data", str(data), "--out", str(out), "--num-envs", "4", "--total-steps", "16", "--warmup-steps", "8",
            "--tats.dim", "32", "--no-progress-bar", "--checkpoint-every", "8", "--image-every", "1000",
            "--export-formats", "native"]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


@pytest.fixture
def poisoned_losses(monkeypatch: pytest.MonkeyPatch):
    """``poison(updates)``: the MAE's training loss (and per-token errors) is NaN at those update numbers (1-based)."""
    original = VideoMAE.forward_loss
    state: dict[str, object] = {"calls": 0, "bad": set()}

    def forward_loss(self: VideoMAE, videos: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor):
        loss, per_token = original(self, videos, pred, mask)
        if self.training:
            state["calls"] = int(state["calls"]) + 1
            if state["bad"](state["calls"]):  # type: ignore[operator]
                return loss * float("nan"), per_token * float("nan")
        return loss, per_token

    monkeypatch.setattr(VideoMAE, "forward_loss", forward_loss)

    def poison(bad) -> None:  # noqa: ANN001 - a predicate on the update number
        state["bad"] = bad
    return poison


def test_transient_nan_losses_are_skipped_and_never_reach_the_checkpoint_or_export(
        synthetic_root: Path, tmp_path: Path, poisoned_losses, capsys: pytest.CaptureFixture[str]):
    poisoned_losses(lambda update: update in (4, 5))  # two updates of the sampler phase
    out = tmp_path / "run"
    summary = train_ppo.main(_tiny_args(synthetic_root, out))
    assert summary["skipped_mae_updates"] == 2 and summary["mae_updates"] == 6 - 2
    printed = capsys.readouterr()
    assert "2 non-finite MAE update(s) skipped" in printed.out
    assert printed.err.count("an MAE update was skipped") == 1  # one warning, then a count
    state = load_checkpoint(out / "checkpoint.pt")
    assert nonfinite_tensors(state) == [] and state["core"]["engine"]["skipped_updates"] == 2
    encoder = load_encoder(out / "encoder-native")  # refuses non-finite weights
    assert all(torch.isfinite(p).all() for p in encoder.parameters())
    rewards = [line.split(",") for line in (out / "tb" / "progress.csv").read_text().splitlines()]
    column = rewards[0].index("env/reward")
    assert all(np.isfinite(float(row[column])) for row in rewards[1:] if row[column])


def test_a_diverging_mae_stops_the_run_and_keeps_the_last_good_checkpoint(
        synthetic_root: Path, tmp_path: Path, poisoned_losses, capsys: pytest.CaptureFixture[str]):
    poisoned_losses(lambda update: update >= 4)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        train_ppo.main(_tiny_args(synthetic_root, out, max_skipped_updates=2))
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "2 MAE updates in a row had a non-finite loss or gradient" in err and "lower --mae.lr (the lr was" in err
    assert "the last good " in err and "checkpoint.pt is kept" in err  # the warm-up's checkpoint exists
    state = load_checkpoint(out / "checkpoint.pt")  # the warm-up's, written before the NaNs
    assert state["warmup_done"] == 8 and state["num_timesteps"] == 0 and nonfinite_tensors(state) == []
    assert not list(out.glob("encoder-*")) and not (out / "summary.json").exists()


def test_save_and_export_refuse_non_finite_weights(synthetic_root: Path, tmp_path: Path):
    out = tmp_path / "run"
    trainer = CoTrainer(parse_train_config(_tiny_args(synthetic_root, out)))
    try:
        weight = next(trainer.sampler.policy.parameters())
        first = float(weight.view(-1)[0])
        with torch.no_grad():
            weight.view(-1)[0] = float("inf")
        with pytest.raises(NonFiniteError, match=r"the sampler diverged: no checkpoint had been written yet, so there is "
                                                 r"nothing to resume from; lower --token-ppo.learning-rate \(now 0.001\)"):
            trainer.save()  # before any checkpoint exists, the message does not promise one
        assert not (out / "checkpoint.pt").exists()
        with torch.no_grad():
            weight.view(-1)[0] = first
        good = trainer.save().read_bytes()
        with torch.no_grad():
            next(trainer.sampler.policy.parameters()).view(-1)[0] = float("inf")
        with pytest.raises(NonFiniteError, match=r"sampler\.params\.policy\..*the sampler diverged: the last good "
                                                 r".*checkpoint.pt is kept; lower --token-ppo.learning-rate"):
            trainer.save()
        assert (out / "checkpoint.pt").read_bytes() == good
        with torch.no_grad():
            trainer.env.engine.model.encoder.blocks[0].attn.proj.weight[0, 0] = float("nan")
        with pytest.raises(NonFiniteError, match=r"encoder.blocks.0.attn.proj.weight.*no export written"):
            trainer.export()
        assert not (out / "encoder-native").exists()
    finally:
        trainer.close()
