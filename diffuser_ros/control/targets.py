"""``Targets``: what the plans aim for besides the learned return (rclpy-free).

* a **speed command** (the node's ``cmd_vel``), in effect until ``command_timeout`` after it
  arrived, planned for through the speed loop (``command_gain``) that trims the planner's steady
  bias away;
* **goal constraints** ``{horizon index: (observation dims, values)}``, inpainted into every plan
  until replaced.

Both are checked by the planner (:meth:`~diffuser_ros.planning.DiffusionPlanner.check_command`,
:meth:`~diffuser_ros.planning.DiffusionPlanner.check_constraints`) when they arrive; a refused
one leaves the one in effect unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffuser_ros.control.mailbox import State
from diffuser_ros.control.safety import Staleness
from diffuser_ros.control.speed_loop import SpeedLoop


@dataclass(frozen=True)
class SpeedCommand:
    """A commanded forward speed (m/s) and when it was received (clock ns)."""

    speed: float
    received_ns: int


class Targets:
    """The speed command and goal in effect, for a planner."""

    def __init__(self, planner) -> None:
        self._planner = planner
        self._command: SpeedCommand | None = None
        self.constraints: dict | None = None
        self._speed_loop = SpeedLoop()
        self.planned_speed: float | None = None  # what the last plan was for (with the loop)

    @property
    def speed_range(self) -> tuple[float, float] | None:
        """The speeds a command may ask for (m/s); None when the model has no command value."""
        spec = getattr(self._planner, "command_spec", None)
        return None if spec is None else tuple(spec.speed_range)

    def set_command(self, speed: float | None, now: int) -> None:
        """Command ``speed`` from ``now`` on (None cancels); ``ValueError`` leaves it as it was."""
        if speed is None:
            self._command = None
            return
        if self.speed_range is None:  # the speed cost alone is for the offline evaluator
            raise ValueError("the model has no command value (command_value/): it cannot plan "
                             "for a speed command")
        (checked,) = self._planner.check_command(speed)
        self._command = SpeedCommand(float(checked), now)

    def command(self, now: int, timeout: float) -> float | None:
        """The speed command in effect at ``now`` (None: none, or it timed out)."""
        command = self._command
        if command is None or self.command_age(now, timeout) > timeout:
            return None
        return command.speed

    def command_age(self, now: int, timeout: float) -> float | None:
        command = self._command
        return None if command is None else Staleness.age(command.received_ns, now, timeout)

    def set_constraints(self, constraints: dict | None) -> None:
        """Goal constraints for every plan from now on (None or empty clears); ``ValueError``
        leaves the ones in effect."""
        if constraints:
            self._planner.check_constraints(constraints)
        self.constraints = dict(constraints) if constraints else None

    @property
    def constrained_entries(self) -> int:
        return sum(len(dims) for dims, _ in (self.constraints or {}).values())

    def speed_to_plan(self, state: State, now: int, timeout: float, gain: float):
        """The speed the next plan from ``state`` is for: the command trimmed by the loop."""
        command = self.command(now, timeout)
        if command is None or not gain:
            self._speed_loop.reset()
            self.planned_speed = command
            return command
        planned = self._speed_loop.planned(
            command, state.observation[..., self._planner.spec.speed_index], state.stamp_ns,
            gain, self.speed_range)
        self.planned_speed = float(np.mean(planned))
        return planned

    def new_episode(self) -> None:
        """The speed loop starts afresh."""
        self._speed_loop.reset()
