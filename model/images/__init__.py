"""Image segmentation: the image predictor, the automatic mask generator and their pre/post-processing."""
