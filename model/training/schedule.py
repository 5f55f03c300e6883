"""The learning-rate schedule of the official fine-tuning recipe: a cosine from each peak to a tenth of it.

At progress ``p = step / total_steps`` a group's learning rate is

    lr = (end + 0.5 * (peak - end) * (1 + cos(pi * p))) * lr_scale,    end = final_ratio * peak

(fvcore's ``CosineParamScheduler(peak, peak / 10)``, times the group's layer-decay scale). ``peak`` is
``lr`` or ``vision_lr`` by the group's ``kind``; `model.training.optimizer.build_optimizer` puts ``kind``,
``peak_lr`` and ``lr_scale`` in every group.

An optional linear warm-up multiplies the first ``warmup_steps`` steps by ``(step + 1) / warmup_steps``; the
cosine still spans the whole run. The default, 0, is the recipe (it has no warm-up); a few hundred steps
help when fine-tuning with a larger learning rate or a small batch.
"""

from __future__ import annotations

import math
from typing import Any

import torch


class CosineSchedule:
    """Sets the learning rate of every optimizer group for a step (call `step` before ``optimizer.step()``).

    Arguments:
      optimizer: built by `build_optimizer` (its groups carry ``kind``, ``peak_lr`` and ``lr_scale``).
      total_steps: optimizer steps in the whole run; past it the learning rate stays at its end value.
      warmup_steps: steps of linear warm-up (0: none, the official recipe).
      final_ratio: end value over the peak (the recipe's 1/10).

    Construction applies step 0. For resuming, save `state_dict` with the optimizer's and load both back.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        warmup_steps: int = 0,
        final_ratio: float = 0.1,
    ) -> None:
        if total_steps < 1:
            raise ValueError(f"total_steps must be at least 1, got {total_steps}.")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(
                f"warmup_steps must be within 0..{total_steps} (total_steps), got {warmup_steps}."
            )
        needed = {"kind", "peak_lr", "lr_scale"}
        missing = [i for i, group in enumerate(optimizer.param_groups) if not needed <= set(group)]
        if missing:
            raise ValueError(
                f"Optimizer groups {missing} lack 'kind', 'peak_lr' or 'lr_scale': build the optimizer with "
                "model.training.optimizer.build_optimizer."
            )
        self.optimizer = optimizer
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.final_ratio = final_ratio
        self.last_step: int | None = None
        self.step(0)

    def value(self, peak: float, step: int) -> float:
        """The scheduled learning rate at ``step`` for a peak of ``peak`` (before any layer-decay scale)."""
        progress = min(max(step, 0) / self.total_steps, 1.0)
        end = self.final_ratio * peak
        lr = end + 0.5 * (peak - end) * (1.0 + math.cos(math.pi * progress))
        if step < self.warmup_steps:
            lr *= (max(step, 0) + 1) / self.warmup_steps
        return lr

    def lr_at(self, step: int, kind: str = "base") -> float:
        """The scheduled learning rate of the ``kind`` groups ("base" or "vision") at ``step``, unscaled."""
        peaks = {g["peak_lr"] for g in self.optimizer.param_groups if g["kind"] == kind}
        if not peaks:
            kinds = sorted({g["kind"] for g in self.optimizer.param_groups})
            raise ValueError(f"No optimizer group of kind {kind!r}; the optimizer has {kinds}.")
        return self.value(peaks.pop(), step)

    def step(self, step: int) -> None:
        """Set every group's ``lr`` for optimizer step ``step`` (0-based)."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.value(group["peak_lr"], step) * group["lr_scale"]
        self.last_step = step

    def state_dict(self) -> dict[str, Any]:
        """What `load_state_dict` needs to continue the schedule where it stopped."""
        return {
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "final_ratio": self.final_ratio,
            "last_step": self.last_step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a saved schedule and re-apply the learning rates of its last step."""
        self.total_steps = int(state["total_steps"])
        self.warmup_steps = int(state["warmup_steps"])
        self.final_ratio = float(state["final_ratio"])
        self.last_step = state["last_step"]
        if self.last_step is not None:
            self.step(int(state["last_step"]))
