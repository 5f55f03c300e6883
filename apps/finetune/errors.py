"""The one error type of the fine-tuning command: something the person running it can fix."""

from __future__ import annotations


class FinetuneError(Exception):
    """A bad flag, path, data set, checkpoint or resume, the training data failing mid-run, the device out of
    memory, a run whose steps stopped learning; the message says what to do. The command prints it as one
    ``error:`` line (no traceback) and exits with status 2.

    ``shared``: every process of a run raised this same error (`Processes.together` makes such errors), so
    rank 0 alone prints it. Any other error is the raising process's own: under torchrun, each process that
    raises one prints it after ``[rank r]``, as the other processes may never see it.
    """

    def __init__(self, message: str, shared: bool = False) -> None:
        super().__init__(message)
        self.shared = shared


OUT_OF_MEMORY_HINT = (
    "To use less memory: add --activation-checkpointing (a run may resume with it), or start a new --out "
    "with --freeze image-encoder, a smaller --image-size, fewer --frames or fewer --objects."
)
"""What to change when the device runs out of memory (only ``--activation-checkpointing`` and ``--precision``
of these may change when a run resumes)."""


def out_of_memory(error: BaseException, during: str) -> str:
    """The device ran out of memory ``during`` something, in torch's first words (without its advice on
    allocator settings)."""
    text = str(error).strip()
    said = ". ".join(text.splitlines()[0].split(". ")[:3]).rstrip(".") if text else "out of memory"
    return f"The device ran out of memory during {during} ({said})."
