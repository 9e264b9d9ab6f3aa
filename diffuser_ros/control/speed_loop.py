"""The speed loop around the planner: an integral trim of the commanded speed (rclpy-free).

The planner, guided by the command value, settles at a speed that is biased from the command
(the learned return pulls towards the speed it is safest at). The loop plans for
``command + gain * integral(command - measured speed)``, which trims a steady bias away.
Anti-windup: errors larger than :data:`INTEGRATION_BAND` (a take-off, a fall) are not
integrated, nor any that would take the planned speed out of the commandable range. The bias
depends on the command, so a new command (one that differs by :data:`NEW_COMMAND` or more)
starts the trim afresh; a small change, like a joystick's jitter, keeps it.
"""

from __future__ import annotations

import numpy as np

INTEGRATION_BAND = 1.0  # m/s: only errors this small are integrated
NEW_COMMAND = 0.1       # m/s: a command this far from the last starts the trim afresh


class SpeedLoop:
    """Integral of (command - measured speed), one per robot of a batch."""

    def __init__(self) -> None:
        self._integral: np.ndarray | None = None  # m
        self._stamp_ns: int | None = None
        self._command: float | None = None

    def reset(self) -> None:
        """Start afresh (a new episode, or no command in effect)."""
        self._integral = None
        self._command = None

    def planned(self, command: float, speed, stamp_ns: int, gain: float,
                bounds: tuple[float, float]):
        """The speed to plan for, given the speed measured at ``stamp_ns`` (a number, or one
        per robot)."""
        low, high = bounds
        speed = np.asarray(speed, dtype=np.float64)
        if self._command is None or abs(command - self._command) >= NEW_COMMAND:
            self._integral = None
        self._command = command
        if self._integral is None or self._integral.shape != speed.shape:
            self._integral = np.zeros(speed.shape)
        elif self._stamp_ns is not None:
            dt = max(stamp_ns - self._stamp_ns, 0) * 1e-9
            error = command - speed
            grown = self._integral + error * dt
            trimmed = command + gain * grown
            inside = (np.abs(error) <= INTEGRATION_BAND) & (trimmed >= low) & (trimmed <= high)
            self._integral = np.where(inside, grown, self._integral)
        self._stamp_ns = stamp_ns
        planned = np.clip(command + gain * self._integral, low, high)
        return planned if planned.ndim else float(planned)
