"""Every test module here runs the network on one torch thread (see the root conftest), and shares the clip
and the session most engine tests start from: session_helpers' 6 frames and its random-weight predictor."""

import numpy as np
import pytest

from sam2_ui import Session
from tests.support.session_helpers import block_box, disc_centre, make_frames, predictor


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread(torch_single_thread):
    yield


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """The red disc moving right and the green block moving left (`make_frames`), one array per module."""
    return make_frames()


@pytest.fixture
def session(frames):
    """Two objects prompted on frame 2: the disc (a click) and the block (a box)."""
    with Session.open(frames, predictor()) as s:
        a, b = s.add_object("disc"), s.add_object("block")
        s.add_point(2, a, *disc_centre(2))
        s.add_box(2, b, *block_box(2))
        yield s
