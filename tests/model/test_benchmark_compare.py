"""``python -m benchmarks.compare`` runs end to end and reports every row for both implementations.

The quick mode's code path runs in-process at a tiny scale (image size 128, a few small frames; the peak RSS
rows in fresh processes as always). Nothing here is timed: the figures are only checked to exist, be
positive and be judged against the issue's targets where it sets one.
"""

from __future__ import annotations

import contextlib
import json

import pytest
import torch

from benchmarks import compare
from benchmarks.compare_report import BF16_VS_FP32, Row, Target, mask_iou, speedup

TINY = [
    "--quick",
    "--device",
    "cpu",
    "--image-size",
    "128",
    "--frame-size",
    "128x96",
    "--track-frames",
    "3",
    "--skip-frames",
    "2",
    "--click-frame",
    "1",
    "--clicks",
    "2",
    "--open-frames",
    "2,6",
    "--rss-frames",
    "1,3",
    "--repeats",
    "1",
]
PER_PRECISION = {
    "embedding",
    "click",
    "correction_first",
    "correction_next",
    "track_1",
    "track_3",
    "open_2",
    "open_6",
    "iou_official",
}
TWO_SIDED = {"time", "memory", "growth"}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[dict, str]:
    path = tmp_path_factory.mktemp("compare") / "compare.json"
    capture = tmp_path_factory.mktemp("compare_out") / "stdout.txt"
    with open(capture, "w") as out, contextlib.redirect_stdout(out):
        status = compare.main([*TINY, "--json", str(path)])
    assert status == 0
    return json.loads(path.read_text()), capture.read_text()


@pytest.mark.parity
def test_quick_run_reports_every_row_with_both_sides_positive(report):
    data, _ = report
    rows = data["rows"]
    expected = {(key, precision) for key in PER_PRECISION for precision in ("fp32", "bf16")}
    expected |= {(key, BF16_VS_FP32) for key in ("embedding", "track_1", "track_3", "iou_official_fp32")}
    expected |= {("iou_ours_fp32", "bf16"), ("rss_1", "fp32"), ("rss_3", "fp32"), ("rss_growth", "fp32")}
    assert {(row["key"], row["precision"]) for row in rows} == expected
    for row in rows:
        label = f"{row['key']} [{row['precision']}]"
        if row["kind"] in TWO_SIDED:
            assert row["ours"] > 0 and row["official"] > 0, label
        elif row["key"] == "iou_ours_fp32":  # each side's bf16 against its own fp32
            assert 0.0 <= row["ours"] <= 1.0 and 0.0 <= row["official"] <= 1.0, label
        else:
            assert 0.0 <= row["ours"] <= 1.0 and row["official"] is None, label
        if row["kind"] == "time":
            assert row["ratio"] == pytest.approx(row["official"] / row["ours"]), label
            assert row["samples"]["ours"] and row["samples"]["official"], label
            assert all(s > 0 for side in ("ours", "official") for s in row["samples"][side]), label


@pytest.mark.parity
def test_quick_run_judges_the_issue_targets_and_prints_the_table(report):
    data, printed = report
    by_key = {(row["key"], row["precision"]): row for row in data["rows"]}
    assert by_key["correction_next", "fp32"]["target"] == ">=8x"
    assert by_key["track_1", BF16_VS_FP32]["target"] == ">=1.6x"
    assert by_key["rss_growth", "fp32"]["target"] == "<=1.1"
    assert by_key["iou_ours_fp32", "bf16"]["target"] == ">=0.98"
    for row in data["rows"]:
        assert (row["met"] is None) == (row["target"] is None), row["key"]
    assert "ratio" in printed and "target" in printed and "targets met:" in printed
    assert data["meta"]["config"] == "sam2.1_hiera_tiny" and data["meta"]["image_size"] == 128


def test_ratio_is_the_official_time_over_ours_and_judges_speedup_targets():
    faster = Row("track_1", "tracked frame", "fp32", "time", 0.5, 1.0, speedup(1.6))
    assert faster.ratio == pytest.approx(2.0) and faster.met is True
    slower = Row("track_1", "tracked frame", "fp32", "time", 1.0, 0.5, speedup(1.0))
    assert slower.ratio == pytest.approx(0.5) and slower.met is False
    fps = Row("compiled", "compiled", "bf16", "fps", 30.0, 20.0, speedup(1.3))
    assert fps.ratio == pytest.approx(1.5) and fps.met is True
    growth = Row("rss_growth", "rss", "fp32", "growth", 1.2, 3.0, Target("ours", "<=", 1.1))
    assert growth.ratio is None and growth.met is False


def test_mask_iou_takes_the_worst_frame_and_counts_two_empty_masks_as_agreement():
    full = torch.ones(1, 4, 4, dtype=torch.bool)
    half = full.clone()
    half[0, :2] = False
    empty = torch.zeros(1, 4, 4, dtype=torch.bool)
    low, mean = mask_iou({0: full, 1: half, 2: empty}, {0: full, 1: full, 2: empty})
    assert low == pytest.approx(0.5) and mean == pytest.approx(2.5 / 3)


def test_open_clips_the_official_cannot_preload_are_skipped_with_a_reason(monkeypatch):
    monkeypatch.setattr(compare.setup, "available_ram_bytes", lambda: 8 * 2**30)
    fit, skipped = compare.open_clips_that_fit({60: "short", 600: "long"}, image_size=1024)
    assert fit == {60: "short"} and set(skipped) == {600}
    assert "7.0 GiB" in skipped[600] and "--open-frames" in skipped[600]
