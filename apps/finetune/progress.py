"""The progress bar of a run (rank 0 only): steps done, the last loss, the learning rate and tqdm's ETA."""

from __future__ import annotations

import sys

from tqdm import tqdm


class StepProgress:
    """A tqdm bar over the run's steps that starts at the step resumed from; `note` prints above it."""

    def __init__(self, total: int, completed: int, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = tqdm(
            total=total,
            initial=completed,
            desc="fine-tuning",
            unit="step",
            file=sys.stderr,
            dynamic_ncols=True,
            disable=not enabled,
        )

    def advance(self, loss: float, lr: float | None) -> None:
        """One more step done, with its total loss and base learning rate."""
        postfix = {"loss": f"{loss:.4g}"}
        if lr is not None:
            postfix["lr"] = f"{lr:.2e}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def note(self, text: str) -> None:
        """A line for the person watching, printed above the bar (rank 0 only)."""
        if self.enabled:
            self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()
