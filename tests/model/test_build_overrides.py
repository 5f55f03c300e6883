"""Both builders apply the official ``hydra_overrides_extra`` strings they understand and refuse the others by
name, through one parser (`model.loading.overrides`)."""

from __future__ import annotations

import pytest

from model import build_sam2, build_sam2_video_predictor

CONFIG = "sam2.1_hiera_tiny"
DECODER = "++model.sam_mask_decoder_extra_args"


def test_build_sam2_applies_image_size_and_mask_decoder_overrides() -> None:
    model = build_sam2(
        CONFIG,
        device="cpu",
        image_size=256,
        hydra_overrides_extra=[
            "++model.image_size=512",
            f"{DECODER}.dynamic_multimask_via_stability=false",
            f"{DECODER}.dynamic_multimask_stability_delta=0.1",
        ],
    )
    assert model.image_size == 512
    assert model.sam_prompt_encoder.image_embedding_size == (32, 32)
    decoder = model.sam_mask_decoder
    assert decoder.dynamic_multimask_via_stability is False  # apply_postprocessing would set it
    assert decoder.dynamic_multimask_stability_delta == 0.1
    assert decoder.dynamic_multimask_stability_thresh == 0.98


def test_build_sam2_refuses_an_unsupported_override_by_name() -> None:
    with pytest.raises(ValueError, match=r"'\+\+model\.num_maskmem=9'") as error:
        build_sam2(CONFIG, device="cpu", hydra_overrides_extra=["++model.num_maskmem=9"])
    assert "++model.image_size=<int>" in str(error.value)  # lists what it understands


def test_build_sam2_sends_predictor_flags_to_the_video_builder() -> None:
    with pytest.raises(ValueError, match="add_all_frames_to_correct_as_cond.*build_sam2_video_predictor"):
        build_sam2(
            CONFIG, device="cpu", hydra_overrides_extra=["++model.add_all_frames_to_correct_as_cond=true"]
        )


def test_an_override_value_that_does_not_read_as_its_type_is_refused() -> None:
    with pytest.raises(ValueError, match="needs true or false"):
        build_sam2(
            CONFIG,
            device="cpu",
            hydra_overrides_extra=[f"{DECODER}.dynamic_multimask_via_stability=yes please"],
        )
    with pytest.raises(ValueError, match="needs a number"):
        build_sam2(CONFIG, device="cpu", hydra_overrides_extra=["++model.image_size=big"])


def test_video_builder_applies_predictor_and_model_overrides() -> None:
    predictor = build_sam2_video_predictor(
        CONFIG,
        device="cpu",
        image_size=256,
        hydra_overrides_extra=[
            "++model.add_all_frames_to_correct_as_cond=true",
            "++model.fill_hole_area=0",
            "++model.image_size=512",
            f"{DECODER}.dynamic_multimask_via_stability=false",
        ],
    )
    assert predictor.add_all_frames_to_correct_as_cond is True
    assert predictor.fill_hole_area == 0  # the override wins over apply_postprocessing's 8
    assert predictor.binarize_mask_from_pts_for_mem_enc is True  # apply_postprocessing, not overridden
    assert predictor.image_size == 512
    assert predictor.model.sam_mask_decoder.dynamic_multimask_via_stability is False


def test_video_builder_refuses_an_unsupported_override_by_name() -> None:
    with pytest.raises(ValueError, match=r"'\+\+model\.num_maskmem=9'") as error:
        build_sam2_video_predictor(CONFIG, device="cpu", hydra_overrides_extra=["++model.num_maskmem=9"])
    assert "++model.non_overlap_masks=<bool>" in str(error.value)
    assert "++model.image_size=<int>" in str(error.value)
