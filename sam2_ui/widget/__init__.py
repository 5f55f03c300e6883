"""The notebook front end: an ipycanvas widget that translates canvas events into the interaction layer and
draws the view it returns. The only part of ``sam2_ui`` that imports ipycanvas and ipywidgets."""
