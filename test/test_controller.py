"""The ROS-free controller core, driven by a fake clock: every decision without DDS or sleeps."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import HOPPER_ACT, HOPPER_OBS, TINY_HORIZON, PlannerProxy, make_tiny_planner

from diffuser_ros.control import ControllerSettings, RecedingHorizonController
from diffuser_ros.planning import PlannerConfig

MS = 1_000_000  # ns
PERIOD = 8 * MS


class FakeClock:
    def __init__(self, now_ns: int = 1_000 * MS):
        self.now = now_ns

    def __call__(self) -> int:
        return self.now

    def advance(self, ns: int) -> None:
        self.now += ns


class Outputs(list):
    def __call__(self, command) -> None:
        self.append(command)

    def kinds(self) -> list[str]:
        return [c.kind for c in self]


def make(settings: ControllerSettings | None = None, clock: FakeClock | None = None,
         config: PlannerConfig | None = None, active: bool = True, robot_model: bool = False):
    """A controller on a tiny planner, a fake clock and a list of outputs; ``robot_model``: with
    the Hopper robot model that ``predict_ahead`` predicts with."""
    from diffuser_ros.control.robot_model import RobotModel

    clock = clock or FakeClock()
    out = Outputs()
    planner = make_tiny_planner(config=config)
    ctl = RecedingHorizonController(
        planner, settings or ControllerSettings(), clock=clock, emit=out,
        robot_model=RobotModel.for_planner(planner) if robot_model else None)
    if active:
        ctl.activate()
    return ctl, clock, out


def obs(value: float = 0.0) -> np.ndarray:
    return np.full(HOPPER_OBS, value)


def test_plans_the_newest_state_and_publishes_its_first_action():
    ctl, clock, out = make()
    assert ctl.offer(obs(0.1), clock.now)
    assert ctl.offer(obs(0.2), clock.now + 1)  # newer state replaces the older in the mailbox
    assert ctl.run_once()
    assert not ctl.run_once()  # nothing left: the older state was never planned on
    assert out.kinds() == ["plan"]
    assert out[0].stamp_ns == clock.now + 1
    assert out[0].action.shape == (HOPPER_ACT,)
    assert ctl.status().plans == 1


def test_rejects_non_finite_and_wrong_sized_states_without_planning():
    ctl, clock, out = make()
    assert not ctl.offer(np.full(HOPPER_OBS, np.nan), clock.now)
    assert not ctl.offer(np.zeros(HOPPER_OBS + 1), clock.now)
    assert not ctl.run_once()
    status = ctl.status()
    assert status.rejected_states == 2
    assert "expects" in status.last_rejection
    assert out == []


def test_resent_state_is_answered_again_without_a_second_plan():
    ctl, clock, out = make()
    ctl.offer(obs(), clock.now)
    ctl.run_once()
    ctl.offer(obs(), clock.now)  # same stamp: a simulator that lost our action sends it again
    ctl.run_once()
    assert out.kinds() == ["plan", "repeat"]
    np.testing.assert_array_equal(out[0].action, out[1].action)
    assert ctl.status().plans == 1 and ctl.status().resent_states == 1


def test_stale_state_is_not_planned_and_tick_publishes_the_safe_action():
    ctl, clock, out = make(ControllerSettings(state_timeout=0.05))
    ctl.offer(obs(), clock.now)
    clock.advance(60 * MS)
    assert not ctl.run_once()
    command = ctl.tick()
    assert command.kind == "safe" and "old" in command.reason
    np.testing.assert_array_equal(command.action, np.zeros(HOPPER_ACT))
    assert ctl.status().level > 0 and "safe action" in ctl.status().message


def test_fresh_state_keeps_the_tick_quiet_in_hold_mode():
    ctl, clock, out = make()
    ctl.offer(obs(), clock.now)
    ctl.run_once()
    clock.advance(PERIOD)
    assert ctl.tick() is None  # the held action stands
    assert out.kinds() == ["plan"]


def test_no_state_times_out_after_activation_and_not_before():
    ctl, clock, out = make(ControllerSettings(state_timeout=0.1))
    assert ctl.tick() is None  # the timeout counts from the first tick after activation
    clock.advance(90 * MS)
    assert ctl.tick() is None
    clock.advance(20 * MS)
    assert ctl.tick().reason.startswith("no state received")


def test_clock_at_zero_waits_and_says_so():
    clock = FakeClock(0)
    ctl, clock, out = make(clock=clock)
    assert ctl.tick() is None
    assert ctl.status().message.startswith("waiting for the clock")


def test_state_stamped_in_the_future_counts_as_stale():
    ctl, clock, out = make(ControllerSettings(state_timeout=0.1))
    ctl.offer(obs(), clock.now + 10_000 * MS)
    assert "clocks disagree" in ctl.tick().reason


def test_estop_publishes_safe_action_drops_plan_in_flight_and_release_resets():
    ctl, clock, out = make()
    ctl.offer(obs(), clock.now)
    job = ctl.begin()
    plan = ctl.compute(job)
    ctl.set_estop(True)                  # engaged while the plan was computed
    assert not ctl.finish(job, plan)     # so the plan is dropped
    assert out.kinds() == ["safe"]
    assert ctl.tick().kind == "safe"
    ctl.offer(obs(), clock.now + 1)
    assert not ctl.run_once()            # no planning while engaged
    resets = ctl.status().resets
    ctl.set_estop(False)
    ctl.offer(obs(), clock.now + 2)
    assert ctl.run_once()
    assert out.kinds()[-1] == "plan"
    assert ctl.status().resets == resets + 1  # the warm start was stale: dropped


def test_inactive_controller_neither_plans_nor_publishes():
    ctl, clock, out = make(active=False)
    ctl.offer(obs(), clock.now)
    assert not ctl.run_once()
    assert ctl.tick() is None
    ctl.activate()
    ctl.offer(obs(), clock.now)
    assert ctl.run_once()
    ctl.deactivate()
    assert out.kinds() == ["plan", "safe"]
    assert not ctl.status().active


def test_settings_apply_between_plans_and_bad_ones_are_refused():
    ctl, clock, out = make()
    with pytest.raises(ValueError, match="n_denoise_steps"):
        ctl.request_config(ctl.planner.config.replace(n_denoise_steps=10_000))
    ctl.request_config(ctl.planner.config.replace(n_candidates=2))
    assert ctl.planner.config.n_candidates == 4  # not yet: only before the next plan
    ctl.offer(obs(), clock.now)
    ctl.run_once()
    assert ctl.status().planner_config.n_candidates == 2
    assert out[-1].plan.values.shape == (2,)


def test_action_delay_is_zero_when_the_world_waits_and_counts_misses_when_not():
    ctl, clock, out = make()
    for _ in range(3):  # lockstep: the clock stands still while planning
        ctl.offer(obs(), clock.now)
        ctl.run_once()
        clock.advance(PERIOD)
    status = ctl.status()
    assert status.delay["deadline_misses"] == 0 and status.level == 0
    ctl.offer(obs(), clock.now)  # real time: 3 periods pass while planning
    job = ctl.begin()
    plan = ctl.compute(job)
    clock.advance(3 * PERIOD)
    ctl.finish(job, plan)
    assert ctl.status().delay["deadline_misses"] == 1


def test_warm_start_shifts_by_the_control_steps_elapsed():
    config = PlannerConfig(n_candidates=2, seed=0, device="cpu", warm_start=True,
                           warm_start_steps=2)
    ctl, clock, out = make(config=config)
    ctl.offer(obs(), clock.now)
    ctl.run_once()
    clock.advance(5 * PERIOD)  # four states were skipped while planning
    ctl.offer(obs(), clock.now)
    ctl.run_once()
    assert ctl.status().warm_start_shift == 5
    assert out[-1].plan.warm_started


def test_time_indexed_execution_follows_the_plan_and_drops_it_when_it_runs_out():
    settings = ControllerSettings(execution="time_indexed", state_timeout=10.0)
    ctl, clock, out = make(settings)
    ctl.offer(obs(), clock.now)
    job = ctl.begin()
    plan = ctl.compute(job)
    clock.advance(2 * PERIOD)  # the plan arrives two steps after its state
    ctl.finish(job, plan)
    actions = np.clip(plan.best_actions, -1, 1)
    np.testing.assert_allclose(out[-1].action, actions[2])  # the action for "now", not the first
    clock.advance(PERIOD)
    np.testing.assert_allclose(ctl.tick().action, actions[3])
    clock.advance((TINY_HORIZON - 3) * PERIOD)
    ctl.offer(obs(), clock.now)  # keep the state fresh: only the plan runs out
    command = ctl.tick()
    assert command.kind == "safe" and "run out" in command.reason


def test_worker_thread_plans_and_stops():
    clock, out, published = FakeClock(), Outputs(), threading.Event()
    ctl = RecedingHorizonController(make_tiny_planner(), clock=clock,
                                    emit=lambda c: (out.append(c), published.set()))
    ctl.activate()
    ctl.start()
    try:
        ctl.offer(obs(), clock.now)
        assert published.wait(timeout=30.0)
    finally:
        ctl.stop()
    assert out.kinds() == ["plan"]


def test_controller_settings_validate_their_ranges():
    with pytest.raises(ValueError, match="control_period"):
        ControllerSettings(control_period=0.0)
    with pytest.raises(ValueError, match="execution"):
        ControllerSettings(execution="teleport")


def test_tracking_follows_the_plans_predicted_state_from_the_measured_one():
    calls = []

    def tracker(observation, target):
        calls.append((observation.copy(), target.copy()))
        return np.full(HOPPER_ACT, 0.5)

    clock, out = FakeClock(), Outputs()
    planner = make_tiny_planner()
    ctl = RecedingHorizonController(planner, ControllerSettings(execution="tracking",
                                                                state_timeout=10.0),
                                    clock=clock, emit=out, tracker=tracker)
    ctl.activate()
    ctl.offer(obs(0.0), clock.now)
    job = ctl.begin()
    plan = ctl.compute(job)
    clock.advance(3 * PERIOD)
    ctl.offer(obs(0.3), clock.now)          # measured while the plan was computed
    ctl.finish(job, plan)
    np.testing.assert_array_equal(out[-1].action, np.full(HOPPER_ACT, 0.5))
    measured, target = calls[-1]
    np.testing.assert_array_equal(measured, obs(0.3))
    np.testing.assert_allclose(target, plan.best_observations[4])  # 3 steps elapsed: next is 4
    clock.advance((TINY_HORIZON - 4) * PERIOD)
    ctl.offer(obs(0.4), clock.now)
    assert ctl.tick().kind == "safe"         # no predicted next state left: plan dropped


def test_tracking_needs_a_tracker():
    with pytest.raises(ValueError, match="tracker"):
        RecedingHorizonController(make_tiny_planner(), ControllerSettings(execution="tracking"),
                                  clock=FakeClock(), emit=Outputs())


def test_model_inverse_dynamics_recovers_the_action_that_was_applied():
    gym = pytest.importorskip("gymnasium")
    from diffuser_ros.control.tracking import ModelInverseDynamics
    from diffuser_ros.robots import HOPPER

    env = gym.make("Hopper-v5")
    obs0, _ = env.reset(seed=3)
    action = np.array([0.4, -0.3, 0.2])
    obs1, *_ = env.step(action.astype(np.float32))
    env.close()
    tracker = ModelInverseDynamics(HOPPER)
    np.testing.assert_allclose(tracker(obs0, obs1), action, atol=0.05)
    np.testing.assert_allclose(tracker(obs0[None], obs1[None])[0], action, atol=0.05)


# -- planning from where the robot will be (predict_ahead) -------------------------------------
def test_prediction_is_the_simulators_own_next_state_under_the_committed_action():
    """predict_ahead 1, hold: after the episode's first plan (which the robot waits for), each
    plan starts from the state the robot model predicts one period after the measured one, under
    the action the robot holds meanwhile; that is exactly where the simulator is when the plan's
    first action is applied."""
    from diffuser_ros.robots import HOPPER

    ctl, clock, out = make(ControllerSettings(predict_ahead=1), robot_model=True)
    env = HOPPER.make_env()
    state, _ = env.reset(seed=3)
    ctl.offer(state, clock.now)
    assert ctl.run_once()  # the first plan: the robot waits for it, at the measured state
    np.testing.assert_allclose(out[-1].plan.best_observations[0], state, atol=1e-6)
    applied = out[-1].action
    state, *_ = env.step(applied.astype(np.float32))
    clock.advance(PERIOD)
    for _ in range(3):
        ctl.offer(state, clock.now)
        assert ctl.run_once()  # computed within the period, for the next step
        # the world moves on while the plan is computed, under the action it was holding ...
        state, *_ = env.step(applied.astype(np.float32))
        clock.advance(PERIOD)
        started = ctl.tick()  # ... the plan starts acting at its step (here: the tick's) ...
        assert started.kind == "plan"
        # ... and it started from exactly there
        np.testing.assert_allclose(started.plan.best_observations[0], state, atol=1e-6)
        applied = started.action
    ctl.offer(state, clock.now)  # the state the last prediction was for: the error is reported
    assert ctl.status().prediction_error < 1e-5


def test_prediction_uses_the_plans_own_actions_once_a_plan_in_flight_acts():
    from diffuser_ros.control.robot_model import RobotModel

    calls = []

    class Recording(RobotModel):
        def predict(self, observation, actions):
            calls.append(np.array(actions))
            return super().predict(observation, actions)

    clock, out = FakeClock(), Outputs()
    planner = make_tiny_planner()
    ctl = RecedingHorizonController(
        planner, ControllerSettings(predict_ahead=2, plans_in_flight=2), clock=clock, emit=out,
        robot_model=Recording.for_planner(planner))
    ctl.activate()
    ctl.offer(obs(0.1), clock.now)
    first = ctl.begin()
    ctl.finish(first, ctl.compute(first))           # the first plan: acts from now, as measured
    delivered = out[-1].plan
    clock.advance(PERIOD)
    ctl.offer(obs(0.2), clock.now)
    second = ctl.begin()                            # in flight: acts from now + 2 periods
    clock.advance(PERIOD)
    ctl.offer(obs(0.3), clock.now)
    ctl.begin()
    # committed: the held first action at this step; the next is the in-flight plan's (unknown,
    # it acts from 3 periods), estimated by the delivered plan's own action for that step
    np.testing.assert_array_equal(calls[-1][0], delivered.action)
    np.testing.assert_array_equal(calls[-1][1], delivered.best_actions[3])
    assert second.warm_start is delivered  # never the plan still being computed


def test_an_episodes_first_plan_starts_from_the_measured_state():
    """The robot waits for an episode's first action (the simulator bridge holds it), so no
    time passes to predict over: that plan starts from the measured state, the next ones from
    the prediction, and after a reset the first again from the measured state."""
    ctl, clock, out = make(ControllerSettings(predict_ahead=2), robot_model=True)

    def planned_from(value):
        ctl.offer(obs(value), clock.now)
        job = ctl.begin()
        ctl.finish(job, ctl.compute(job))
        clock.advance(PERIOD)
        return job.state.stamp_ns - job.measured_ns, job.state.observation

    ahead, start = planned_from(0.1)
    assert ahead == 0
    np.testing.assert_allclose(start, obs(0.1), atol=1e-6)
    ahead, start = planned_from(0.2)
    assert ahead == 2 * PERIOD and not np.allclose(start, obs(0.2))
    ctl.request_reset()
    assert planned_from(0.3)[0] == 0
    assert planned_from(0.4)[0] == 2 * PERIOD


@pytest.mark.parametrize("execution", ["hold", "time_indexed"])
def test_a_plan_for_a_later_step_acts_from_that_step_not_when_it_arrives(execution):
    """With predict_ahead a plan is for the step the robot will be at. Arriving earlier, its
    first action must not replace the action of the current period (the robot would apply it a
    period early, where the prediction counted on the one before): it starts at the tick of its
    step."""
    ctl, clock, out = make(ControllerSettings(predict_ahead=1, execution=execution),
                           robot_model=True)
    ctl.offer(obs(0.1), clock.now)
    assert ctl.run_once() and out.kinds() == ["plan"]  # the episode's first plan: at once
    first = out[-1]
    clock.advance(PERIOD)
    ctl.offer(obs(0.2), clock.now)
    ctl.tick()                                  # the first plan's action for this period
    assert ctl.run_once()                       # delivered 3 ms into the period, for the next
    clock.advance(3 * MS)
    ctl.tick()
    assert all(o.stamp_ns == first.stamp_ns for o in out)  # only the first plan acts so far
    clock.advance(PERIOD - 3 * MS)              # its step has come: the robot says so
    ctl.offer(obs(0.3), clock.now)
    started = out[-1]
    assert started.kind == "plan" and started.plan is not first.plan
    np.testing.assert_array_equal(started.action, np.clip(started.plan.action, -1, 1))
    assert started.stamp_ns == clock.now        # planned from where the robot is now
    assert ctl.status().plans == 2 and ctl.status().late_plans == 0
    if execution == "hold":
        assert ctl.tick() is None               # started once; the robot holds it


def test_a_waiting_plan_answered_to_a_re_sent_state_is_not_sent_again():
    """predict_ahead in a world that waits for every action (lockstep, a misconfiguration): the
    plan for the next step waits, the simulator re-sends its state and gets that plan's first
    action; the state of the next step must not make the plan send it a second time (lockstep
    would step twice)."""
    ctl, clock, out = make(ControllerSettings(predict_ahead=1), robot_model=True)
    ctl.offer(obs(0.1), clock.now)
    assert ctl.run_once()                       # the first plan: answers at once
    clock.advance(PERIOD)
    ctl.offer(obs(0.2), clock.now)
    assert ctl.run_once() and out.kinds() == ["plan"]  # for the next step: it waits
    ctl.offer(obs(0.2), clock.now)              # nothing came: the state again
    assert not ctl.run_once() and out.kinds() == ["plan", "repeat"]
    clock.advance(PERIOD)
    ctl.offer(obs(0.3), clock.now)              # the robot took that action and moved on
    assert out.kinds() == ["plan", "repeat"]


def test_prediction_needs_a_robot_model():
    with pytest.raises(ValueError, match="robot model"):
        RecedingHorizonController(make_tiny_planner(), ControllerSettings(predict_ahead=1),
                                  clock=FakeClock(), emit=Outputs())


def test_plans_in_flight_run_on_their_own_planners_and_need_one_each():
    """Two workers, two planners: the second state is planned on while the first plan is still
    being computed (the barrier opens only when both are planning at once)."""
    clock, out = FakeClock(), Outputs()
    both_planning = threading.Barrier(2, timeout=30.0)
    first_entered, newer_out = threading.Event(), threading.Event()

    class Held(PlannerProxy):
        def plan(self, *args, **kwargs):
            first_entered.set()
            both_planning.wait()
            return self.planner.plan(*args, **kwargs)

    def emit(output):
        out.append(output)
        if output.stamp_ns == clock.now + PERIOD:
            newer_out.set()

    settings = ControllerSettings(plans_in_flight=2, state_timeout=30.0)
    ctl = RecedingHorizonController(Held(make_tiny_planner()), settings, clock=clock, emit=emit,
                                    spare_planners=[Held(make_tiny_planner())])
    ctl.activate()
    ctl.start()
    try:
        ctl.offer(obs(0.1), clock.now)
        assert first_entered.wait(30.0)  # one worker holds the first state
        ctl.offer(obs(0.2), clock.now + PERIOD)
        assert newer_out.wait(30.0)
    finally:
        ctl.stop()  # joins both workers: the older plan is done too
    planned = [o.stamp_ns for o in out if o.kind == "plan"]
    # both computed at once; the older one, if it finished last, is dropped as late
    assert clock.now + PERIOD in planned and len(planned) + ctl.status().late_plans == 2
    with pytest.raises(ValueError, match="needs 2 planners"):
        RecedingHorizonController(make_tiny_planner(), settings, clock=clock, emit=out).start()


def test_action_delay_counts_from_the_measured_state_when_planning_from_a_prediction():
    ctl, clock, out = make(ControllerSettings(predict_ahead=2), robot_model=True)
    ctl.offer(obs(0.1), clock.now)
    job = ctl.begin()
    clock.advance(3 * PERIOD)  # delivered three periods after the measurement
    ctl.finish(job, ctl.compute(job))
    assert ctl.status().delay["mean"] == pytest.approx(3 * PERIOD * 1e-9)
