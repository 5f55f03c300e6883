"""What a message shown to a person must not carry: the server's folders, hashes, errno numbers, tracebacks
and Python's exception class names. `internals_in` finds them; `assert_no_internals` fails on any."""

from __future__ import annotations

import builtins
import re

_BUILTIN_EXCEPTIONS = sorted(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException) and name != "Warning"  # also a word
)

INTERNALS = {
    # /tmp/gradio/x/bad.mp4, not "and/or" or a URL's path ("https://host/a/b" starts after "//").
    "POSIX path": re.compile(r"(?<![\w.~/:\\])/(?:[^\s/\\'\"()<>,;]+/)+[^\s/\\'\"()<>,;]+"),
    "Windows path": re.compile(
        r"(?<![\w])(?:[A-Za-z]:[\\/]|\\\\)(?:[^\s\\/'\"()<>,;]+[\\/])+[^\s\\/'\"()<>,;]+"
    ),
    "hash": re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{16,}(?![0-9A-Fa-f])"),
    "errno": re.compile(r"\bErrno\b"),
    "traceback": re.compile(r"\bTraceback\b"),
    "exception class": re.compile(r"\b(?:[A-Z][a-z0-9]*)+(?:Error|Exception)\b"),
    "builtin exception": re.compile(rf"\b(?:{'|'.join(_BUILTIN_EXCEPTIONS)})\s*:"),
}
"""What each kind of internal detail looks like in a message."""


def internals_in(text: str) -> list[str]:
    """The pieces of ``text`` that show a server's internals, each as ``"kind: piece"`` (empty if none)."""
    return [f"{kind}: {m.group(0)}" for kind, pattern in INTERNALS.items() for m in pattern.finditer(text)]


def assert_no_internals(*texts: str) -> None:
    """Fail, naming what leaked and where, if any of ``texts`` shows internals (or is empty)."""
    for text in texts:
        assert text and text.strip(), "no message"
        found = internals_in(text)
        assert not found, f"{found} in: {text}"
