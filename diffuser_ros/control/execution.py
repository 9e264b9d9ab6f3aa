"""Execution strategies: what action the newest plan gives at a moment (rclpy-free).

A plan is computed from the state measured at ``stamp_ns`` and may arrive control periods later.
Each strategy answers "which action now?" from the plan, the clock and the newest measured state:

* :class:`Hold` — the plan's first action, once (the robot holds it: a forward command
  controller); nothing at the control ticks in between;
* :class:`TimeIndexed` — every control period, the plan's action for the steps elapsed since the
  state it started from;
* :class:`Tracking` — every control period, a feedback ``tracker(measured state, the plan's
  predicted next state)`` (e.g. :class:`~diffuser_ros.control.tracking.ModelInverseDynamics`).

``None`` means the plan has run out (the controller drops it and sends the safe action).
``planned_action`` says what a strategy will send at a future time from the plan alone (the
start-state prediction needs the actions committed until a new plan acts; tracking's are
estimated by the plan's own). :func:`make_execution` is the one place that knows the names and
what each needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from diffuser_ros.control.mailbox import State

Tracker = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ActivePlan:
    """The newest plan being executed."""

    first_action: np.ndarray  # [act] or [B, act], clipped to the bounds by the planner
    actions: np.ndarray       # [H, act] or [B, H, act]
    observations: np.ndarray  # [H, obs] or [B, H, obs]
    stamp_ns: int             # when the robot is at the state it started from (measured, or
    #                           predicted: then a time still to come)
    plan: object | None = None  # the planner's Plan, for the output when it starts acting

    @property
    def horizon(self) -> int:
        return self.actions.shape[-2]

    def steps_since_start(self, time_ns: int, period_ns: int) -> int:
        return max((time_ns - self.stamp_ns) // period_ns, 0)

    def action_at(self, time_ns: int, period_ns: int):
        """The plan's own action for the control step at ``time_ns`` (None: run out)."""
        k = self.steps_since_start(time_ns, period_ns)
        return None if k >= self.horizon else self.actions[..., k, :]


class ActingPlans:
    """The plan acting now and, until its time comes, the newest one delivered for a later step.

    A plan started from a predicted state (``predict_ahead``) is for the moment the robot gets
    there: it may arrive earlier, while the action for the current period is already out.
    Published at once, its first action would replace that one a period early, so it waits here
    (``upcoming``) and starts at its stamp; the prediction of the plans after it counts on that.
    """

    def __init__(self) -> None:
        self.acting: ActivePlan | None = None
        self.upcoming: ActivePlan | None = None

    def clear(self) -> None:
        self.acting = self.upcoming = None

    @property
    def newest(self) -> ActivePlan | None:
        return self.upcoming if self.upcoming is not None else self.acting

    def deliver(self, plan: ActivePlan, later: bool) -> None:
        """Take a new plan: acting from now, or ``later`` (from its stamp)."""
        if later:
            self.upcoming = plan
        else:
            self.acting, self.upcoming = plan, None

    def start_due(self, now: int) -> bool:
        """Let the upcoming plan act once its stamp has come; True when it just started."""
        if self.upcoming is None or now < self.upcoming.stamp_ns:
            return False
        self.acting, self.upcoming = self.upcoming, None
        return True

    def start_now(self) -> None:
        """The upcoming plan (if any) acts from now: its first action has gone out."""
        if self.upcoming is not None:
            self.acting, self.upcoming = self.upcoming, None

    def at(self, time_ns: int) -> ActivePlan | None:
        """The plan that will be acting at ``time_ns``."""
        if self.upcoming is not None and time_ns >= self.upcoming.stamp_ns:
            return self.upcoming
        return self.acting


class Hold:
    """Publish the plan's first action when it arrives; the robot holds it."""

    name = "hold"
    every_period = False

    def action(self, plan: ActivePlan, now: int, latest: State, period_ns: int):
        return plan.first_action

    def planned_action(self, plan: ActivePlan, time_ns: int, period_ns: int):
        return plan.first_action


class TimeIndexed:
    """Every control period, the plan's own action for the elapsed steps (open loop)."""

    name = "time_indexed"
    every_period = True

    def action(self, plan: ActivePlan, now: int, latest: State, period_ns: int):
        return plan.action_at(now, period_ns)

    def planned_action(self, plan: ActivePlan, time_ns: int, period_ns: int):
        return plan.action_at(time_ns, period_ns)


class Tracking:
    """Every control period, the action that takes the measured state to the plan's next one."""

    name = "tracking"
    every_period = True

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def action(self, plan: ActivePlan, now: int, latest: State, period_ns: int):
        k = plan.steps_since_start(latest.stamp_ns, period_ns)
        if k + 1 >= plan.horizon:
            return None
        return self.tracker(latest.observation, plan.observations[..., k + 1, :])

    def planned_action(self, plan: ActivePlan, time_ns: int, period_ns: int):
        return plan.action_at(time_ns, period_ns)  # the feedback's, estimated by the plan's own


def make_execution(name: str, tracker: Tracker | None):
    """The strategy called ``name``; ``ValueError`` when it is unknown or lacks what it needs."""
    if name == "tracking":
        if tracker is None:
            raise ValueError("execution 'tracking' needs a tracker (the robot's model) and none "
                             "is available")
        return Tracking(tracker)
    strategies = {"hold": Hold, "time_indexed": TimeIndexed}
    if name not in strategies:
        raise ValueError(f"execution must be one of {['hold', 'time_indexed', 'tracking']}, "
                         f"got {name!r}")
    return strategies[name]()
