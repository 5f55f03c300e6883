"""The official ``hydra_overrides_extra`` strings (``"++model.<key>=<value>"``) that our builders understand.

The official builders hand these to Hydra, which can change any field of the yaml config. Ours are plain
Python, so each builder names the keys it can honour and refuses the others, rather than dropping them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from torch import nn

OverrideValue = bool | int | float

_DECODER = "sam_mask_decoder_extra_args."

MODEL_OVERRIDES: dict[str, type] = {
    "image_size": int,
    # The official "postprocessing" switches of the mask decoder (see `compose_sam2`).
    f"{_DECODER}dynamic_multimask_via_stability": bool,
    f"{_DECODER}dynamic_multimask_stability_delta": float,
    f"{_DECODER}dynamic_multimask_stability_thresh": float,
}
"""What ``build_sam2`` understands: the input resolution and the mask decoder's stability fallback."""

PREDICTOR_OVERRIDES: dict[str, type] = {
    "fill_hole_area": int,
    "non_overlap_masks": bool,
    "clear_non_cond_mem_around_input": bool,
    "add_all_frames_to_correct_as_cond": bool,
    "binarize_mask_from_pts_for_mem_enc": bool,
}
"""What ``build_sam2_video_predictor`` understands on top of `MODEL_OVERRIDES`: the predictor's flags."""

VIDEO_OVERRIDES: dict[str, type] = {**MODEL_OVERRIDES, **PREDICTOR_OVERRIDES}

_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def override_key(item: str) -> str:
    """The config key of one override: ``"++model.fill_hole_area=8"`` -> ``"fill_hole_area"``."""
    return item.lstrip("+").partition("=")[0].strip().removeprefix("model.")


def parse_hydra_overrides(
    items: Iterable[str], supported: Mapping[str, type], builder: str
) -> dict[str, OverrideValue]:
    """Parse official override strings into ``{key: value}``, the later of two equal keys winning.

    Arguments:
      items: strings such as ``"++model.image_size=512"`` or ``"++model.non_overlap_masks=true"``.
      supported: key -> type (``bool``, ``int`` or ``float``) of the overrides the caller can apply.
      builder: the caller's name, for the messages.

    Returns:
      the values, converted to their types. Raises ValueError naming the override when its key is not in
      ``supported`` or its value does not read as the key's type.
    """
    if isinstance(items, str):
        raise ValueError(f"{builder}: hydra_overrides_extra is a list of strings, not the string {items!r}")
    parsed: dict[str, OverrideValue] = {}
    for item in items:
        key = override_key(item)
        if "=" not in item or key not in supported:
            raise ValueError(_unsupported_message(item, key, supported, builder))
        parsed[key] = _convert(item, item.partition("=")[2].strip(), supported[key])
    return parsed


def _convert(item: str, value: str, kind: type) -> OverrideValue:
    if kind is bool:
        if value.lower() not in _BOOLS:
            raise ValueError(f"the override {item!r} needs true or false, not {value!r}")
        return _BOOLS[value.lower()]
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"the override {item!r} needs a number ({kind.__name__}), not {value!r}") from None


def _unsupported_message(item: str, key: str, supported: Mapping[str, type], builder: str) -> str:
    names = ", ".join(f"'++model.{name}=<{kind.__name__}>'" for name, kind in supported.items())
    message = f"{builder} cannot apply the override {item!r}. It understands {names}."
    if key in PREDICTOR_OVERRIDES:
        message += f" '{key}' is an option of the video predictor: pass it to build_sam2_video_predictor."
    else:
        message += " Pass other options as keyword arguments instead."
    return message


def set_decoder_overrides(mask_decoder: nn.Module, overrides: Mapping[str, OverrideValue]) -> None:
    """Set the ``sam_mask_decoder_extra_args.*`` overrides on the network's mask decoder."""
    for key, value in overrides.items():
        if key.startswith(_DECODER):
            setattr(mask_decoder, key.removeprefix(_DECODER), value)
