"""The one exception type the engine raises for mistakes a person can fix."""

from __future__ import annotations


class SessionError(Exception):
    """A user error: the request cannot be done as asked, and the message says what to do instead.

    Raised for an unreadable or empty media file, a click or box outside the image, an unknown object id,
    an export to a path that cannot be written (missing permission, a parent that is a file, a folder given
    where a file is expected, an unknown video extension, nothing to export), and a request over the
    configured budget that cannot be downscaled. Front ends show ``str(error)`` as it is; the session is left
    as it was before the call.

    Programming errors (wrong array shapes or dtypes passed by a front end) stay ``ValueError``/``TypeError``.
    """
