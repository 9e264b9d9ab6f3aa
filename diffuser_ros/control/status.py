"""``ControllerStatus``: a snapshot of the controller for diagnostics and tests (rclpy-free)."""

from __future__ import annotations

import math
from dataclasses import dataclass

OK, WARN, ERROR = 0, 1, 2  # health levels (the values of diagnostic_msgs/DiagnosticStatus)


@dataclass
class Counters:
    """What the controller counts between resets of the process."""

    rejected: int = 0          # states refused (with last_rejection, why)
    last_rejection: str = ""
    resent: int = 0            # states sent again by the robot
    late: int = 0              # plans delivered after a newer one (dropped)
    best_value: float = math.nan


@dataclass
class ControllerStatus:
    active: bool
    estop: bool
    level: int
    message: str
    plans: int
    latency: dict
    delay: dict
    rejected_states: int
    last_rejection: str
    resent_states: int
    safe_actions: int
    discarded_plans: int       # plans or actions that must not go out (safe action instead)
    last_discard: str          # why the last one was discarded
    late_plans: int            # plans delivered after a newer one, dropped (plans in flight)
    prediction_error: float | None  # predict_ahead: RMS error, data standard deviations
    resets: int
    state_age: float | None
    best_value: float
    command: float | None          # the speed command in effect (None: none)
    planned_command: float | None  # the speed the last plan was for (with command_gain)
    command_age: float | None      # seconds since it was received
    constraints: int               # constrained trajectory entries (a goal) in effect
    settings: object
    planner_config: object
    warm_start_shift: int


def health(*, active: bool, estop: bool, safe_reason: str, clock_started: bool,
           state_age: float | None, delay: dict, control_period: float) -> tuple[int, str]:
    """The level and one-line message of the controller's state, the most severe first."""
    if not active:
        return WARN, "inactive: not planning"
    if estop:
        return WARN, "e-stop engaged: publishing the safe action"
    if safe_reason:
        return WARN, f"{safe_reason}: publishing the safe action"
    if not clock_started:
        return WARN, "waiting for the clock to start"
    if state_age is None:
        return WARN, "waiting for the first state"
    if delay["window"] and delay["mean"] > control_period:
        return WARN, (f"actions go out {delay['mean'] * 1e3:.1f} ms after their state (mean), "
                      f"more than control_period ({control_period * 1e3:.1f} ms)")
    return OK, "planning"


def snapshot(controller, now: int, state_age: float | None, counters: Counters, output,
             between, latency: dict, delay: dict) -> ControllerStatus:
    """The :class:`ControllerStatus` of a controller and its parts."""
    settings = controller.settings
    level, message = health(active=controller.active, estop=controller.estop,
                            safe_reason=output.safe_reason, clock_started=now != 0,
                            state_age=state_age, delay=delay,
                            control_period=settings.control_period)
    targets, timeout = controller.targets, settings.command_timeout
    command = targets.command(now, timeout)
    return ControllerStatus(
        active=controller.active, estop=controller.estop, level=level, message=message,
        plans=latency["count"], latency=latency, delay=delay,
        rejected_states=counters.rejected, last_rejection=counters.last_rejection,
        resent_states=counters.resent, safe_actions=output.safe_count,
        discarded_plans=output.discarded, last_discard=output.last_discard,
        late_plans=counters.late, prediction_error=controller.prediction_error.mean,
        resets=between.resets, state_age=state_age,
        best_value=counters.best_value, command=command,
        planned_command=targets.planned_speed if command is not None else None,
        command_age=targets.command_age(now, timeout),
        constraints=targets.constrained_entries, settings=settings,
        planner_config=controller.planner.config, warm_start_shift=between.shift)
