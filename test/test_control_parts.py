"""The controller's parts, each on its own (the wired controller: test_controller.py)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from helpers import HOPPER_OBS, make_tiny_planner

from diffuser_ros.control.execution import ActivePlan, Hold, TimeIndexed, Tracking, make_execution
from diffuser_ros.control.mailbox import State, StateMailbox
from diffuser_ros.control.output import GuardedOutput
from diffuser_ros.control.safety import ActionGuard, Staleness
from diffuser_ros.control.targets import Targets
from diffuser_ros.control.warm_start import BetweenPlans

S = 1_000_000_000
PERIOD = 8_000_000


def state(value: float, stamp: int, key: int | None = None) -> State:
    return State(np.full(HOPPER_OBS, value), stamp, key)


# -- mailbox ----------------------------------------------------------------------------------
def test_mailbox_keeps_the_newest_state_only():
    box = StateMailbox()
    assert box.take() is None
    box.put(state(0.1, 1))
    box.put(state(0.2, 2))
    assert box.take().stamp_ns == 2
    assert box.take() is None
    assert box.latest.stamp_ns == 2 and box.latest_stamp_ns == 2


def test_mailbox_drops_a_resend_in_progress_and_answers_one_already_answered():
    box = StateMailbox()
    first = state(0.1, 10, key=10)
    box.put(first)
    taken = box.take()                                  # being planned on from here
    assert not box.put(state(0.1, 10, key=10))          # re-sent meanwhile: dropped
    assert box.answer_to(taken) is None                 # new
    assert not box.put(state(0.1, 10, key=10))
    box.answered(first, np.array([0.5, 0.5, 0.5]))
    box.done()
    assert box.put(state(0.1, 10, key=10))               # re-sent after the answer
    np.testing.assert_array_equal(box.answer_to(box.take()), [0.5, 0.5, 0.5])
    box.clear(forget_stamp=True)
    assert box.latest_stamp_ns is None and box.take() is None


# -- execution strategies ---------------------------------------------------------------------
def plan(horizon: int = 4, stamp: int = 0) -> ActivePlan:
    actions = np.arange(horizon * 3, dtype=float).reshape(horizon, 3)
    observations = np.arange(horizon * HOPPER_OBS, dtype=float).reshape(horizon, HOPPER_OBS)
    return ActivePlan(actions[0], actions, observations, stamp)


def test_hold_gives_the_first_action_and_time_indexed_the_elapsed_step():
    p = plan()
    latest = state(0.0, 0)
    assert not Hold.every_period and TimeIndexed.every_period
    np.testing.assert_array_equal(Hold().action(p, 3 * PERIOD, latest, PERIOD), p.actions[0])
    np.testing.assert_array_equal(TimeIndexed().action(p, 2 * PERIOD + 1, latest, PERIOD),
                                  p.actions[2])
    assert TimeIndexed().action(p, 4 * PERIOD, latest, PERIOD) is None  # run out


def test_tracking_aims_at_the_plans_next_state_after_the_measured_one():
    calls = []

    def tracker(measured, target):
        calls.append((measured, target))
        return np.zeros(3)

    p = plan()
    measured = state(0.3, 1 * PERIOD)
    Tracking(tracker).action(p, 5 * PERIOD, measured, PERIOD)
    np.testing.assert_array_equal(calls[-1][0], measured.observation)
    np.testing.assert_array_equal(calls[-1][1], p.observations[2])
    assert Tracking(tracker).action(p, 0, state(0.3, 3 * PERIOD), PERIOD) is None


def test_make_execution_knows_the_names_and_what_each_needs():
    assert isinstance(make_execution("hold", None), Hold)
    with pytest.raises(ValueError, match="tracker"):
        make_execution("tracking", None)
    with pytest.raises(ValueError, match="execution must be one of"):
        make_execution("teleport", None)


def test_a_plan_gives_its_own_action_for_a_control_step_until_it_runs_out():
    p = plan(stamp=PERIOD)
    np.testing.assert_array_equal(p.action_at(0, PERIOD), p.actions[0])  # before: the first
    np.testing.assert_array_equal(p.action_at(3 * PERIOD, PERIOD), p.actions[2])
    assert p.action_at(5 * PERIOD, PERIOD) is None
    assert Hold().planned_action(p, 3 * PERIOD, PERIOD) is p.first_action
    np.testing.assert_array_equal(TimeIndexed().planned_action(p, 3 * PERIOD, PERIOD),
                                  p.actions[2])


# -- safety -----------------------------------------------------------------------------------
def test_staleness_reasons():
    stale = Staleness()
    assert stale.reason(None, 0, 0.5) is None                 # clock not started
    assert stale.reason(None, 1 * S, 0.5) == ""               # no state yet, waiting counts
    assert "no state received for 0.60 s" in stale.reason(None, 1 * S + 600_000_000, 0.5)
    assert stale.reason(1 * S, 1 * S + 100_000_000, 0.5) == ""
    assert stale.reason(1 * S, 2 * S, 0.5) == "state is 1.000 s old"
    assert "clocks disagree" in stale.reason(5 * S, 1 * S, 0.5)
    assert Staleness.age(1 * S, 0, 0.5) == 0.0


def test_action_guard_clips_refuses_and_keeps_the_safe_action_inside_the_bounds():
    guard = ActionGuard([-1.0, -1.0], [1.0, 1.0])
    np.testing.assert_array_equal(guard.check([2.0, -0.5])[0], [1.0, -0.5])
    for bad in ([math.nan, 0.0], [math.inf, 0.0], [0.0, 0.0, 0.0], "x"):
        action, why = guard.check(bad)
        assert action is None and why
    assert guard.safe((2,)).shape == (2, 2) and not guard.safe(()).any()
    shifted = ActionGuard([0.2, -1.0], [1.0, 1.0])  # bounds that exclude zero
    np.testing.assert_array_equal(shifted.safe(()), [0.2, 0.0])


def test_guarded_output_sends_the_safe_action_instead_and_logs_at_most_every_two_seconds():
    sent, logs, now = [], [], [0.0]
    out = GuardedOutput(sent.append, ActionGuard([-1.0] * 3, [1.0] * 3),
                        lambda level, msg: logs.append((level, msg)), lambda: now[0])
    assert out.send([0.5, 2.0, 0.0], "plan").kind == "plan"
    np.testing.assert_array_equal(sent[-1].action, [0.5, 1.0, 0.0])
    for t in (0.0, 1.0, 2.5):
        now[0] = t
        assert out.send([math.nan] * 3, "step").kind == "safe"
    assert out.discarded == 3 and "not finite" in out.last_discard
    assert [level for level, _ in logs] == [logging.WARNING, logging.WARNING]  # t=0 and t=2.5
    assert all(not o.action.any() for o in sent[1:]) and out.safe_count == 3


# -- targets ----------------------------------------------------------------------------------
def test_speed_command_times_out_and_a_refused_one_leaves_the_one_in_effect():
    targets = Targets(make_tiny_planner(seed=0, with_command=True))
    targets.set_command(2.0, now=1 * S)
    assert targets.command(now=2 * S, timeout=2.0) == 2.0
    with pytest.raises(ValueError, match="outside"):
        targets.set_command(9.0, now=2 * S)
    assert targets.command(now=2 * S, timeout=2.0) == 2.0
    assert targets.command(now=4 * S, timeout=2.0) is None  # 3 s after it arrived
    targets.set_command(None, now=4 * S)
    assert targets.command_age(4 * S, 2.0) is None


def test_goal_constraints_are_checked_and_cleared():
    targets = Targets(make_tiny_planner(seed=0))
    targets.set_constraints({3: ([0, 5], np.array([1.2, 2.0]))})
    assert targets.constrained_entries == 2
    with pytest.raises(ValueError, match="outside the plausible range"):
        targets.set_constraints({3: ([0], np.array([1e300]))})
    assert targets.constrained_entries == 2
    targets.set_constraints({})
    assert targets.constraints is None


# -- between plans ----------------------------------------------------------------------------
def test_settings_and_resets_wait_for_the_next_plan_and_the_shift_counts_elapsed_steps():
    planner = make_tiny_planner(seed=0)
    logs = []
    between = BetweenPlans([planner], lambda level, msg: logs.append(msg))
    with pytest.raises(ValueError, match="n_denoise_steps"):
        between.request_config(planner.config.replace(n_denoise_steps=999))
    between.request_config(planner.config.replace(n_candidates=2))
    assert planner.config.n_candidates == 4  # not yet: a plan may be in flight
    assert between.apply(stamp_ns=0, period_ns=PERIOD) == (1, False)
    assert planner.config.n_candidates == 2 and "n_candidates" in logs[-1]
    between.planned_from(0)
    assert between.apply(stamp_ns=3 * PERIOD, period_ns=PERIOD) == (3, False)
    between.request_reset()
    assert between.apply(stamp_ns=5 * PERIOD, period_ns=PERIOD) == (1, True)
    assert between.resets == 1
