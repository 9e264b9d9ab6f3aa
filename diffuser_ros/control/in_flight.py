"""``PlansInFlight``: the plans being computed and what they start from (rclpy-free, thread-safe).

With ``plans_in_flight`` > 1 a plan starts while others are still being computed. Each one:

* starts from where the robot will be when it acts: the robot model stepped under the actions
  committed until then (:meth:`committed_actions`): what the execution sends from the newest
  delivered plan, and, from the moment a plan still in flight will act, that plan's unknown
  actions estimated by the newest plan's own for those steps;
* warm-starts from the newest plan *delivered* when it begins, never one still being computed;
* belongs to an episode: one begun before a reset is dropped when it arrives.
"""

from __future__ import annotations

import collections
import math
import threading
from dataclasses import dataclass

import numpy as np

from diffuser_ros.control.execution import ActingPlans
from diffuser_ros.control.mailbox import State


@dataclass
class Job:
    """A plan in the making: its start state, warm-start shift, speed and goal."""

    state: State
    warm_start_shift: int
    command: float | np.ndarray | None = None
    constraints: dict | None = None
    latency: float = math.nan
    failure: str = ""  # why planning produced nothing usable
    measured_ns: int = 0  # stamp of the measured state (``state`` may be a prediction)
    episode: int = 0  # resets requested before it began
    warm_start: object = False  # a delivered Plan to warm-start from (None: cold; False: the
    #                             planner's own previous plan, with one plan in flight)


class PredictionError:
    """How far the start-state predictions were from the states later measured at their stamps:
    the root mean square over the entries, in units of the data's standard deviations, over the
    last ``window`` predictions that were met by a measurement."""

    def __init__(self, scale: np.ndarray, window: int = 100) -> None:
        self._scale = np.asarray(scale, dtype=np.float64)
        self._pending: dict[int, np.ndarray] = {}  # stamp -> predicted observation
        self._errors: collections.deque = collections.deque(maxlen=window)
        self._lock = threading.Lock()

    def predicted(self, stamp_ns: int, observation: np.ndarray) -> None:
        with self._lock:
            if len(self._pending) > 64:  # never met (a reset, a dropped state): forget the oldest
                self._pending.pop(min(self._pending))
            self._pending[stamp_ns] = observation

    def measured(self, stamp_ns: int, observation: np.ndarray) -> None:
        with self._lock:
            predicted = self._pending.pop(stamp_ns, None)
        if predicted is not None and predicted.shape == observation.shape:
            error = (predicted - observation) / self._scale
            self._errors.append(float(np.sqrt(np.mean(error ** 2))))

    @property
    def mean(self) -> float | None:
        errors = list(self._errors)
        return float(np.mean(errors)) if errors else None


class PlansInFlight:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._acting_from: dict[int, int] = {}  # job id -> stamp its plan starts acting at
        self.episode = 0                        # resets requested so far
        self._delivered = None                  # the newest delivered Plan, and its stamp
        self._delivered_stamp = 0

    def new_episode(self) -> None:
        """A reset was requested: the plans in flight, and the newest delivered one, are for the
        old episode."""
        self.episode += 1
        self._delivered = None

    @property
    def has_delivered(self) -> bool:
        """Whether a plan of this episode has gone out (the robot is acting on plans)."""
        return self._delivered is not None

    def delivered(self, job, plan) -> None:
        """``job``'s ``plan`` went out: the warm start of the plans begun from now on."""
        self._delivered, self._delivered_stamp = plan, job.state.stamp_ns

    def begun(self, job) -> None:
        """``job`` (its state stamped when its plan will act) is being computed."""
        job.episode = self.episode
        with self._lock:
            self._acting_from[id(job)] = job.state.stamp_ns

    def ended(self, job) -> bool:
        """``job``'s plan is back; False when it belongs to an old episode."""
        with self._lock:
            self._acting_from.pop(id(job), None)
        return job.episode == self.episode

    def warm_start(self, job, period_ns: int) -> None:
        """Warm-start ``job`` from the newest delivered plan, shifted by the steps between."""
        job.warm_start = self._delivered
        if self._delivered is not None:
            job.warm_start_shift = max(1, round(
                (job.state.stamp_ns - self._delivered_stamp) / period_ns))

    def committed_actions(self, plans: ActingPlans, execution, start_ns: int, steps: int,
                          period_ns: int, safe: np.ndarray) -> np.ndarray:
        """``[steps, ...]``: the actions the robot will apply from ``start_ns`` on."""
        with self._lock:
            arrival = min(self._acting_from.values(), default=None)
        newest = plans.newest
        actions = []
        for k in range(steps):
            at = start_ns + k * period_ns
            action, acting = None, plans.at(at)
            if arrival is not None and at >= arrival:  # a plan in flight acts: estimated
                action = newest.action_at(at, period_ns) if newest is not None else None
            elif acting is not None:
                action = execution.planned_action(acting, at, period_ns)
            actions.append(safe if action is None else action)
        return np.stack(actions)
