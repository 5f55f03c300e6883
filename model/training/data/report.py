"""What the data check found: one `DataReport` over every source, with a line per problem a person can act
on, and `TrainingDataError`, raised when nothing usable is left (its message holds the report).

A problem names its source, the video, image or file it is about, what is wrong and what was done about it
(the item skipped, some of its frames left out). The same problem in many items of one source is said once,
with a count and the first few items, so a dataset with 3,000 bad masks gives one line, not 3,000.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GROUP_AFTER = 5  # more items than this with one problem are said in one line
EXAMPLES = 3  # items named in a grouped line
MAX_LINES = 200  # lines of problems in an error message (the report object keeps them all)


class TrainingDataError(ValueError):
    """Training data cannot be used: no source has a usable video left, a source's layout is not one the
    readers know, or a sample cannot be read. The message says which files and what to do; ``report`` is the
    `DataReport` of the check when the error comes from one."""

    def __init__(self, message: str, report: DataReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one item of a source.

    ``where``: the video, image or file, relative to the source; ``issue``: what is wrong, worded the same
    for every item with this problem (so they group); ``outcome``: what was done ("video skipped");
    ``detail``: this item's specifics (sizes, the decoder's words), shown in parentheses.
    """

    source: str
    where: str
    issue: str
    outcome: str
    detail: str = ""

    def line(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        where = f"{self.where}: " if self.where else ""
        return f"{self.source}: {where}{self.issue}{detail}: {self.outcome}"


@dataclass(frozen=True)
class SourceSummary:
    """What one source holds after the check: usable videos (images count as 1-frame videos), their
    annotated frames, and the items that were skipped."""

    name: str
    layout: str
    videos: int
    frames: int
    skipped: int

    def line(self) -> str:
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        videos, frames = _count(self.videos, "usable video"), _count(self.frames, "annotated frame")
        return f"{self.name} ({self.layout}): {videos} with {frames}{skipped}"


@dataclass
class DataReport:
    """The result of `check_sources`: a summary per source, every problem found, and notes on how the data
    is used (added by the sampler: videos left out as too short, short videos played forward and back)."""

    sources: list[SourceSummary] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """Whether at least one source has a usable video."""
        return any(summary.videos > 0 for summary in self.sources)

    def problem_lines(self) -> list[str]:
        """One line per problem; a problem shared by more than `GROUP_AFTER` items of a source is one line."""
        groups: dict[tuple[str, str, str], list[Problem]] = {}
        for problem in self.problems:
            groups.setdefault((problem.source, problem.issue, problem.outcome), []).append(problem)
        lines = []
        for (source, issue, outcome), members in groups.items():
            if len(members) <= GROUP_AFTER:
                lines.extend(problem.line() for problem in members)
                continue
            named = ", ".join(problem.where for problem in members[:EXAMPLES])
            example = next((p for p in members if p.detail), None)
            detail = f"; e.g. {example.where}: {example.detail}" if example else ""
            lines.append(f"{source}: {issue}, in {len(members)} items ({named}, ...{detail}): {outcome}")
        return lines

    def text(self, max_lines: int | None = None) -> str:
        """The report as text: a summary line per source, the notes, then the problems (at most
        ``max_lines``)."""
        lines = ["Training data:"] + [f"  {summary.line()}" for summary in self.sources]
        lines.extend(f"  Note: {note}" for note in self.notes)
        problems = self.problem_lines()
        if problems:
            lines.append(f"{len(problems)} problems:")
            shown = problems if max_lines is None else problems[:max_lines]
            lines.extend(f"  - {line}" for line in shown)
            if len(shown) < len(problems):
                hidden = len(problems) - len(shown)
                lines.append(f"  ... and {hidden} more (the report's problem_lines() has them all)")
        else:
            lines.append("No problems found.")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def raise_if_unusable(self) -> None:
        """`TrainingDataError` with the whole report when no source has a usable video."""
        if not self.usable:
            raise TrainingDataError(
                "No usable training data: every source is empty or was skipped. Fix the problems below "
                f"and run again.\n{self.text(MAX_LINES)}",
                self,
            )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
