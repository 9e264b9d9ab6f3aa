"""Value-guided diffusion planning (Janner et al., 2022) on diffusers building blocks.

Nothing in this package imports rclpy: it is the reusable, testable core that the ROS nodes,
the training pipeline and the evaluation scripts share.
"""

from diffuser_ros.planning.checkpoint import (
    CheckpointError,
    default_model_path,
    load_planner,
    model_defaults,
    model_env_id,
    save_planner,
    write_command_value,
)
from diffuser_ros.planning.config import DEFAULT_PRESET, PRESETS, PlannerConfig, preset
from diffuser_ros.planning.device import default_cpu_threads, resolve_device, set_cpu_threads
from diffuser_ros.planning.models import (
    build_unet,
    build_value_function,
    unet_config,
    value_function_config,
)
from diffuser_ros.planning.normalizer import GaussianNormalizer
from diffuser_ros.planning.objective import CommandSpec, Objective
from diffuser_ros.planning.planner import DiffusionPlanner, Plan, PlannerSpec, PlanningError
from diffuser_ros.planning.schedule import DiffusionSchedule, make_scheduler

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "CheckpointError",
    "CommandSpec",
    "DiffusionPlanner",
    "DiffusionSchedule",
    "GaussianNormalizer",
    "Objective",
    "Plan",
    "PlannerConfig",
    "PlannerSpec",
    "PlanningError",
    "build_unet",
    "default_model_path",
    "model_env_id",
    "build_value_function",
    "load_planner",
    "model_defaults",
    "make_scheduler",
    "preset",
    "resolve_device",
    "set_cpu_threads",
    "default_cpu_threads",
    "save_planner",
    "write_command_value",
    "unet_config",
    "value_function_config",
]
