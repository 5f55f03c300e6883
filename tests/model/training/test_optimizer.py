"""The optimizer's parameter groups, the learning-rate schedule and gradient clipping of fine-tuning, against
the official recipe (``sam2.1_hiera_b+_MOSE_finetune.yaml``, section ``optim``) and its ``training`` code."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from model import build_sam2
from model.training.freeze import freeze
from model.training.optimizer import build_optimizer, clip_gradients, param_rules, trunk_layer_id
from model.training.schedule import CosineSchedule

CONFIG = "sam2.1_hiera_tiny"
LR, VISION_LR = 5.0e-6, 3.0e-6


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    return build_sam2(CONFIG, device="cpu", image_size=128, apply_postprocessing=False)


def group_of(optimizer: torch.optim.Optimizer) -> dict[str, dict]:
    """Parameter name -> its optimizer group."""
    return {name: group for group in optimizer.param_groups for name in group["param_names"]}


# ------------------------------------------------------------------------------------------ parameter groups
def test_layer_decay_scales_follow_hiera_block_depth(tiny) -> None:
    rules = param_rules(tiny, layer_decay=0.9)
    depth = len(tiny.image_encoder.trunk.blocks)  # 12 for tiny
    trunk = "image_encoder.trunk."
    assert rules[f"{trunk}blocks.{depth - 1}.mlp.layers.0.weight"].lr_scale == pytest.approx(0.9)
    assert rules[f"{trunk}blocks.0.attn.qkv.weight"].lr_scale == pytest.approx(0.9**depth)
    assert rules[f"{trunk}patch_embed.proj.weight"].lr_scale == pytest.approx(0.9 ** (depth + 1))
    assert rules[f"{trunk}pos_embed"].lr_scale == rules[f"{trunk}pos_embed_window"].lr_scale == 1.0
    assert {rules[n].lr_scale for n in rules if not n.startswith(trunk)} == {1.0}
    vision = {n for n, r in rules.items() if r.kind == "vision"}
    assert vision == {n for n in rules if n.startswith("image_encoder.")}
    assert trunk_layer_id(f"{trunk}blocks.3.norm1.weight", depth) == 4


def test_weight_decay_skips_biases_and_layer_norms_only(tiny) -> None:
    rules = param_rules(tiny, weight_decay=0.1)
    assert rules["image_encoder.trunk.blocks.0.norm1.weight"].weight_decay == 0.0  # nn.LayerNorm
    assert rules["memory_attention.layers.0.norm2.weight"].weight_decay == 0.0
    assert rules["sam_mask_decoder.output_upscaling.1.weight"].weight_decay == 0.1  # LayerNorm2d keeps it
    assert rules["sam_mask_decoder.output_upscaling.1.bias"].weight_decay == 0.0
    assert rules["no_mem_embed"].weight_decay == 0.1
    assert all(rules[n].weight_decay == 0.0 for n in rules if n.endswith(".bias"))


def test_optimizer_starts_at_peak_times_scale_and_leaves_frozen_parameters_out(tiny) -> None:
    freeze(tiny, "image-encoder")
    try:
        optimizer = build_optimizer(tiny, lr=LR, vision_lr=VISION_LR)
    finally:
        freeze(tiny, "none")
    names = [n for g in optimizer.param_groups for n in g["param_names"]]
    trainable = [n for n, _ in tiny.named_parameters() if not n.startswith("image_encoder.")]
    assert sorted(names) == sorted(trainable)
    assert {g["kind"] for g in optimizer.param_groups} == {"base"}
    assert all(g["lr"] == LR * g["lr_scale"] for g in optimizer.param_groups)


def test_optimizer_refuses_a_model_with_nothing_to_train(tiny) -> None:
    tiny.requires_grad_(False)
    try:
        with pytest.raises(ValueError, match="freeze mode"):
            build_optimizer(tiny)
    finally:
        tiny.requires_grad_(True)


# ------------------------------------------------------------------------------------------ schedule
def test_cosine_schedule_runs_from_peak_to_a_tenth(tiny) -> None:
    optimizer = build_optimizer(tiny, lr=LR, vision_lr=VISION_LR)
    schedule = CosineSchedule(optimizer, total_steps=100)
    assert schedule.lr_at(0) == pytest.approx(LR, rel=1e-12)
    assert schedule.lr_at(50) == pytest.approx(0.55 * LR, rel=1e-12)
    assert schedule.lr_at(100) == schedule.lr_at(1000) == pytest.approx(0.1 * LR, rel=1e-12)
    assert schedule.lr_at(50, "vision") == pytest.approx(0.55 * VISION_LR, rel=1e-12)
    schedule.step(25)
    expected = 0.1 + 0.45 * (1 + math.cos(math.pi / 4))
    for group in optimizer.param_groups:
        assert group["lr"] == pytest.approx(group["peak_lr"] * expected * group["lr_scale"], rel=1e-12)


def test_warm_up_ramps_linearly_into_the_cosine(tiny) -> None:
    optimizer = build_optimizer(tiny, lr=LR, vision_lr=VISION_LR)
    schedule = CosineSchedule(optimizer, total_steps=100, warmup_steps=10)
    plain = CosineSchedule(build_optimizer(tiny, lr=LR, vision_lr=VISION_LR), total_steps=100)
    assert schedule.lr_at(0) == pytest.approx(0.1 * LR, rel=1e-12)
    assert schedule.lr_at(4) == pytest.approx(0.5 * plain.lr_at(4), rel=1e-12)
    assert schedule.lr_at(9) == plain.lr_at(9)
    assert schedule.lr_at(10) == plain.lr_at(10)
    first = optimizer.param_groups[0]
    assert first["lr"] == pytest.approx(0.1 * first["peak_lr"] * first["lr_scale"], rel=1e-12)


def test_schedule_state_resumes_the_learning_rates(tiny) -> None:
    optimizer = build_optimizer(tiny, lr=LR, vision_lr=VISION_LR)
    schedule = CosineSchedule(optimizer, total_steps=100, warmup_steps=5)
    schedule.step(37)
    saved = schedule.state_dict()
    resumed = CosineSchedule(build_optimizer(tiny, lr=LR, vision_lr=VISION_LR), total_steps=1)
    resumed.load_state_dict(saved)
    assert resumed.state_dict() == saved
    assert [g["lr"] for g in resumed.optimizer.param_groups] == [g["lr"] for g in optimizer.param_groups]


def test_schedule_rejects_unknown_kinds_and_foreign_optimizers(tiny) -> None:
    schedule = CosineSchedule(build_optimizer(tiny), total_steps=10)
    with pytest.raises(ValueError, match="'base', 'vision'"):
        schedule.lr_at(0, "text")
    with pytest.raises(ValueError, match="build_optimizer"):
        CosineSchedule(torch.optim.AdamW(tiny.parameters()), total_steps=10)


# ------------------------------------------------------------------------------------------ clipping
def test_clip_gradients_bounds_the_global_norm() -> None:
    layer = torch.nn.Linear(4, 3)
    layer.weight.grad = torch.full_like(layer.weight, 2.0)
    layer.bias.grad = torch.full_like(layer.bias, -1.0)
    total = clip_gradients(layer, max_norm=0.1)
    assert float(total) == pytest.approx(math.sqrt(12 * 4 + 3), rel=1e-6)
    clipped = torch.cat([layer.weight.grad.flatten(), layer.bias.grad]).norm()
    assert float(clipped) == pytest.approx(0.1, rel=1e-4)
    assert clip_gradients(layer, max_norm=None) is None


# ------------------------------------------------------------------------------------------ official parity
class RecipeScheduler:
    """fvcore's CosineParamScheduler / ConstantParamScheduler formulas (fvcore is not installed), for the
    official optimizer built from the recipe file."""

    def __init__(self, start_value: float = 0.0, end_value: float = 0.0, value: float | None = None) -> None:
        self.start, self.end, self.value = start_value, end_value, value

    def __call__(self, where: float) -> float:
        if self.value is not None:
            return self.value
        return self.end + 0.5 * (self.start - self.end) * (1 + math.cos(math.pi * where))


def official_recipe_optim():
    """The recipe's ``optim`` section with its fvcore schedulers swapped for `RecipeScheduler`."""
    import sam2
    from omegaconf import OmegaConf

    path = Path(sam2.__file__).parent / "configs/sam2.1_training/sam2.1_hiera_b+_MOSE_finetune.yaml"
    optim = OmegaConf.load(path).trainer.optim
    target = f"{__name__}.RecipeScheduler"
    for entry, peak in zip(optim.options.lr, (LR, VISION_LR), strict=True):
        entry.scheduler = {"_target_": target, "start_value": peak, "end_value": peak / 10}
    for entry in optim.options.weight_decay:
        entry.scheduler._target_ = target
    return optim


@pytest.mark.parity
def test_trunk_layer_ids_match_official_hiera() -> None:
    from tests.support.official_ref import build_official

    trunk = build_official(CONFIG, image_size=128).image_encoder.trunk
    depth = trunk.get_num_layers()
    for name, _ in trunk.named_parameters():
        full = f"image_encoder.trunk.{name}"
        assert trunk_layer_id(full, depth) == trunk.get_layer_id(full), full


@pytest.mark.parity
@pytest.mark.parametrize("mode", ["none", "image-encoder"])
def test_learning_rates_and_weight_decay_match_official_recipe(tiny, mode: str) -> None:
    from hydra.utils import instantiate
    from training.optimizer import construct_optimizer

    from tests.support.official_ref import build_official

    official = build_official(CONFIG, image_size=128)
    optim = official_recipe_optim()
    reference = construct_optimizer(official, optim.optimizer, optim.options, optim.param_group_modifiers)
    freeze(tiny, mode)
    try:
        ours = build_optimizer(tiny, lr=LR, vision_lr=VISION_LR)
    finally:
        freeze(tiny, "none")
    schedule = CosineSchedule(ours, total_steps=40)
    theirs_by_param = {p: g for g in reference.optimizer.param_groups for p in g["params"]}
    names = dict(official.named_parameters())
    assert set(names) == {n for n, _ in tiny.named_parameters()}
    ours_by_name = group_of(ours)
    if mode == "image-encoder":
        assert set(ours_by_name) == {n for n in names if not n.startswith("image_encoder.")}
    for step in (0, 13, 39):
        reference.step_schedulers(step / 40, step)
        schedule.step(step)
        for name, group in ours_by_name.items():
            theirs = theirs_by_param[names[name]]
            assert group["lr"] == pytest.approx(theirs["lr"], rel=1e-12), (name, step)
            assert group["weight_decay"] == theirs["weight_decay"], name
    clipper = instantiate(optim.gradient_clip)
    assert (clipper.max_norm, clipper.norm_type) == (0.1, 2)


@pytest.mark.parity
def test_clip_gradients_matches_official_clipper() -> None:
    from training.optimizer import GradientClipper

    gen = torch.Generator().manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        a.grad = torch.randn(a.shape, generator=gen)
        b.grad = a.grad.clone()
    GradientClipper(max_norm=0.1, norm_type=2)(models[0])
    clip_gradients(models[1])
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.equal(a.grad, b.grad)
