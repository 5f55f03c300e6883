"""AdamW with the parameter groups of the official fine-tuning recipe, and gradient clipping.

The recipe (``sam2.1_training/sam2.1_hiera_b+_MOSE_finetune.yaml``, section ``optim``) gives every
parameter three numbers:

- a peak learning rate: ``vision_lr`` for the image encoder (``image_encoder.*``), ``lr`` for the rest;
- a layer-decay scale on it: a Hiera block ``i`` of ``L`` gets ``decay ** (L - i)``, the stem (patch
  embedding) ``decay ** (L + 1)``, the position embeddings 1.0; everything outside the trunk 1.0;
- a weight decay: 0.0 for biases and the parameters of ``nn.LayerNorm`` modules, ``weight_decay`` otherwise.

Parameters that share all three go into one AdamW group. A group also carries ``kind`` ("base" or
"vision"), ``peak_lr`` and ``lr_scale``: the schedule (`model.training.schedule`) sets each step's
``lr = schedule(peak_lr) * lr_scale``, the way the official optimizer multiplies the scheduled value by the
layer-decay scale. Frozen parameters (``requires_grad`` False) are left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

VISION_PREFIX = "image_encoder."
"""Parameters under this prefix follow the vision learning rate."""

TRUNK_PREFIX = "image_encoder.trunk."
"""Parameters under this prefix (the Hiera trunk) get a layer-decay scale."""

_BLOCK_INDEX = re.compile(r"blocks\.(\d+)\.")


@dataclass(frozen=True)
class ParamRule:
    """How one parameter is optimised.

    ``kind``: "vision" (image encoder, follows ``vision_lr``) or "base" (follows ``lr``);
    ``lr_scale``: the layer-decay factor applied to the scheduled learning rate;
    ``weight_decay``: AdamW's decoupled weight decay for this parameter.
    """

    kind: str
    lr_scale: float
    weight_decay: float


def trunk_layer_id(name: str, num_blocks: int) -> int:
    """Depth of a Hiera trunk parameter for layer-wise decay (the ids of BEiT, as the official Hiera uses).

    0 for the stem (patch and position embeddings), ``i + 1`` for block ``i``, ``num_blocks + 1`` for
    anything else (relative position tables included). ``name`` may be the full model name.
    """
    if "rel_pos" in name:
        return num_blocks + 1
    if "pos_embed" in name or "patch_embed" in name:
        return 0
    block = _BLOCK_INDEX.search(name)
    if block is not None:
        return int(block.group(1)) + 1
    return num_blocks + 1


def trunk_lr_scale(name: str, num_blocks: int, layer_decay: float) -> float:
    """Learning-rate scale of a trunk parameter: ``layer_decay ** (num_blocks + 1 - layer_id)``.

    The deepest block trains at ``layer_decay``, each shallower one a factor ``layer_decay`` slower; the
    position embeddings are exempt (scale 1.0), as the recipe's ``*pos_embed*`` override says.
    """
    if "pos_embed" in name:
        return 1.0
    return layer_decay ** (num_blocks + 1 - trunk_layer_id(name, num_blocks))


def no_weight_decay_names(model: nn.Module) -> set[str]:
    """Names of the parameters trained without weight decay: every ``*bias*`` and those of ``nn.LayerNorm``.

    The class must be ``nn.LayerNorm`` itself, not a look-alike: the channel LayerNorm2d of the convolution
    stacks keeps its weight decay on its ``weight``, as in the official recipe.
    """
    names = {name for name, _ in model.named_parameters() if "bias" in name}
    for module_name, module in model.named_modules():
        if type(module) is nn.LayerNorm:
            prefix = f"{module_name}." if module_name else ""
            names.update(prefix + name for name, _ in module.named_parameters(recurse=False))
    return names


def param_rules(
    model: nn.Module, weight_decay: float = 0.1, layer_decay: float = 0.9
) -> dict[str, ParamRule]:
    """The rule of every trainable parameter of a SAM 2 network, by name (in ``named_parameters`` order)."""
    num_blocks = len(model.image_encoder.trunk.blocks)
    no_decay = no_weight_decay_names(model)
    rules = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        kind = "vision" if name.startswith(VISION_PREFIX) else "base"
        scale = trunk_lr_scale(name, num_blocks, layer_decay) if name.startswith(TRUNK_PREFIX) else 1.0
        rules[name] = ParamRule(kind, scale, 0.0 if name in no_decay else weight_decay)
    return rules


def build_optimizer(
    model: nn.Module,
    lr: float = 5.0e-6,
    vision_lr: float = 3.0e-6,
    weight_decay: float = 0.1,
    layer_decay: float = 0.9,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of ``model``, grouped by `param_rules`.

    Arguments:
      model: a `SAM2Model` (names as in the official checkpoints); freeze parts of it first.
      lr, vision_lr: peak learning rates of the rest and of the image encoder (defaults: the MOSE
        fine-tuning recipe's ``base_lr`` and ``vision_lr``).
      weight_decay, layer_decay: the recipe's 0.1 and 0.9.
      betas, eps: AdamW's (PyTorch defaults, as the recipe uses).

    Returns:
      The optimizer, its groups ordered by first appearance in ``model.named_parameters()`` (stable across
      runs, so a saved optimizer state loads back). Each group's ``lr`` starts at ``peak_lr * lr_scale``.
    """
    rules = param_rules(model, weight_decay, layer_decay)
    if not rules:
        raise ValueError("No parameter of the model requires gradients: pick a freeze mode that trains some.")
    peaks = {"base": lr, "vision": vision_lr}
    params = dict(model.named_parameters())
    groups: dict[ParamRule, dict] = {}
    for name, rule in rules.items():
        group = groups.get(rule)
        if group is None:
            group = groups[rule] = {
                "params": [],
                "param_names": [],
                "kind": rule.kind,
                "peak_lr": peaks[rule.kind],
                "lr_scale": rule.lr_scale,
                "lr": peaks[rule.kind] * rule.lr_scale,
                "weight_decay": rule.weight_decay,
            }
        group["params"].append(params[name])
        group["param_names"].append(name)
    return torch.optim.AdamW(list(groups.values()), lr=lr, betas=betas, eps=eps)


def clip_gradients(
    parameters: nn.Module | Iterable[torch.Tensor], max_norm: float | None = 0.1, norm_type: float = 2.0
) -> torch.Tensor | None:
    """Scale all gradients together so their ``norm_type`` norm is at most ``max_norm`` (the recipe: 0.1, 2).

    With a ``GradScaler``, unscale the optimizer's gradients first. Under DDP the gradients are already
    averaged over ranks, so every rank clips alike. ``max_norm`` None clips nothing.

    Returns:
      The total norm before clipping (None when nothing is clipped), handy for logging.
    """
    if max_norm is None:
        return None
    if isinstance(parameters, nn.Module):
        parameters = parameters.parameters()
    return nn.utils.clip_grad_norm_(parameters, max_norm=float(max_norm), norm_type=norm_type)
