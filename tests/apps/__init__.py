"""The front ends as people meet them: the Gradio app (handlers, API, browser), the widget, the notebooks."""
