"""``BetweenPlans``: what changes between two plans (rclpy-free, thread-safe).

Planner settings and resets may be requested from any thread (a ROS parameter, the reset
service, a new episode) but must never change a plan in flight: they wait here and apply when the
next plan begins. The warm start of that plan shifts the previous plan by the control steps that
really passed since the state it started from (in real time, states arrive while a plan is
computed; in lockstep it is one step).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class BetweenPlans:
    """Pending planner settings and resets, and the warm-start shift, for ``planners`` (copies
    of one model, one per plan in flight: each takes new settings once its plan is done)."""

    def __init__(self, planners, log: Callable[[int, str], None]) -> None:
        self._planners = list(planners)
        self._planner = self._planners[0]
        self._log = log
        self._lock = threading.Lock()
        self._config = None
        self._reset = False
        self._last_start_ns: int | None = None  # stamp of the state the last plan started from
        self.resets = 0
        self.shift = 0

    def request_config(self, config) -> None:
        """Check ``config`` against the model now (``ValueError``); apply it before the next
        plan."""
        self._planner.check_config(config)
        with self._lock:
            self._config = config

    def request_reset(self) -> None:
        """Forget the warm start (and re-seed the noise) before the next plan."""
        with self._lock:
            self._reset = True

    def planned_from(self, stamp_ns: int) -> None:
        """A plan from the state measured at ``stamp_ns`` has been computed."""
        self._last_start_ns = stamp_ns

    def apply(self, stamp_ns: int, period_ns: int) -> tuple[int, bool]:
        """Apply what is pending before a plan from ``stamp_ns``: ``(warm-start shift in control
        steps, whether the planner was reset)``."""
        with self._lock:
            config, reset = self._config, self._reset
            self._config, self._reset = None, False
        if config is not None:
            before = self._planner.config.to_dict()
            try:
                for planner in self._planners:  # waits for a plan in flight (the planner's lock)
                    planner.configure(config)
            except ValueError as exc:  # checked already; e.g. a device vanished
                self._log(logging.ERROR, f"could not apply planner settings: {exc}")
            else:
                changed = {k: v for k, v in config.to_dict().items() if before[k] != v}
                self._log(logging.INFO, f"applied planner settings {changed}")
        if reset:
            for planner in self._planners:
                planner.reset()
            self.resets += 1
            self._last_start_ns = None
        self.shift = 1
        if self._last_start_ns is not None:
            self.shift = max(1, int(round((stamp_ns - self._last_start_ns) / period_ns)))
        return self.shift, reset
