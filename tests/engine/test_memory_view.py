"""The memory view tells what tracking actually read: the session's view of a frame while a run tracks it,
against the model's memory selection on the memory bank as it stood, and the session's view after edits (a
pending prompt, undo, an unprompted object).
Also: the widget's three render layers stack up to the one-image render, and the strip's legend names every
colour the strip draws.
"""

from __future__ import annotations

import numpy as np
import pytest

from model.video.tracking import pointer_frames, spatial_memory_frames
from sam2_ui import Session
from sam2_ui.output.memory_view import (
    BACKGROUND,
    EMPTY,
    LEGEND,
    RECENT_COLOR,
    MemoryView,
    legend_html,
    render_memory_strip,
)
from sam2_ui.output.render import render_frame, render_layers
from tests.support.canvas import composite
from tests.support.session_helpers import (
    block_box,
    disc_centre,
    make_frames,
    predictor,
)

MEMORY_CLIP = 12  # frames: more than the 6 recent frames a memory holds, so its window fills and slides


def read_by_tracking(model, frame: int, conditioning, stored, num_frames: int, reverse: bool) -> tuple:
    """(conditioning, recent, pointers) that tracking reads for ``frame`` from a memory bank holding the
    ``conditioning`` frames (in the order prompted) and the tracked outputs of ``stored``: the selection
    `model.video.tracking.read_memory` makes for each step, by the same index-only functions."""
    spatial = spatial_memory_frames(frame, conditioning, stored, model.num_maskmem, reverse)
    max_ptrs = min(num_frames, model.max_obj_ptrs_in_encoder)
    pointers = pointer_frames(frame, conditioning, stored, num_frames, max_ptrs, reverse)
    return (
        tuple(conditioning),
        tuple((slot, t) for slot, t in spatial if slot > 0),
        tuple(t for _, t, _ in pointers),
    )


def shown(view) -> tuple:
    assert view.note == "", view.note
    return view.conditioning, view.recent, view.pointers


@pytest.mark.slow
def test_the_memory_view_of_a_frame_being_tracked_names_what_tracking_read_for_it():
    """Two objects, one prompted on two frames, tracked forward then backward, then a correction tracked
    over: while each frame is tracked, the session's memory view of it names the frames the step read from
    the object's memory bank as it stood then (the conditioning frames, in the order prompted; the tracked
    frames stored so far in the window before it; the object pointers), in the run's direction. After the
    run the view is what tracking would read now; a pending correction counts as the conditioning frame the
    next run reads. No spying: the selection is recomputed from the frames the run yielded so far."""
    model = predictor().model
    with Session.open(make_frames(MEMORY_CLIP), predictor()) as session:
        disc, block = session.add_object("disc"), session.add_object("block")
        session.add_point(1, disc, *disc_centre(1))
        session.add_box(10, disc, *block_box(0))  # a second prompt, in the future of most frames
        session.add_box(5, block, *block_box(5))  # prompted later than the first tracked frame
        conditioning = {disc: (1, 10), block: (5,)}
        stored: dict[int, set[int]] = {disc: set(), block: set()}  # tracked outputs in each memory bank
        checked = 0
        for event in session.propagate("both"):
            for obj in (disc, block):
                frame, reverse = event.frame_index, event.direction == "backward"
                if frame in conditioning[obj]:
                    continue  # a prompted frame is given, not tracked
                expected = read_by_tracking(
                    model, frame, conditioning[obj], stored[obj], MEMORY_CLIP, reverse
                )
                view = session.memory_view(frame, obj)
                assert (shown(view), view.reverse) == (expected, reverse), (event.direction, frame, obj)
                stored[obj].add(frame)
                checked += 1
        # Every frame for both objects, frame 1 twice (it starts both legs), less the disc's 1 (twice) and 10
        # and the block's 5.
        assert checked == 2 * (MEMORY_CLIP + 1) - 4
        assert stored[disc] == set(range(MEMORY_CLIP)) - {1, 10} and stored[block] == set(
            range(MEMORY_CLIP)
        ) - {5}

        # The rule, written out for two of the frames (forward, while the run reached them).
        assert read_by_tracking(model, 9, (1, 10), set(range(2, 9)), MEMORY_CLIP, False) == (
            (1, 10),
            ((1, 3), (2, 4), (3, 5), (4, 6), (5, 7), (6, 8)),
            (1, 8, 7, 6, 5, 4, 3, 2),
        )
        assert read_by_tracking(model, 3, (5,), {1, 2}, MEMORY_CLIP, False) == (
            (5,),
            ((5, 1), (6, 2)),
            (2, 1),
        )

        # Since the run, frame 0 is stored: frame 2's view names it although its step could not read it.
        assert shown(session.memory_view(2, disc)) == ((1, 10), ((5, 0),), (1, 0))

        # A correction not tracked yet: the views name it as a conditioning frame, and the run reads that.
        session.add_point(7, disc, *disc_centre(7), positive=False)
        pending = {frame: shown(session.memory_view(frame, disc)) for frame in (8, 9)}
        assert all(p[0] == (1, 10, 7) and 7 not in dict(p[1]).values() for p in pending.values())
        for event in session.propagate("forward", start=7, end=9):
            if event.frame_index in pending:
                assert shown(session.memory_view(event.frame_index, disc)) == pending[event.frame_index]
                checked += 1
        assert checked == 2 * (MEMORY_CLIP + 1) - 4 + 2
    with pytest.raises(KeyError, match="no object"):
        predictor().memory_layout(predictor().init_state(make_frames(2)), 0, 7)


@pytest.fixture
def session():
    s = Session.open(make_frames(10), predictor())
    yield s
    s.close()


@pytest.mark.slow
def test_the_session_memory_view_follows_prompts_undo_and_tracking(session):
    first = session.add_object("disc")
    second = session.add_object("block")
    assert "no prompt yet" in session.memory_view(0, second).note
    session.add_point(0, first, *disc_centre(0))
    pending = session.memory_view(4, first)
    assert pending.conditioning == (0,) and pending.recent == () and pending.note == ""
    assert pending.scores[0] is not None and pending.scores[4] is None
    for _ in session.propagate("forward"):
        pass
    view = session.memory_view(7, first)
    assert view.conditioning == (0,) and [t for _, t in view.recent] == [1, 2, 3, 4, 5, 6]
    assert all(s is not None for s in view.scores) and view.describe().startswith("Tracking disc on frame 7")
    session.undo()
    assert "rebuilt" in session.memory_view(7, first).note  # the state no longer matches the prompts
    session.add_point(0, first, *disc_centre(0))  # the next edit rebuilds it
    assert session.memory_view(7, first).note == ""
    session.close()
    assert "closed" in session.memory_view(7, first).note


def test_the_three_layers_stack_up_to_the_single_image_render():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (120, 200, 3), dtype=np.uint8)
    first, second = np.zeros((120, 200), bool), np.zeros((120, 200), bool)
    first[20:80, 30:120] = True
    second[50:110, 90:180] = True  # overlapping the first
    args = (
        rgb,
        {1: first, 2: second},
        {1: (255, 0, 0), 2: (0, 200, 50)},
        [(1, 50, 40, True), (2, 150, 90, False)],
        [(2, 90, 50, 180, 110)],
        1,
    )
    for display in (None, (100, 60), (77, 50)):
        image, mapping = render_frame(*args, display_size=display)
        layers = render_layers(*args, display_size=display)
        assert layers.mapping == mapping and layers.masks.shape[:2] == image.shape[:2]
        assert np.abs(composite(layers).astype(int) - image).max() <= 2
        assert layers.markers[..., 3].any() and not layers.masks[:2, :2, 3].any()
        plain, _ = render_frame(rgb, {}, {}, display_size=display)
        assert np.array_equal(layers.frame, plain)  # the frame layer is the bare frame


def test_the_legend_names_every_colour_the_memory_strip_draws():
    """A strip with every kind of mark (conditioning, recent and pointer-only frames, the current frame,
    scores above and below zero, unknown scores): every pixel is the background, the score row's middle
    line, a legend colour or a shade of the recent colour (brighter when nearer), and every legend entry is
    drawn."""
    view = MemoryView(
        frame=12,
        obj=1,
        name="ball",
        num_frames=20,
        conditioning=(0,),
        recent=tuple((slot, 5 + slot) for slot in range(1, 7)),  # frames 6..11
        pointers=tuple(range(12)),  # frames 1..5 lend only their pointer
        reverse=False,
        prompted=False,
        scores=(4.0, *[2.5] * 9, -3.0, -1.0, 6.0, *[None] * 7),
    )
    strip = render_memory_strip(view, width=400, row_height=18)
    drawn = {tuple(int(c) for c in rgb) for rgb in strip.reshape(-1, 3)}
    legend = {entry.color for entry in LEGEND}
    recent_shades = {tuple(round(c * (0.55 + 0.45 * i / 6)) for c in RECENT_COLOR) for i in range(1, 7)}
    assert drawn - legend - recent_shades <= {BACKGROUND, EMPTY}
    assert legend <= drawn
    assert len({entry.label for entry in LEGEND}) == len(LEGEND)
    html = legend_html()
    assert all(entry.label in html for entry in LEGEND)
