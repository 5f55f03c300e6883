"""Video segmentation: the video predictor, one tracking step, the memory bank, the inference state and the
frame sources (JPEG folders, video files through PyAV, arrays)."""
