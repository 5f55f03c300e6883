"""The memory view tells what tracking actually read: ``memory_layout`` against the stored outputs the
tracking step touched, and the session's view of it (a pending prompt, undo, an unprompted object).
Also: the widget's three render layers stack up to the one-image render, and the strip's legend names every
colour the strip draws.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.video import memory_bank, memory_cache, step
from sam2_ui import Session
from sam2_ui.memory_view import (
    BACKGROUND,
    EMPTY,
    LEGEND,
    RECENT_COLOR,
    MemoryView,
    legend_html,
    render_memory_strip,
)
from sam2_ui.render import render_frame, render_layers
from tests.support.session_helpers import (
    block_box,
    disc_centre,
    make_frames,
    predictor,
)


def test_memory_layout_names_the_frames_whose_memories_and_pointers_tracking_read(monkeypatch):
    """Spy on what each tracking step reads from the memory bank (the stored outputs whose memory frames
    are read, projected or reused, and whose object pointers are touched), then ask `memory_layout` about
    the same frames."""
    reads: dict[int, tuple[list[int], list[int]]] = {}
    current: list[int] = []
    original_group = step.condition_group
    by_identity: dict[int, int] = {}  # id(FrameOutput) -> frame, read from the state's memory bank
    live_state = []

    def condition_group(model, features, group_reads, memories):
        (read,) = group_reads  # one object: one read per step
        for track in live_state[0].objects:
            for t, out in [*track.cond.items(), *track.non_cond.items()]:
                by_identity[id(out)] = t
        current.append(read.frame)
        reads[read.frame] = ([], [])
        try:
            return original_group(model, features, group_reads, memories)
        finally:
            current.pop()

    original_frame_kv = memory_cache.MemoryCache.frame_kv
    original_maskmem = memory_bank.FrameOutput.maskmem_features
    in_frame_kv: list[bool] = []

    def spy_frame_kv(self, model, entry, *args, **kwargs):
        # With keys and values kept, every memory frame goes through here (projected, or reused).
        if current:
            reads[current[-1]][0].append(by_identity[id(entry)])
        in_frame_kv.append(True)
        try:
            return original_frame_kv(self, model, entry, *args, **kwargs)
        finally:
            in_frame_kv.pop()

    def get_maskmem(self):
        # Without, the step reads each memory frame's features to project the memory whole.
        if current and not in_frame_kv:
            reads[current[-1]][0].append(by_identity[id(self)])
        return original_maskmem.fget(self)

    def get_pointer(self):
        if current:
            reads[current[-1]][1].append(by_identity[id(self)])
        return self.__dict__["_spied_ptr"]

    def set_pointer(self, value):
        self.__dict__["_spied_ptr"] = value

    monkeypatch.setattr(step, "condition_group", condition_group)
    monkeypatch.setattr(memory_cache.MemoryCache, "frame_kv", spy_frame_kv)
    monkeypatch.setattr(memory_bank.FrameOutput, "maskmem_features", property(get_maskmem))
    monkeypatch.setattr(memory_bank.FrameOutput, "obj_ptr", property(get_pointer, set_pointer), raising=False)

    p = predictor()
    frames = make_frames(24)
    state = p.init_state(frames)
    live_state.append(state)
    with torch.no_grad():
        p.add_new_points_or_box(state, 3, 1, points=np.array([disc_centre(3)]), labels=np.array([1]))
        p.add_new_points_or_box(state, 20, 1, box=np.array(block_box(0)))
        for _ in p.propagate_in_video(state, start_frame_idx=3):
            pass
        forward = dict(reads)
        reads.clear()
        for _ in p.propagate_in_video(state, start_frame_idx=20, reverse=True):
            pass
    backward = reads
    assert len(forward) == 19 and len(backward) == 19  # every tracked frame but the two prompted
    checked = 0
    for frame_idx, (memories, pointers) in forward.items():
        if frame_idx > 20:  # tracked forward past the second prompt: forward again
            layout = p.memory_layout(state, frame_idx, 1, reverse=False)
        else:
            continue  # frames 4..19 were tracked again backwards since
        assert [*layout.conditioning, *(t for _, t in layout.recent)] == memories
        assert list(layout.pointers) == pointers
        checked += 1
    for frame_idx, (memories, pointers) in backward.items():
        layout = p.memory_layout(state, frame_idx, 1)  # the direction it was last tracked in
        assert layout.reverse is (frame_idx < 20)
        assert [*layout.conditioning, *(t for _, t in layout.recent)] == memories, frame_idx
        assert list(layout.pointers) == pointers, frame_idx
        checked += 1
    assert checked >= 18
    with pytest.raises(KeyError, match="no object"):
        p.memory_layout(state, 0, 7)


@pytest.fixture
def session():
    s = Session.open(make_frames(10), predictor())
    yield s
    s.close()


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
        assert np.abs(layers.composite().astype(int) - image).max() <= 2
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
