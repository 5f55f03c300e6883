"""Test-only access to the official trainer (the ``training`` package of PyPI ``sam2==1.1.0``).

Importing it needs ``tensordict`` and ``tensorboard`` (in our test extras). A missing package is an error.
"""

from __future__ import annotations

from pathlib import Path

import torch

from model import build_sam2
from model.training.batch import TrainBatch
from model.training.prompts import PromptPlan
from tests.support.official_ref import build_official, save_official_checkpoint

try:
    from training.loss_fns import MultiStepMultiMasksAndIous
    from training.utils.data_utils import BatchedVideoDatapoint, BatchedVideoMetaData
except ImportError as exc:  # pragma: no cover - CI must install it
    raise ImportError(
        "The training parity tests need the official trainer and its dependencies: "
        'pip install -e ".[test]" (tensordict, tensorboard) and sam2==1.1.0'
    ) from exc

TRAINING_OVERRIDES = (
    "++model._target_=training.model.sam2.SAM2Train",
    "++model.prob_to_use_pt_input_for_train=0.5",
    "++model.prob_to_use_box_input_for_train=0.5",
    "++model.prob_to_sample_from_gt_for_train=0.1",
    "++model.num_frames_to_correct_for_train=2",
    "++model.rand_frames_to_correct_for_train=true",
    "++model.add_all_frames_to_correct_as_cond=true",
    "++model.num_init_cond_frames_for_train=2",
    "++model.rand_init_cond_frames_for_train=true",
    "++model.num_correction_pt_per_frame=7",
)
"""The official SAM 2.1 fine-tuning recipe's model settings (sam2.1_hiera_b+_MOSE_finetune.yaml)."""


def official_loss() -> MultiStepMultiMasksAndIous:
    """The official loss as the fine-tuning recipe configures it."""
    return MultiStepMultiMasksAndIous(
        weight_dict={"loss_mask": 20, "loss_dice": 1, "loss_iou": 1, "loss_class": 1},
        supervise_all_iou=True,
        iou_use_l1_loss=True,
        pred_obj_scores=True,
        focal_gamma_obj_score=0.0,
        focal_alpha_obj_score=-1.0,
    )


def no_dropout_(model: torch.nn.Module) -> torch.nn.Module:
    """Switch every dropout off (it draws from the global generator, in an order each side chooses)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if hasattr(module, "dropout_p"):
            module.dropout_p = 0.0
    return model


def twin_models(tmp_path: Path, image_size: int, seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The official ``SAM2Train`` and our network with the same random weights, both training, no dropout.

    The object-score bias is raised so random weights see objects (as the shared random checkpoint does)."""
    official = build_official(
        "sam2.1_hiera_tiny", image_size=image_size, seed=seed, overrides=TRAINING_OVERRIDES
    )
    with torch.no_grad():
        official.sam_mask_decoder.pred_obj_score_head.layers[-1].bias += 2.0
    checkpoint = save_official_checkpoint(official, tmp_path / "sam2.1_hiera_tiny.pt")
    ours = build_sam2(
        "sam2.1_hiera_tiny", checkpoint, device="cpu", image_size=image_size, apply_postprocessing=False
    )
    return no_dropout_(official.train()), no_dropout_(ours.train())


def official_input(batch: TrainBatch) -> BatchedVideoDatapoint:
    """Our batch as the official trainer's input (objects of a clip are consecutive, clip by clip)."""
    num_frames, num_objects = batch.num_frames, batch.num_objects
    frames = torch.arange(num_frames).view(-1, 1).expand(num_frames, num_objects)
    clips = batch.object_clip.view(1, -1).expand(num_frames, num_objects)
    return BatchedVideoDatapoint(
        img_batch=batch.images,
        obj_to_frame_idx=torch.stack([frames, clips], dim=-1).int(),
        masks=batch.masks,
        metadata=BatchedVideoMetaData(
            unique_objects_identifier=torch.zeros(num_frames, num_objects, 3, dtype=torch.long),
            frame_orig_size=torch.zeros(num_frames, num_objects, 2, dtype=torch.long),
            batch_size=[num_frames],
        ),
        dict_key="all",
        batch_size=[num_frames],
    )


def set_official_prompts(official: torch.nn.Module, plan: PromptPlan) -> None:
    """Make the official model use ``plan`` instead of drawing its own prompts (its correction clicks are
    still drawn, from the global generator, as ours are from the generator we pass)."""

    def prepare(backbone_out: dict, input: BatchedVideoDatapoint, start_frame_idx: int = 0) -> dict:
        truth = {t: masks.unsqueeze(1) for t, masks in enumerate(input.masks)}
        num_frames = input.num_frames
        backbone_out.update(
            gt_masks_per_frame=truth,
            num_frames=num_frames,
            use_pt_input=bool(plan.clicks),
            init_cond_frames=list(plan.init_frames),
            frames_not_in_init_cond=[t for t in range(num_frames) if t not in plan.init_frames],
            mask_inputs_per_frame={t: truth[t] for t in plan.init_frames if plan.uses_mask(t)},
            point_inputs_per_frame={
                t: {"point_coords": coords, "point_labels": labels}
                for t, (coords, labels) in plan.clicks.items()
            },
            frames_to_add_correction_pt=list(plan.corrected_frames),
        )
        return backbone_out

    official.prepare_prompt_inputs = prepare
