"""Non-finite guards of the main job: a diverged run stops with a clear error and never overwrites good files.

The env's engine skips an MAE step whose loss or gradient is not finite and counts it
(:class:`tats_env.env.CoTrainingEngine`); :class:`NonFiniteGuardCallback` stops the run after
``max_consecutive`` such skips in a row and after any sampler update that leaves non-finite
weights; :func:`check_finite` is called on every checkpoint before it is written, so the last
good checkpoint stays in place. :class:`StopRequest` turns Ctrl-C into a stop at the next checkpoint
boundary (:class:`TrainingInterrupted` after that checkpoint is saved).
"""

from __future__ import annotations

import signal
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Literal

from stable_baselines3.common.callbacks import BaseCallback

from agents.job import distributed
from tats_env.commandline import prog_name
from tats_env.utils import nonfinite_tensors

__all__ = ["NonFiniteError", "check_finite", "NonFiniteGuardCallback", "sampler_weights", "StopRequest", "TrainingInterrupted",
           "Part", "default_advice", "divergence_advice", "diverged_parts"]


class NonFiniteError(RuntimeError):
    """Training diverged (NaN/inf); the message says where and what to change."""


def check_finite(state: Any, what: str, hint: str = "") -> None:
    """Raise :class:`NonFiniteError` naming the first non-finite tensors of ``state`` (nested containers)."""
    bad = nonfinite_tensors(state)
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise NonFiniteError(f"{what}: non-finite values in {shown}{'; ' + hint if hint else ''}")


Part = Literal["mae", "sampler"]
"""Which half of the co-training diverged."""


def default_advice(part: Part) -> str:
    """What to change when ``part`` diverged, without knowing the run (library use of the guard)."""
    option = "--mae.lr (or set --mae.grad-clip)" if part == "mae" else "the sampler's learning rate"
    return f"the last checkpoint, if any, is kept; lower {option} and start again"


def diverged_parts(bad: list[str]) -> list[Part]:
    """The halves named by the non-finite entries ``bad`` of a checkpoint state (``mae_state.*``/``core.*``: the
    MAE and its optimizer; ``sampler.*``: the sampler)."""
    parts: list[Part] = []
    if any(name.startswith(("mae_state", "core")) for name in bad):
        parts.append("mae")
    if any(name.startswith("sampler") for name in bad) or not parts:
        parts.append("sampler")
    return parts


def divergence_advice(part: Part, checkpoint: Path, mae_lr: float, sampler_config: Any,
                      sections: tuple[str, ...]) -> str:
    """What a divergence of ``part`` leaves and what to change: whether a good ``checkpoint`` is kept (or none was
    written yet), and that part's learning-rate option with its value (the MAE's ``mae_lr`` at this point; for the
    sampler, ``--<section>.learning-rate`` of the first of its hyperparameter ``sections`` of ``sampler_config``
    that has one)."""
    if part == "mae":
        change = f"lower --mae.lr (the lr was {mae_lr:.3g} at this point) or set --mae.grad-clip"
    else:
        change = "lower the sampler's learning rate"
        for section in sections:
            value = getattr(getattr(sampler_config, section, None), "learning_rate", None)
            if value is not None:
                change = f"lower --{section.replace('_', '-')}.learning-rate (now {value:g})"
                break
    if checkpoint.is_file():
        kept = f"the last good checkpoint {checkpoint} is kept"
    else:
        kept = "no checkpoint had been written yet, so there is nothing to resume from"
    return f"{kept}; {change} and start again (--overwrite)"


def sampler_weights(sampler: Any) -> dict[str, Any]:
    """The weights of the sampler's network (:attr:`agents.algorithms.base.Sampler.network`; none for fixed maskers)."""
    network = sampler.network
    return network.state_dict() if network is not None else {}


class NonFiniteGuardCallback(BaseCallback):
    """Stops training when the MAE keeps diverging or the sampler's weights stop being finite.

    * after every env step: ``max_consecutive`` skipped (non-finite) MAE updates in a row raise
      :class:`NonFiniteError`; the engine's first skip is warned about (once per run);
    * at every rollout start (after the sampler's update): non-finite sampler weights raise it.

    Raising inside ``learn`` leaves the last checkpoint untouched; the skip count is logged as
    ``mae/skipped_updates``.
    """

    def __init__(self, max_consecutive: int, verbose: int = 0, advice: Callable[[Part], str] | None = None) -> None:
        super().__init__(verbose)
        self.max_consecutive = max(1, max_consecutive)
        self.advice = advice or default_advice
        """What the error says to do when ``"mae"`` or ``"sampler"`` diverged (the main job names the checkpoint
        that is kept, or that none was written yet, and the learning-rate option with its value)."""
        self._warned = False

    def _on_training_start(self) -> None:
        self._engine = self.training_env.engine
        self._warned = self._engine.skipped_updates > 0  # warned already in an earlier phase or chunk

    def _on_step(self) -> bool:
        engine = self._engine
        if engine.skipped_updates and not self._warned:
            self._warned = True
            warnings.warn(f"an MAE update was skipped: non-finite loss or gradient (further skips are counted "
                          f"as mae/skipped_updates; {self.max_consecutive} in a row stop the run)",
                          RuntimeWarning, stacklevel=2)
        if engine.consecutive_skipped >= self.max_consecutive:
            raise NonFiniteError(
                f"{engine.consecutive_skipped} MAE updates in a row had a non-finite loss or gradient "
                f"({engine.skipped_updates} in all): the MAE diverged (lr {engine.optimizer.param_groups[0]['lr']:.3g}); "
                + self.advice("mae"))
        return True

    def _on_rollout_start(self) -> None:
        check_finite(sampler_weights(self.model), "the sampler's weights after its update",
                     "its last update diverged; " + self.advice("sampler"))

    def _on_rollout_end(self) -> None:
        self.logger.record("mae/skipped_updates", self._engine.skipped_updates)


class TrainingInterrupted(Exception):
    """Ctrl-C stopped the run at a checkpoint boundary, after saving that checkpoint (``clips``: its position)."""

    def __init__(self, out: Path, clips: int) -> None:
        super().__init__(f"interrupted; saved a checkpoint at {clips:,} clips in {out}; continue with: "
                         f"python experiments/train_ppo.py --out {out} --resume")
        self.out, self.clips = out, clips


class StopRequest:
    """Ctrl-C (SIGINT) while training: the first asks the run to stop at its next checkpoint boundary (the next
    warm-up chunk or rollout start, where it saves a checkpoint that resumes exactly); a second aborts at once
    (``KeyboardInterrupt``; the last checkpoint is kept). Installed only in the main thread of a single process;
    the previous handler is restored on exit."""

    def __init__(self, write: Callable[[str], None] | None = None) -> None:
        self.requested = False
        self.write = write
        """Where the first Ctrl-C's one-line notice goes (the main job: above its progress bar); None: nowhere."""
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.write is not None:
            self.write(f"{prog_name()}: Ctrl-C: stopping at the next checkpoint (Ctrl-C again to stop at once, "
                        "keeping the last checkpoint)")

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread() and distributed.get_world_size() == 1:
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False
