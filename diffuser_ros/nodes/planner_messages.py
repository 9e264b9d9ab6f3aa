"""The planner node's outgoing messages, built from the controller's output and status.

Pure functions of their arguments (no node, no middleware): the ``JointTrajectory`` of a plan and
the ``DiagnosticStatus`` of the controller.
"""

from __future__ import annotations

import math

from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from rclpy.time import Time
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from diffuser_ros.control import ControllerStatus, ControlOutput
from diffuser_ros.nodes.observation import JointStateMapping


def joint_indices(joints: list[str], mapping: JointStateMapping, from_joint_states: bool):
    """Where each of ``joints`` has its position and velocity in the observation, or
    ``(None, None)`` when the observation does not hold them (flat observations, skipped joints)."""
    names, skip = mapping.joint_names, mapping.position_skip
    if not from_joint_states or any(j not in names or names.index(j) < skip for j in joints):
        return None, None
    n_positions = len(names) - skip
    return ([names.index(j) - skip for j in joints],
            [n_positions + names.index(j) for j in joints])


def trajectory(output: ControlOutput, joints: list[str], indices,
               period_ns: int) -> JointTrajectory:
    """The chosen plan of a ``plan`` output as a JointTrajectory of the actuated ``joints``:
    predicted positions and velocities (when ``indices`` locate them), planned actions as
    ``effort``, stamped with the state the plan started from, one point per control period."""
    plan = output.plan
    actions, observations = plan.best_actions, plan.best_observations
    positions, velocities = indices
    msg = JointTrajectory(joint_names=joints)
    msg.header.stamp = Time(nanoseconds=output.stamp_ns or 0).to_msg()
    for k in range(actions.shape[0]):
        t = k * period_ns
        point = JointTrajectoryPoint(
            effort=actions[k].tolist(),
            time_from_start=Duration(sec=t // 1_000_000_000, nanosec=t % 1_000_000_000))
        if positions is not None:
            point.positions = observations[k, positions].tolist()
            point.velocities = observations[k, velocities].tolist()
        msg.points.append(point)
    return msg


def diagnostic_status(status: ControllerStatus, name: str, device: str,
                      node_values: dict) -> DiagnosticStatus:
    """Level, message and values of the controller ``status``; ``node_values`` (lifecycle state,
    preset, ...) come first. Every setting that can change at runtime is listed as in effect."""
    message = status.message
    if message.startswith("waiting for the clock"):
        message += " (use_sim_time is true and no /clock has been received)"
    values = {
        **node_values,
        "plans": status.plans,
        "latency_mean_ms": _ms(status.latency["mean"]),
        "latency_p95_ms": _ms(status.latency["p95"]),
        "latency_max_ms": _ms(status.latency["max"]),
        "action_delay_mean_ms": _ms(status.delay["mean"]),
        "action_delay_p95_ms": _ms(status.delay["p95"]),
        "latency_window": status.latency["window"],
        "deadline_ms": _ms(status.settings.control_period),
        "deadline_misses": status.delay["deadline_misses"],
        "deadline_misses_window": status.delay["window_misses"],
        "warm_start_shift": status.warm_start_shift,
        "state_age_s": "none" if status.state_age is None else f"{status.state_age:.4f}",
        "rejected_states": status.rejected_states,
        "last_rejection": status.last_rejection,
        "resent_states": status.resent_states,
        "safe_actions": status.safe_actions,
        "discarded_plans": status.discarded_plans,
        "last_discard": status.last_discard,
        "late_plans": status.late_plans,
        "prediction_error_std": "none" if status.prediction_error is None else
        f"{status.prediction_error:.4f}",
        "best_value": f"{status.best_value:.4f}",
        "estop": _text(status.estop),
        "resets": status.resets,
        "command_speed": "none" if status.command is None else f"{status.command:.3f}",
        "planned_speed": "none" if status.planned_command is None else
        f"{status.planned_command:.3f}",
        "command_age_s": "none" if status.command_age is None else f"{status.command_age:.3f}",
        "goal_constraints": status.constraints,
    }
    values.update({n: _text(v) for n, v in status.planner_config.to_dict().items()})
    values["device"] = device
    values.update({n: _text(v) for n, v in status.settings.__dict__.items()})
    return DiagnosticStatus(level=bytes([status.level]), name=name, message=message,
                            hardware_id=device,
                            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])


def _text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _ms(seconds: float) -> str:
    return "nan" if math.isnan(seconds) else f"{seconds * 1e3:.2f}"
