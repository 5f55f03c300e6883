"""Media a person may hand the engine by mistake, built in the test: a missing file, random bytes named
``.mp4``, an mp4 cut in half, a text file named ``.jpg``, an empty folder, and an mp4 with one frame's data
damaged in the middle; and a check that a message about them carries none of the decoders' noise.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

from tests.support.session_helpers import make_frames, write_mp4

UNOPENABLE = ("missing", "random bytes", "truncated", "text as jpg", "empty folder")
"""Cases `Session.open` refuses (a video damaged in the middle opens: only its damaged frame fails)."""

NOISE = re.compile(
    r"Errno|\[\w+ @ 0x|avcodec|avformat|\w+\(\)|Traceback|[A-Z]\w*(Error|Exception)\b|pytest-of|/tmp/",
    re.IGNORECASE,
)
"""errno numbers, libav log prefixes and function names, exception class names, temporary folders."""


def write_bad_media(folder: Path, case: str) -> Path:
    """The path of a bad source of kind ``case`` (one of `UNOPENABLE`, or "damaged middle") in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    if case == "missing":
        return folder / "no_such_clip.mp4"
    if case == "random bytes":
        path = folder / "random.mp4"
        path.write_bytes(os.urandom(4096))
        return path
    if case == "text as jpg":
        path = folder / "notes.jpg"
        path.write_text("these are my notes, not a picture\n")
        return path
    if case == "empty folder":
        path = folder / "frames"
        path.mkdir()
        return path
    clip = write_mp4(make_frames(12), folder / f"{case.replace(' ', '_')}.mp4", 6)
    if case == "truncated":
        clip.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
        return clip
    if case == "damaged middle":
        damage_frame_data(clip, DAMAGED_PACKET)
        return clip
    raise ValueError(f"unknown bad media case {case!r}")


DAMAGED_PACKET = 4
"""The packet (in file order) whose bytes "damaged middle" zeroes; the decoder refuses that frame."""


def damage_frame_data(path: Path, packet: int) -> None:
    """Zero the bytes of one video packet of ``path``: the container stays readable, that frame does not."""
    import av

    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size]
    pos, size = packets[packet]
    data = bytearray(path.read_bytes())
    data[pos : pos + size] = bytes(size)
    path.write_bytes(bytes(data))


def assert_plain(message: str, given: str = "") -> None:
    """``message`` (text or HTML) says nothing a person cannot act on: no errno, libav or class names, no
    temporary folders (``given``, the path as the person typed it, may be repeated to them)."""
    text = html.unescape(re.sub(r"<[^>]+>", "", message))
    assert text.strip(), "no message"
    if given:
        text = text.replace(given, "<given>")
    found = NOISE.search(text)
    assert found is None, f"noise {found.group(0)!r} in: {text}"
