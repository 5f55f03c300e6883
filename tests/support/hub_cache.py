"""Write files into a Hugging Face hub cache laid out exactly as ``huggingface_hub`` lays it out.

    <cache>/models--<org>--<name>/blobs/<sha256 of the file>
    <cache>/models--<org>--<name>/snapshots/<commit sha>/<filename>  -> ../../blobs/<sha256>
    <cache>/models--<org>--<name>/refs/<ref>                          (contains the commit sha)

Large (LFS) files, such as the checkpoints, are stored under the sha256 of their content.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

DEFAULT_COMMIT = "2b2f2d6a1e0c4c3b9f8e7d6c5b4a39281706f5e4"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def populate_hub_cache(
    cache_dir: Path,
    repo_id: str,
    filename: str,
    content_path: Path,
    revision_sha: str = DEFAULT_COMMIT,
    ref: str = "main",
) -> Path:
    """Put ``content_path`` into the cache as ``filename`` of ``repo_id`` at commit ``revision_sha``.

    Returns the snapshot path, which is what ``hf_hub_download`` returns for that file.
    """
    repo_dir = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    blob = repo_dir / "blobs" / _sha256(Path(content_path))
    blob.parent.mkdir(parents=True, exist_ok=True)
    if not blob.exists():
        shutil.copyfile(content_path, blob)

    snapshot = repo_dir / "snapshots" / revision_sha / filename
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    if snapshot.is_symlink() or snapshot.exists():
        snapshot.unlink()
    try:
        snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    except OSError:  # no symlinks (Windows without developer mode): huggingface_hub copies then, too
        shutil.copyfile(blob, snapshot)

    refs = repo_dir / "refs" / ref
    refs.parent.mkdir(parents=True, exist_ok=True)
    refs.write_text(revision_sha)  # huggingface_hub writes the sha with no newline
    return snapshot
