"""The eight official SAM 2 / SAM 2.1 configurations as plain dataclasses.

Only what differs between sizes and versions is a field; everything the official configs share lives
in the component constructors' defaults. Each size is one function that spells its trunk's
hyper-parameters (`_hiera_tiny` ...); `CONFIGS` collects them for both versions. ``resolve_config`` accepts
our names (``"sam2.1_hiera_tiny"``), the official config names (``"configs/sam2.1/sam2.1_hiera_t.yaml"``,
``"sam2_hiera_t.yaml"``) and a ``SAM2Config`` instance.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class SAM2Config:
    """Hyper-parameters of one SAM 2 model.

    ``version`` is ``"2"`` or ``"2.1"``; SAM 2.1 adds ``no_obj_embed_spatial`` and a projected, signed
    temporal position for object pointers. ``image_size`` may be lowered (256, 512) for fast tests.
    """

    name: str
    version: str
    embed_dim: int
    num_heads: int
    stages: tuple[int, int, int, int]
    global_att_blocks: tuple[int, ...]
    window_spec: tuple[int, int, int, int] = (8, 4, 14, 7)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (14, 14)
    image_size: int = 1024
    checkpoint_filename: str = ""
    hf_id: str = ""
    official_config: str = ""

    @property
    def backbone_channel_list(self) -> tuple[int, int, int, int]:
        """Trunk output widths, deepest stage first (what the FPN neck expects)."""
        c = self.embed_dim
        return (8 * c, 4 * c, 2 * c, c)

    @property
    def is_sam21(self) -> bool:
        return self.version == "2.1"

    def with_image_size(self, image_size: int) -> SAM2Config:
        """The same model at another input resolution (must be a multiple of 32 * window sizes)."""
        return dataclasses.replace(self, image_size=image_size)


def _sam2_config(
    version: str,
    size: str,
    official_short: str,
    *,
    embed_dim: int,
    num_heads: int,
    stages: tuple[int, int, int, int],
    global_att_blocks: tuple[int, ...],
    window_spec: tuple[int, int, int, int],
    window_pos_embed_bkg_spatial_size: tuple[int, int],
) -> SAM2Config:
    """One official model: the trunk's hyper-parameters plus the names the official release gives it."""
    prefix = "sam2" if version == "2" else "sam2.1"
    name = f"{prefix}_hiera_{size}"
    return SAM2Config(
        name=name,
        version=version,
        embed_dim=embed_dim,
        num_heads=num_heads,
        stages=stages,
        global_att_blocks=global_att_blocks,
        window_spec=window_spec,
        window_pos_embed_bkg_spatial_size=window_pos_embed_bkg_spatial_size,
        checkpoint_filename=f"{name}.pt",
        hf_id=f"facebook/{prefix}-hiera-{size.replace('_', '-')}",
        official_config=f"configs/{prefix}/{prefix}_hiera_{official_short}.yaml",
    )


def _hiera_tiny(version: str) -> SAM2Config:
    return _sam2_config(
        version,
        size="tiny",
        official_short="t",
        embed_dim=96,
        num_heads=1,
        stages=(1, 2, 7, 2),
        global_att_blocks=(5, 7, 9),
        window_spec=(8, 4, 14, 7),
        window_pos_embed_bkg_spatial_size=(7, 7),
    )


def _hiera_small(version: str) -> SAM2Config:
    return _sam2_config(
        version,
        size="small",
        official_short="s",
        embed_dim=96,
        num_heads=1,
        stages=(1, 2, 11, 2),
        global_att_blocks=(7, 10, 13),
        window_spec=(8, 4, 14, 7),
        window_pos_embed_bkg_spatial_size=(7, 7),
    )


def _hiera_base_plus(version: str) -> SAM2Config:
    return _sam2_config(
        version,
        size="base_plus",
        official_short="b+",
        embed_dim=112,
        num_heads=2,
        stages=(2, 3, 16, 3),
        global_att_blocks=(12, 16, 20),
        window_spec=(8, 4, 14, 7),
        window_pos_embed_bkg_spatial_size=(14, 14),
    )


def _hiera_large(version: str) -> SAM2Config:
    return _sam2_config(
        version,
        size="large",
        official_short="l",
        embed_dim=144,
        num_heads=2,
        stages=(2, 6, 36, 4),
        global_att_blocks=(23, 33, 43),
        window_spec=(8, 4, 16, 8),
        window_pos_embed_bkg_spatial_size=(7, 7),
    )


# SAM 2.1 retrained the same four trunks: the sizes are shared, the version changes the memory path.
CONFIGS: dict[str, SAM2Config] = {
    cfg.name: cfg
    for version in ("2", "2.1")
    for cfg in (_hiera_tiny(version), _hiera_small(version), _hiera_base_plus(version), _hiera_large(version))
}
"""Our config name -> config, for the eight official models."""


def _aliases() -> dict[str, str]:
    table: dict[str, str] = {}
    for name, cfg in CONFIGS.items():
        official = cfg.official_config  # configs/sam2.1/sam2.1_hiera_t.yaml
        base = official.rsplit("/", 1)[1]  # sam2.1_hiera_t.yaml
        for alias in (name, official, base, base[: -len(".yaml")], f"{name}.yaml", cfg.hf_id):
            table[alias] = name
        # The old SAM 2 names resolve from the package root too ("sam2_hiera_t.yaml").
        table[f"sam2/{base}"] = name
    return table


CONFIG_ALIASES: dict[str, str] = _aliases()


def resolve_config(config: str | SAM2Config) -> SAM2Config:
    """Return the config for one of our names, an official config name or a Hugging Face id."""
    if isinstance(config, SAM2Config):
        return config
    key = str(config).strip()
    if key.startswith("//"):  # hydra's absolute form "//configs/..."
        key = key[2:]
    if key in CONFIG_ALIASES:
        return CONFIGS[CONFIG_ALIASES[key]]
    # Accept paths that end in an official config name, e.g. "sam2/configs/sam2.1/sam2.1_hiera_t.yaml".
    for alias, name in CONFIG_ALIASES.items():
        if alias.endswith(".yaml") and "/" in alias and key.endswith(alias):
            return CONFIGS[name]
    known = ", ".join(sorted(CONFIGS))
    raise ValueError(
        f"unknown SAM 2 config {config!r}. Use one of {known}, an official config name such as "
        "'configs/sam2.1/sam2.1_hiera_t.yaml', or a Hugging Face id such as 'facebook/sam2.1-hiera-tiny'."
    )
