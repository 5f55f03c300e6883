"""How a refusal reaches a person: a toast in the page (the page's outputs stay as they were) or, for a
script, a ``gr.Error`` with our message. Unexpected failures are logged with their traceback and reported in
plain words, never with a server path, an exception class or an errno."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from sam2_ui.interaction.view import WARNING, View

LOG = logging.getLogger("sam2_ui.app")
SOMETHING_WENT_WRONG = (
    "Something went wrong on the server while doing that. The session keeps what it had: try again, or "
    "reload the page if it happens again."
)


def refuse(message: str) -> gr.Error:
    """The error a script gets for a refused action (no traceback printed: it is not a server fault)."""
    return gr.Error(message, print_exception=False)


def toast_view_messages(view: View) -> list[str]:
    """Show the view's warnings and errors as toasts in the page; returns the errors."""
    for message in view.messages:
        if message.level == WARNING:
            gr.Warning(message.text)
    for text in view.errors:
        gr.Warning(text, title="Not done")
    return view.errors


def raise_view_errors(view: View) -> View:
    """For scripts: the view's errors become one ``gr.Error``; its warnings are dropped (they are in
    ``messages``)."""
    if view.errors:
        raise refuse(" ".join(view.errors))
    return view


def guarded(fn: Callable, page: bool = False) -> Callable:
    """``fn`` with unexpected errors logged (with traceback) and turned into a plain message; a
    ``gr.Error`` passes as it is. Generators (streamed events) are guarded the same way.

    ``page``: a page event, whose outputs are ``{component: update}``: the message is a toast and the
    outputs stay as they were (a ``gr.Error`` would mark every output as failed).
    """

    def recover(error: Exception) -> dict:
        """Inside the ``except``: raise the error a script gets, or toast it and leave the page as it was."""
        if isinstance(error, gr.Error):
            message = error.message
            if not page:
                raise error
        else:
            LOG.error("handler %s failed", getattr(fn, "__name__", fn), exc_info=error)
            message = SOMETHING_WENT_WRONG
            if not page:
                raise refuse(message) from error
        gr.Warning(message, title="Not done")
        return {}

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except Exception as error:
                yield recover(error)

        return generator

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            return recover(error)

    return call
