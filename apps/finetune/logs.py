"""What a run writes beside its checkpoints: ``losses.csv`` (a row per step), ``validation.csv`` (a row per
validation) and ``curves.png`` (the loss curve, and J&F when there is validation).

Steps are counted from 1: row ``step`` k holds the k-th optimizer step, after which ``last.pt`` would say
``step`` k. A resumed run first drops the rows after the step it resumes from (a crash can leave rows that
``last.pt`` never saw), so each step has one row, from whichever run computed it last. A step whose loss
or gradients were not finite (NaN or inf) made no update: its row says ``skipped`` 1; the curve leaves it
out.
"""

from __future__ import annotations

import csv
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

LOSSES_CSV, VALIDATION_CSV, CURVES_PNG = "losses.csv", "validation.csv", "curves.png"
VALIDATION_COLUMNS = ("step", "J", "F", "J&F", "objects", "seconds")
INSTALL_HINT = "pip install 'sam2-ui[finetune]'"


class TrainingLog:
    """The CSV files and the PNG of one run folder (written by rank 0 only).

    Arguments:
      out: the run folder.
      loss_names: the loss parts, in the order of their columns (``total`` goes after them).
    """

    def __init__(self, out: Path, loss_names: Sequence[str]) -> None:
        self.out = Path(out)
        self.loss_columns = [name for name in loss_names if name != "total"] + ["total"]
        self.step_columns = [
            "step", *self.loss_columns, "lr_base", "lr_vision", "grad_norm", "skipped", "seconds"
        ]  # fmt: skip
        self.losses: list[tuple[int, float]] = []  # (step, total loss), for the curve
        self.scores: list[tuple[int, float]] = []  # (step, J&F)
        self._warned = False

    @property
    def losses_path(self) -> Path:
        return self.out / LOSSES_CSV

    @property
    def validation_path(self) -> Path:
        return self.out / VALIDATION_CSV

    @property
    def curves_path(self) -> Path:
        return self.out / CURVES_PNG

    def start(self, completed_steps: int) -> None:
        """Keep the rows of steps up to ``completed_steps`` (the step resumed from; 0 for a fresh run)."""
        self.out.mkdir(parents=True, exist_ok=True)
        rows = _kept_rows(self.losses_path, completed_steps)
        _rewrite(self.losses_path, self.step_columns, rows)
        self.losses = [(int(r["step"]), float(r["total"])) for r in rows if _finite(r.get("total"))]
        rows = _kept_rows(self.validation_path, completed_steps)
        if rows or self.validation_path.exists():
            _rewrite(self.validation_path, VALIDATION_COLUMNS, rows)
        self.scores = [(int(r["step"]), float(r["J&F"])) for r in rows if r.get("J&F")]

    def add_step(
        self,
        step: int,
        losses: dict[str, float],
        lrs: dict[str, float],
        grad_norm: float,
        seconds: float,
        skipped: bool = False,
    ) -> None:
        """Append the row of optimizer step ``step`` (1-based); floats keep every digit (``repr``).
        ``skipped``: the step made no update (its loss or gradients were not finite)."""
        row = {"step": step, **{name: repr(float(losses[name])) for name in self.loss_columns}}
        row.update(
            lr_base=_number(lrs.get("base")),
            lr_vision=_number(lrs.get("vision")),
            grad_norm=repr(float(grad_norm)),
            skipped=int(bool(skipped)),
            seconds=f"{seconds:.3f}",
        )
        _append(self.losses_path, self.step_columns, row)
        if math.isfinite(float(losses["total"])):
            self.losses.append((step, float(losses["total"])))

    def add_validation(self, step: int, j: float, f: float, jf: float, objects: int, seconds: float) -> None:
        """Append a validation's J, F and J&F (percent) after ``step`` steps."""
        values = (step, f"{j:.4f}", f"{f:.4f}", f"{jf:.4f}", objects, f"{seconds:.1f}")
        _append(self.validation_path, VALIDATION_COLUMNS, dict(zip(VALIDATION_COLUMNS, values)))
        self.scores.append((step, jf))

    def draw(self) -> Path | None:
        """Draw ``curves.png``; without matplotlib, say once how to get it and skip."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            from matplotlib import pyplot
        except ImportError:
            if not self._warned:
                print(
                    f"matplotlib is not installed, so no {CURVES_PNG} is drawn: {INSTALL_HINT}",
                    file=sys.stderr,
                )
                self._warned = True
            return None
        figure = _plot(pyplot, self.losses, self.scores)
        partial = self.curves_path.with_name(f".{CURVES_PNG}.partial.png")
        figure.savefig(partial, dpi=100)
        pyplot.close(figure)
        os.replace(partial, self.curves_path)
        return self.curves_path


def _plot(pyplot, losses: list[tuple[int, float]], scores: list[tuple[int, float]]):
    panels = 2 if scores else 1
    figure, axes = pyplot.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
    loss_axes = axes[0][0]
    if losses:
        steps, totals = zip(*losses)
        window = max(1, len(totals) // 50)
        loss_axes.plot(steps, totals, linewidth=0.8, alpha=0.4 if window > 1 else 1.0, label="step")
        if window > 1:
            smooth = [
                sum(totals[max(0, i - window + 1) : i + 1]) / min(window, i + 1) for i in range(len(totals))
            ]
            loss_axes.plot(steps, smooth, linewidth=1.5, label=f"mean of {window} steps")
            loss_axes.legend()
        if min(totals) > 0:
            loss_axes.set_yscale("log")
    loss_axes.set(title="training loss", xlabel="step", ylabel="total loss")
    if scores:
        steps, values = zip(*scores)
        score_axes = axes[0][1]
        score_axes.plot(steps, values, marker="o")
        score_axes.set(title="validation", xlabel="step", ylabel="J&F (%)")
    figure.tight_layout()
    return figure


def _finite(text: str | None) -> bool:
    try:
        return math.isfinite(float(text or ""))
    except ValueError:
        return False


def _number(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _kept_rows(path: Path, completed_steps: int) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [
            row for row in csv.DictReader(handle) if _step(row) is not None and _step(row) <= completed_steps
        ]


def _step(row: dict[str, str]) -> int | None:
    try:
        return int(row.get("step") or "")
    except ValueError:
        return None


def _rewrite(path: Path, columns: Sequence[str], rows: list[dict[str, str]]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, path)


def _append(path: Path, columns: Sequence[str], row: dict) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)
