"""Shared fixtures: real diffusers models in tiny configurations (random weights).

ROS tests get a per-run ``ROS_DOMAIN_ID`` and loopback-only discovery, set here before any
test imports rclpy, so parallel runs and other machines never see each other's traffic.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
# Tiny models run faster single-threaded, and two pytest workers share two cores.
torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).parent))

from helpers import HOPPER_ACT, HOPPER_OBS, TINY_CHANNELS, TINY_HORIZON, make_tiny_planner  # noqa: E402

from diffuser_ros.planning import save_planner, write_command_value  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A Hopper-shaped (3 actions + 11 observations) planner folder with tiny random models."""
    planner = make_tiny_planner(seed=0)
    path = tmp_path_factory.mktemp("models") / "tiny_hopper"
    save_planner(path, planner.unet, planner.value_function, planner.schedule.scheduler,
                 planner.normalizer, planner.spec, planner.config)
    return path


@pytest.fixture(scope="session")
def tiny_walker2d_model_dir(tmp_path_factory) -> Path:
    """A Walker2d-shaped (6 actions + 17 observations, env Walker2d-v5) planner folder with tiny
    random models."""
    from diffuser_ros.robots import WALKER2D

    planner = make_tiny_planner(seed=0, robot=WALKER2D)
    path = tmp_path_factory.mktemp("models") / "tiny_walker2d"
    save_planner(path, planner.unet, planner.value_function, planner.schedule.scheduler,
                 planner.normalizer, planner.spec, planner.config)
    return path


@pytest.fixture(scope="session")
def tiny_command_model_dir(tmp_path_factory) -> Path:
    """``tiny_model_dir`` plus a tiny command value (commandable speeds 1-4 m/s)."""
    planner = make_tiny_planner(seed=0, with_command=True)
    path = tmp_path_factory.mktemp("models") / "tiny_hopper_command"
    save_planner(path, planner.unet, planner.value_function, planner.schedule.scheduler,
                 planner.normalizer, planner.spec, planner.config)
    write_command_value(path, planner.command_value, planner.command_spec,
                        planner.spec.speed_index)
    return path


@pytest.fixture
def tiny_planner():
    return make_tiny_planner(seed=0)


@pytest.fixture
def hopper_observation() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.normal(size=HOPPER_OBS) * 0.1).astype(np.float32).astype(np.float64)


__all__ = ["HOPPER_ACT", "HOPPER_OBS", "TINY_CHANNELS", "TINY_HORIZON"]
