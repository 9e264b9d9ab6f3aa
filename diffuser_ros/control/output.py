"""The controller's output: every action leaves through :class:`GuardedOutput` (rclpy-free).

It is the last line of defence: an action that is not finite, has the wrong size or lies outside
the bounds never goes out. The safe action goes out instead, with the reason in the status and a
log line (at most one every :data:`LOG_THROTTLE_S` s). ``emit`` is always called under one lock,
so once a caller holding :attr:`lock` has sent the safe action, nothing else overtakes it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from diffuser_ros.control.safety import ActionGuard

LOG_THROTTLE_S = 2.0


@dataclass(frozen=True)
class ControlOutput:
    """One action handed to the output. ``kind``: ``plan`` (a fresh plan's action), ``repeat``
    (a re-sent state answered again), ``step`` (executed between plans) or ``safe``."""

    action: np.ndarray
    kind: str
    stamp_ns: int | None = None   # stamp of the state the action answers
    reason: str = ""              # why a safe action
    plan: object | None = None    # the Plan, for kind 'plan'


class GuardedOutput:
    """``emit`` behind the :class:`ActionGuard`, with the counts of what it refused."""

    def __init__(self, emit: Callable[[ControlOutput], None], guard: ActionGuard,
                 log: Callable[[int, str], None], timer: Callable[[], float]) -> None:
        self._emit, self._guard, self._log, self._timer = emit, guard, log, timer
        self.lock = threading.RLock()
        self.batch_shape: tuple[int, ...] = ()  # of the newest state: one action per robot
        self.safe_reason = ""    # why the newest safe action went out ('' once planning resumes)
        self.safe_count = 0
        self.discarded = 0       # plans or actions the guard (or a failed plan) kept back
        self.last_discard = ""
        self._last_warning = -math.inf

    def send(self, action, kind: str, stamp_ns: int | None = None,
             plan=None) -> ControlOutput:
        """``action`` clipped to the bounds, or the safe action when it must not go out."""
        checked, why = self._guard.check(action)
        if checked is None:
            return self.discard(why)
        return self._send(ControlOutput(checked, kind, stamp_ns, plan=plan))

    def discard(self, why: str) -> ControlOutput:
        """A plan or action that must not go out: the safe action instead, and why."""
        self.discarded += 1
        self.last_discard = why
        now = self._timer()
        if now - self._last_warning >= LOG_THROTTLE_S:
            self._last_warning = now
            self._log(logging.WARNING, f"{why}: safe action sent ({self.discarded} discarded "
                                       "so far)")
        return self.safe(why)

    def safe_action(self) -> np.ndarray:
        """The safe action for the newest state's batch."""
        return self._guard.safe(self.batch_shape)

    def safe(self, reason: str) -> ControlOutput:
        """The safe action (zeros, within the bounds), for ``reason``."""
        self.safe_reason = reason
        self.safe_count += 1
        return self._send(ControlOutput(self.safe_action(), "safe", reason=reason))

    def _send(self, output: ControlOutput) -> ControlOutput:
        with self.lock:
            self._emit(output)
        return output
