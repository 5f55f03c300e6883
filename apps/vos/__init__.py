"""Video object segmentation (VOS) datasets: inference over a dataset, J&F evaluation, and their mask I/O."""
