"""What a session gives back: rendered overlays, exports (PNG, DAVIS, COCO, video), session files and the
memory view. Functions over the engine's document and media; imports the engine only."""
