"""The web app (a Gradio Blocks page, also a Hugging Face Space) and its scripting API.

`App` holds what every tab shares and builds the page from a `layout.Layout`; `handlers` binds the page's
events, `api` the scripting endpoints, `draw` turns a view into component updates; the page's JavaScript
and CSS are in ``static/``. ``python app.py`` runs `cli.main`.
"""

from .app import App
from .cli import launch, limits_from_args, main, parse_args

__all__ = ["App", "launch", "limits_from_args", "main", "parse_args"]
