"""Writing files so a failure never leaves half a file: write beside the target, then rename onto it.

Every exporter and the session file writer go through `staged_file`; errors become `SessionError` messages
that name the path and say what to do.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..engine.errors import SessionError


def write_error(path: Path, error: OSError) -> SessionError:
    """A message that says which path failed, why, and what to do."""
    blocker = next((p for p in (path, *path.parents) if p.exists()), None)
    if blocker is not None and blocker != path and not blocker.is_dir():
        why = f"{blocker} is a file, not a folder"
    else:
        why = error.strerror or str(error)
    return SessionError(f"Cannot write {path}: {why}. Choose a folder you can write to and export again.")


def make_dirs(folder: Path, target: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_error(target, error) from error


@contextmanager
def staged_file(path: Path, errors: tuple[type[BaseException], ...] = ()) -> Iterator[Path]:
    """Yield a temporary name next to ``path`` (same suffix); move it onto ``path`` if the block succeeds.

    OS errors (and the ``errors`` given, e.g. an encoder's) inside the block become `SessionError`; the
    temporary file never outlives the block.
    """
    if path.is_dir():
        raise SessionError(f"Cannot write {path}: it is a folder. Give a file name inside it instead.")
    make_dirs(path.parent, path)
    tmp = path.with_name(f".{path.stem}.partial-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except (OSError, *errors) as error:
        raise write_error(path, error if isinstance(error, OSError) else OSError(str(error))) from error
    finally:
        tmp.unlink(missing_ok=True)
