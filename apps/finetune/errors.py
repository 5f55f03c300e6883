"""The one error type of the fine-tuning command: something the person running it can fix."""

from __future__ import annotations


class FinetuneError(Exception):
    """A bad flag, path, data set, checkpoint or resume; the message says what to do. The command prints it
    as one ``error:`` line (no traceback) and exits with status 2."""
