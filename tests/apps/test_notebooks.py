"""Every notebook in notebooks/ runs top to bottom in a real kernel (nbclient), on a random-weight checkpoint
written in the official file format and passed in through the variable the first cell reads.
A cell that raises fails the test.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
EXPECTED = {
    "image_predictor.ipynb",
    "automatic_mask_generator.ipynb",
    "video_predictor.ipynb",
    "interactive_widget.ipynb",
}
CELL_TIMEOUT_S = 900


def test_the_four_notebooks_are_committed_without_outputs():
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} == EXPECTED
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        first = next(c for c in nb.cells if c.cell_type == "code")
        assert "SAM2_UI_MODEL" in first.source and "facebook/sam2.1-hiera-tiny" in first.source, path.name
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, (path.name, cell.source[:60])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_notebook_runs_top_to_bottom(name, random_checkpoint, monkeypatch, tmp_path):
    monkeypatch.setenv("SAM2_UI_MODEL", str(random_checkpoint))
    monkeypatch.setenv("SAM2_UI_DEVICE", "cpu")
    monkeypatch.setenv("SAM2_UI_IMAGE_SIZE", "256")  # random weights: only the code paths matter here
    monkeypatch.setenv("SAM2_UI_POINTS_PER_SIDE", "16")  # the tuned grid: 64 x 64 takes minutes on a CPU
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell raises
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    ran = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in ran)
