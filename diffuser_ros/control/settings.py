"""``ControllerSettings``: timing, safety and execution of the receding-horizon loop (rclpy-free).

Declared with :func:`~diffuser_ros.settings.setting`, so the node's ROS parameters, the CLI flags
and the docs tables read these definitions.
"""

from __future__ import annotations

from dataclasses import dataclass

from diffuser_ros.settings import check_fields, setting

EXECUTIONS = ("hold", "time_indexed", "tracking")


@dataclass(frozen=True)
class ControllerSettings:
    """Timing, safety and execution of the receding-horizon loop (ROS parameters of the node)."""

    state_timeout: float = setting(
        0.5, "A state older than this (stamp vs the node clock; simulation time with "
        "use_sim_time) or none for this long makes the controller publish the safe action "
        "(zeros).", range=(1e-3, 3600.0), unit="s")
    control_period: float = setting(
        0.008, "Control period: the safety tick's rate, the deadline an action's delay is "
        "counted against, and the step of time-indexed execution (Hopper-v5: 0.008).",
        range=(1e-4, 10.0), unit="s")
    execution: str = setting(
        "hold", "Between plans: 'hold' = publish each plan's first action once (the robot holds "
        "it); 'time_indexed' = every control period, publish the plan's action for the steps "
        "elapsed since its state; 'tracking' = every control period, the action that takes the "
        "measured state to the plan's predicted next state (robot-model inverse dynamics). "
        "Both drop a plan that has run out (safe action).", choices=EXECUTIONS)
    predict_ahead: int = setting(
        0, "Latency compensation: plan from the state the robot model predicts this many "
        "control periods after the measured one, under the actions committed until then (those "
        "of the newest plan, as the execution sends them), so the plan starts where the robot "
        "will be when its first action is applied, and it acts from that step (arriving "
        "earlier, it waits for the state of that step); set it to the planning latency in "
        "periods, for a robot that moves on while a plan is computed (realtime; in lockstep, "
        "where the world waits, keep 0). An episode's first plan starts from the measured "
        "state: the robot waits for its first action (the simulator bridge holds it). 0 = plan "
        "from the measured state.", range=(0, 1000))
    plans_in_flight: int = setting(
        1, "Plans computed at once, one started every control period while fewer are in "
        "flight; each warm-starts from the newest plan delivered at its start, and one "
        "delivered after a newer one is dropped (late_plans). 2 with predict_ahead 2 = two "
        "planners of two periods each.", range=(1, 8), runtime=False)
    command_timeout: float = setting(
        2.0, "A speed command is in effect this long after it was received; then the planner "
        "plans for the learned return again (a 1 Hz `ros2 topic pub` keeps it alive).",
        range=(1e-3, 1e6), unit="s")
    command_gain: float = setting(
        1.0, "Integral gain of a speed loop around the planner: it plans for the command plus "
        "command_gain x the integral of (command - measured speed), within the commandable "
        "range, which trims a steady bias of the planner away; 0 plans for the command as "
        "given.", range=(0.0, 100.0), unit="1/s")
    latency_window: int = setting(100, "Number of recent plans the latency statistics cover.",
                                  range=(1, 100000), runtime=False)

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def control_period_ns(self) -> int:
        return int(round(self.control_period * 1e9))
