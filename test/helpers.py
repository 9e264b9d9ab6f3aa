"""Builders for tiny real models, shared by the tests (imported by conftest)."""

from __future__ import annotations

import numpy as np
import torch

from diffuser_ros.planning import (
    CommandSpec,
    DiffusionPlanner,
    GaussianNormalizer,
    PlannerConfig,
    PlannerSpec,
    build_unet,
    build_value_function,
    make_scheduler,
)
from diffuser_ros.robots import HOPPER, Robot

HOPPER_OBS, HOPPER_ACT = HOPPER.observation_dim, HOPPER.action_dim
TINY_CHANNELS = (8, 16, 32)
TINY_HORIZON = 8


def tiny_normalizer(obs_dim: int = HOPPER_OBS, act_dim: int = HOPPER_ACT) -> GaussianNormalizer:
    rng = np.random.default_rng(1)
    return GaussianNormalizer(rng.normal(size=obs_dim), rng.uniform(0.5, 2.0, obs_dim),
                              rng.normal(size=act_dim) * 0.1, rng.uniform(0.3, 0.8, act_dim))


HOPPER_SPEED_INDEX = HOPPER.speed_index
TINY_COMMAND_SPEC = CommandSpec(reward_width=0.5, discount=0.99, termination_penalty=-100.0,
                                command_mean=2.5, command_std=0.87, speed_range=(1.0, 4.0))


def make_tiny_planner(seed: int = 0, config: PlannerConfig | None = None,
                      value_function=None, horizon: int = TINY_HORIZON,
                      with_command: bool = False, robot: Robot = HOPPER,
                      normalizer: GaussianNormalizer | None = None) -> DiffusionPlanner:
    """A planner of ``robot``'s shape (its observation and action sizes, its env_id) with tiny
    random networks. ``with_command``: also a tiny command value (speeds 1-4 m/s) and the speed
    index. ``normalizer``: the data statistics (default :func:`tiny_normalizer`)."""
    torch.manual_seed(seed)
    obs_dim, act_dim = robot.observation_dim, robot.action_dim
    dim = obs_dim + act_dim
    unet = build_unet(transition_dim=dim, block_out_channels=TINY_CHANNELS)
    value = value_function or build_value_function(transition_dim=dim,
                                                   block_out_channels=TINY_CHANNELS)
    command_value = build_value_function(transition_dim=dim + 1,
                                         block_out_channels=TINY_CHANNELS) if with_command else None
    spec = PlannerSpec(obs_dim, act_dim, horizon, (-1.0,) * act_dim, (1.0,) * act_dim,
                       robot.env_id, speed_index=robot.speed_index)
    config = config or PlannerConfig(n_candidates=4, seed=seed, device="cpu")
    return DiffusionPlanner(unet, value, make_scheduler(),
                            normalizer or tiny_normalizer(obs_dim, act_dim),
                            spec, config,
                            command_value, TINY_COMMAND_SPEC if with_command else None)


class PlannerProxy:
    """A real planner with its ``plan`` wrapped: subclasses override :meth:`plan` to record
    calls, hold them or inject a fault, and everything else reaches the planner."""

    def __init__(self, planner):
        self.planner = planner

    def __getattr__(self, name):
        return getattr(self.planner, name)

    def plan(self, *args, **kwargs):
        return self.planner.plan(*args, **kwargs)
