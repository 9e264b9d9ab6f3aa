"""Never a non-finite or out-of-bounds action: property tests that search for one.

``hypothesis`` draws states (NaN, ±inf, ±1e308, huge but finite values, wrong sizes), speed
commands and goals, and feeds them to the planner and to the controller core in any order. Every
action that comes out must be finite and within the action bounds, every bad input must be refused
with a reason, and the next good state must plan normally again, without a reset.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import HOPPER_ACT, HOPPER_OBS, PlannerProxy, make_tiny_planner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from diffuser_ros.control import ControllerSettings, RecedingHorizonController
from diffuser_ros.control.tracking import ModelInverseDynamics
from diffuser_ros.planning import PlannerConfig

MS = 1_000_000
PERIOD = 8 * MS
GOOD = np.array([1.25, 0.0, -0.3, -0.4, 0.2, 2.0, -0.2, 0.0, -0.5, -0.2, 0.1])
LOW, HIGH = -1.0, 1.0  # the tiny planner's action bounds

ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)
ABSURD = st.sampled_from([np.nan, np.inf, -np.inf, 1e308, -1e308, 1e30, -1e30, 1e6, -1e6, 1e3])


@st.composite
def states(draw):
    """Good states with one or more absurd entries, arbitrary arrays, and wrong sizes."""
    kind = draw(st.sampled_from(["one_absurd", "any", "wrong_size", "good"]))
    if kind == "one_absurd":
        state = GOOD.copy()
        state[draw(st.integers(0, HOPPER_OBS - 1))] = draw(ABSURD)
        return state
    if kind == "any":
        return draw(arrays(np.float64, HOPPER_OBS, elements=ANY_FLOAT))
    if kind == "wrong_size":
        return draw(arrays(np.float64, st.integers(0, 2 * HOPPER_OBS).filter(
            lambda n: n != HOPPER_OBS), elements=ANY_FLOAT))
    return GOOD + draw(arrays(np.float64, HOPPER_OBS, elements=st.floats(-0.05, 0.05)))


@st.composite
def goals(draw):
    """Goal constraints ``{horizon index: (dims, values)}``, values anything."""
    h = draw(st.integers(1, 7))
    dims = draw(st.lists(st.integers(0, HOPPER_OBS - 1), min_size=1, max_size=3, unique=True))
    values = draw(st.lists(st.one_of(ANY_FLOAT, ABSURD), min_size=len(dims), max_size=len(dims)))
    return {h: (dims, np.array(values))}


SPEEDS = st.one_of(ANY_FLOAT, ABSURD, st.floats(1.0, 4.0))


def assert_safe(action) -> None:
    action = np.asarray(action, dtype=np.float64)
    assert action.shape[-1] == HOPPER_ACT
    assert np.isfinite(action).all(), f"non-finite action {action}"
    assert ((action >= LOW) & (action <= HIGH)).all(), f"action {action} outside the bounds"


PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def planner():
    return make_tiny_planner(seed=0, with_command=True, config=PlannerConfig(
        n_candidates=2, n_denoise_steps=4, warm_start_steps=2, t_stopgrad=0, seed=0,
        device="cpu"))


# -- the planner ------------------------------------------------------------------------------
@PROPERTY
@given(state=states(), goal=st.one_of(st.none(), goals()), speed=st.one_of(st.none(), SPEEDS))
def test_planner_refuses_or_plans_finite_and_recovers_on_the_next_good_state(
        planner, state, goal, speed):
    try:
        action = planner.plan(state, goal, command=speed).action
    except ValueError as exc:
        assert str(exc)  # refused, with a reason
    else:
        assert_safe(action)
    assert_safe(planner.plan(GOOD).action)  # no poison carried in the warm start


def test_absurd_state_is_refused_naming_the_joint_and_the_bound(planner):
    state = GOOD.copy()
    state[2] = 1e30  # thigh_joint position
    with pytest.raises(ValueError, match=r"thigh_joint position.*outside") as info:
        planner.plan(state)
    assert "std" in str(info.value)  # the bound says where it comes from
    goal_value = np.array([1e308])
    with pytest.raises(ValueError, match="outside"):
        planner.plan(GOOD, {3: ([0], goal_value)})


def test_the_plausible_range_follows_the_normaliser_and_the_setting(planner):
    low, high = planner.state_bounds()
    mean, std = planner.normalizer.observation_mean, planner.normalizer.observation_std
    limit = planner.config.state_limit
    height, angles, velocities = 0, slice(1, 5), slice(5, None)  # Hopper: qpos[1:], then qvel
    np.testing.assert_allclose(low[height], (mean - limit * std)[height])
    np.testing.assert_allclose(high[height], (mean + limit * std)[height])
    # Angles (the torso's pitch and the hinges): at least [-pi, pi], a pose the body can reach.
    np.testing.assert_allclose(low[angles], np.minimum((mean - limit * std)[angles], -np.pi))
    np.testing.assert_allclose(high[angles], np.maximum((mean + limit * std)[angles], np.pi))
    # Velocities: at least the range the environment clips them to (its data's range).
    np.testing.assert_allclose(low[velocities], np.minimum((mean - limit * std)[velocities], -10))
    np.testing.assert_allclose(high[velocities], np.maximum((mean + limit * std)[velocities], 10))
    planner.check_observation(low + 0.01 * (high - low))
    planner.check_observation(np.r_[mean[:5], np.full(6, 10.0)])
    planner.check_observation(np.r_[mean[:3], -3.0, mean[4:]])  # the knee far bent: a pose
    with pytest.raises(ValueError, match="thigh_joint position"):
        planner.check_observation(np.r_[mean[:2], high[2] + 0.01, mean[3:]])


# -- the controller core ----------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.now = 1_000 * MS

    def __call__(self) -> int:
        return self.now


@pytest.fixture(scope="module")
def tracker(planner):
    return ModelInverseDynamics.for_planner(planner)


OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("state"), states()),
    st.tuples(st.just("command"), SPEEDS),
    st.tuples(st.just("goal"), goals()),
    st.tuples(st.just("tick"), st.integers(1, 3)),
), min_size=1, max_size=8)


@PROPERTY
@given(operations=OPERATIONS, execution=st.sampled_from(["hold", "time_indexed", "tracking"]))
def test_controller_publishes_only_finite_actions_within_bounds(planner, tracker, operations,
                                                                 execution):
    clock, outputs = Clock(), []
    ctl = RecedingHorizonController(
        planner, ControllerSettings(execution=execution, state_timeout=10.0), clock=clock,
        emit=outputs.append, tracker=tracker)
    ctl.request_reset()
    ctl.activate()
    for kind, value in operations:
        clock.now += PERIOD
        if kind == "state":
            ctl.offer(value, clock.now)
            ctl.run_once()
        elif kind == "command":
            try:
                ctl.set_command(value)
            except ValueError as exc:
                assert str(exc)
        elif kind == "goal":
            try:
                ctl.set_constraints(value)
            except ValueError as exc:
                assert str(exc)
        else:
            for _ in range(value):
                clock.now += PERIOD
                ctl.tick()
    ctl.set_constraints(None)
    clock.now += PERIOD
    assert ctl.offer(GOOD, clock.now)
    assert ctl.run_once()
    for output in outputs:
        assert_safe(output.action)
    assert outputs[-1].kind == "plan"  # the next good state is planned on normally


class PoisonedPlanner(PlannerProxy):
    """The tiny planner, but every plan's actions are NaN (a fault the last line must catch)."""

    def plan(self, *args, **kwargs):
        from dataclasses import replace

        plan = self.planner.plan(*args, **kwargs)
        return replace(plan, action=np.full_like(plan.action, np.nan),
                       actions=np.full_like(plan.actions, np.nan),
                       observations=np.full_like(plan.observations, np.nan))


@pytest.mark.parametrize("execution", ["hold", "time_indexed", "tracking"])
def test_a_non_finite_plan_is_discarded_for_the_safe_action_with_the_reason(
        planner, tracker, execution):
    clock, outputs = Clock(), []
    ctl = RecedingHorizonController(
        PoisonedPlanner(planner), ControllerSettings(execution=execution), clock=clock,
        emit=outputs.append, tracker=tracker)
    ctl.activate()
    ctl.offer(GOOD, clock.now)
    ctl.run_once()
    clock.now += PERIOD
    ctl.tick()
    assert outputs and all(o.kind == "safe" for o in outputs)
    for output in outputs:
        assert_safe(output.action)
    status = ctl.status()
    assert "not finite" in status.last_discard
    assert status.discarded_plans >= 1
