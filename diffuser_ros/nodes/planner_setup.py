"""What ``planner_node`` loads at ``configure``, apart from ROS (rclpy-free).

The model with the node's planner settings, checked against what the node maps onto it (the joint
mapping's observation size, the action joints); one copy per further plan in flight; the robot
model (start-state prediction) and its tracker where they can be built; and a warm-up plan.
Every refusal is a :class:`StartupError` (or the checkpoint's own ``CheckpointError``) whose
message names the model and the cause.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from diffuser_ros.nodes.observation import JointStateMapping
from diffuser_ros.planning import PlannerConfig, default_model_path, load_planner, set_cpu_threads
from diffuser_ros.robots import DEFAULT_ROBOT, robot_for_env


class StartupError(RuntimeError):
    """The node cannot start; the message says why (logged without a traceback)."""


@dataclass
class LoadedModel:
    planner: object
    path: str
    torch_threads: int       # the threads torch plans with
    tracker: object | None   # for execution 'tracking' (None: unavailable, ``tracker_note`` why)
    robot_model: object | None  # for predict_ahead (None with the tracker, for the same reason)
    tracker_note: str
    spare_planners: list     # copies for the plans in flight beyond the first
    warm_up_s: float         # the first plan, which pays for lazy initialisation


def load_model(settings, config: PlannerConfig, mapping: JointStateMapping,
               plans_in_flight: int = 1, robot_name: str = DEFAULT_ROBOT.name) -> LoadedModel:
    """Load the model named by the node ``settings`` (:class:`PlannerNodeSettings`; '' = the
    shipped model of the robot entry ``robot_name``), once per plan in flight."""
    path = settings.model_path or str(default_model_path(robot_name))
    threads = set_cpu_threads(settings.torch_threads)
    # Load with the checkpoint's architecture, then apply the ROS settings, so a setting the
    # model cannot take is reported as a parameter error, not as a corrupt checkpoint.
    planner = load_planner(path, device=config.device)  # CheckpointError
    try:
        planner.configure(config)
    except ValueError as exc:
        raise StartupError(f"invalid planner parameters for model {path}: {exc}") from None
    spec = planner.spec
    trained_on = robot_for_env(spec.env_id)
    if trained_on is not None and trained_on.name != robot_name:
        raise StartupError(f"model {path} was trained on {spec.env_id} (robot "
                           f"{trained_on.name!r}) but the node drives robot {robot_name!r}; "
                           f"set robot:={trained_on.name} or another model_path")
    from_joints = settings.state_input == "joint_states"
    if from_joints and mapping.observation_dim != spec.observation_dim:
        raise StartupError(
            f"joint mapping gives {mapping.observation_dim} observation values "
            f"({len(mapping.joint_names)} joints, position_skip {mapping.position_skip}) but "
            f"model {path} expects {spec.observation_dim}")
    if len(settings.action_joints) != spec.action_dim:
        raise StartupError(f"action_joints names {len(settings.action_joints)} joints but model "
                           f"{path} has {spec.action_dim} actions")
    tracker, note = None, "it needs joint_states (the robot model's joints)"
    if from_joints:
        try:
            from diffuser_ros.control.tracking import ModelInverseDynamics

            tracker, note = ModelInverseDynamics.for_planner(planner, mapping.position_skip), ""
        except Exception as exc:  # noqa: BLE001 - gymnasium/mujoco missing or env unknown
            note = str(exc)
    spares = [load_planner(path, config=config) for _ in range(plans_in_flight - 1)]
    for spare in spares:
        warm_up(spare)
    return LoadedModel(planner, path, threads, tracker, tracker and tracker.model, note, spares,
                       warm_up(planner))


def warm_up(planner) -> float:
    """A cold plan and a warm-started one (each shape pays its lazy initialisation once: a
    compiled loop is built here, not at the robot's first steps), then a reset: seconds it
    took (not counted in the controller's statistics)."""
    start = time.perf_counter()
    planner.plan(planner.normalizer.observation_mean)
    planner.plan(planner.normalizer.observation_mean)
    planner.reset()
    return time.perf_counter() - start
