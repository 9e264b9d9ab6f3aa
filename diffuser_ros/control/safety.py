"""Safety decisions of the controller (rclpy-free): is the state fresh, may this action go out?

* :class:`Staleness` — a state older than ``state_timeout`` (or none for that long) means the
  robot must get the safe action. Times are integer nanoseconds of the controller's clock; a clock
  at 0 is "not started" (ROS simulation time before the first ``/clock``): no time has passed.
* :class:`ActionGuard` — the last line of defence: nothing non-finite or outside the action bounds
  ever leaves the controller, whatever the planner, a tracker or a strategy produced.
"""

from __future__ import annotations

import math

import numpy as np


class Staleness:
    """Ages of stamps and the reason the newest state is unusable."""

    def __init__(self) -> None:
        self._no_state_since_ns: int | None = None

    def restart(self) -> None:
        """The no-state timeout counts from the next check (activation)."""
        self._no_state_since_ns = None

    @staticmethod
    def age(stamp_ns: int, now: int, timeout: float) -> float:
        """Seconds since ``stamp_ns``; inf when stamped more than ``timeout`` in the future."""
        if now == 0:
            return 0.0
        age = (now - stamp_ns) * 1e-9
        if age < -timeout:
            return math.inf  # stamped in the future: clocks disagree
        return max(age, 0.0)

    def reason(self, newest_stamp_ns: int | None, now: int, timeout: float) -> str | None:
        """'' when the newest state is fresh, why when it is not; None while the clock is 0."""
        if now == 0:
            return None
        if newest_stamp_ns is None:
            if self._no_state_since_ns is None:
                self._no_state_since_ns = now
            waited = (now - self._no_state_since_ns) * 1e-9
            return f"no state received for {waited:.2f} s" if waited > timeout else ""
        age = self.age(newest_stamp_ns, now, timeout)
        if age > timeout:
            if math.isinf(age):
                return "state stamp is ahead of the clock (clocks disagree)"
            return f"state is {age:.3f} s old"
        return ""


class ActionGuard:
    """Checks every action before it leaves: finite, the right size, inside the bounds."""

    def __init__(self, low, high) -> None:
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)
        # The safe action: zeros (no torque), moved inside the bounds should they exclude zero.
        self.safe_single = np.clip(np.zeros_like(self.low), self.low, self.high)

    def safe(self, batch_shape: tuple[int, ...]) -> np.ndarray:
        return np.broadcast_to(self.safe_single, batch_shape + self.low.shape).copy()

    def check(self, action) -> tuple[np.ndarray | None, str]:
        """``(action clipped to the bounds, '')``, or ``(None, why)`` when it must not go out."""
        try:
            action = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            return None, "the action is not numeric"
        if action.ndim == 0 or action.shape[-1] != self.low.shape[0]:
            return None, (f"the action has shape {list(action.shape)}, the robot takes "
                          f"{self.low.shape[0]} values")
        if not np.isfinite(action).all():
            return None, "the plan's action is not finite (discarded)"
        return np.clip(action, self.low, self.high), ""
