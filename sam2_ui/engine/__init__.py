"""The engine: the document (objects, prompts, masks, prompt log), the tracker that turns prompts into masks
through the predictor, tracking runs, and the executor seam where model calls run (in process or in a forked
worker). Imports nothing from the outputs, the interaction layer or the widget."""
