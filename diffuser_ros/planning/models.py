"""The temporal U-Net and the value function, as diffusers ``UNet1DModel`` configurations.

The defaults reproduce the published Hopper checkpoint exactly (the layout the diffusers
conversion script builds: ``unet/`` and ``value_function/``), so a user who has that checkpoint
on disk loads it with the same code. ``block_out_channels`` may be narrowed (e.g. 16/32/64/128)
for smaller, faster models; everything else stays Diffuser's architecture.
"""

from __future__ import annotations

from diffusers import UNet1DModel

HOPPER_TRANSITION_DIM = 14  # 3 actions + 11 observations
HOPPER_CHANNELS = (32, 64, 128, 256)


def _common(transition_dim: int, block_out_channels: tuple[int, ...]) -> dict:
    return {
        "in_channels": transition_dim,
        "out_channels": transition_dim,
        "extra_in_channels": 0,
        "block_out_channels": tuple(block_out_channels),
        "down_block_types": ("DownResnetBlock1D",) * len(block_out_channels),
        "layers_per_block": 1,
        "time_embedding_type": "positional",
        "flip_sin_to_cos": False,
        "freq_shift": 1,
        "use_timestep_embedding": True,
        "norm_num_groups": 8,
        "act_fn": "mish",
        "sample_size": 65536,
    }


def unet_config(transition_dim: int = HOPPER_TRANSITION_DIM,
                block_out_channels: tuple[int, ...] = HOPPER_CHANNELS) -> dict:
    """Config of Diffuser's temporal U-Net (x0 denoiser)."""
    config = _common(transition_dim, block_out_channels)
    config.update(
        up_block_types=("UpResnetBlock1D",) * (len(block_out_channels) - 1),
        mid_block_type="MidResTemporalBlock1D",
        out_block_type="OutConv1DBlock",
        downsample_each_block=False,
    )
    return config


def value_function_config(transition_dim: int = HOPPER_TRANSITION_DIM,
                          block_out_channels: tuple[int, ...] = HOPPER_CHANNELS) -> dict:
    """Config of Diffuser's value function (the U-Net's down path + a value head)."""
    config = _common(transition_dim, block_out_channels)
    config.update(
        up_block_types=(),
        mid_block_type="ValueFunctionMidBlock1D",
        out_block_type="ValueFunction",
        downsample_each_block=True,
    )
    return config


def build_unet(**kwargs) -> UNet1DModel:
    return UNet1DModel(**unet_config(**kwargs))


def build_value_function(**kwargs) -> UNet1DModel:
    return UNet1DModel(**value_function_config(**kwargs))


def check_horizon(horizon: int, block_out_channels: tuple[int, ...]) -> None:
    """Raise ``ValueError`` unless the U-Net's down/up-sampling maps ``horizon`` back to itself."""
    factor = 2 ** (len(block_out_channels) - 1)
    if horizon <= 0 or horizon % factor:
        raise ValueError(f"horizon {horizon} must be a positive multiple of {factor} "
                         f"({len(block_out_channels) - 1} downsamplings)")
