"""Write the notebooks' example video: 24 JPEG frames of two shapes crossing a textured background.

    python notebooks/media/make_media.py

The frames are generated (no licence, no download) by the same code as the app's example clip; the still
image the notebooks use is the project's ``examples/shapes.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from apps.examples import shapes_clip_frames  # noqa: E402

NUM_FRAMES, SIZE = 24, (480, 270)


def main() -> None:
    folder = HERE / "shapes_clip"
    folder.mkdir(exist_ok=True)
    for t, frame in enumerate(shapes_clip_frames(NUM_FRAMES, SIZE)):
        Image.fromarray(frame).save(folder / f"{t:05d}.jpg", quality=90)
    print(f"wrote {NUM_FRAMES} frames to {folder}")


if __name__ == "__main__":
    main()
