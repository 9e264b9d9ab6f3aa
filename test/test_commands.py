"""Speed commands and goals without ROS: the objective, the command value's data, the
controller's command timeout and goal constraints, and the command evaluator."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import (
    HOPPER_ACT,
    HOPPER_OBS,
    HOPPER_SPEED_INDEX,
    TINY_HORIZON,
    PlannerProxy,
    make_tiny_planner,
)

from diffuser_ros.control import ControllerSettings, RecedingHorizonController
from diffuser_ros.evaluation.closed_loop import FakeClock
from diffuser_ros.evaluation.commands import CommandSchedule, response_time, segment_speeds
from diffuser_ros.evaluation.commands import main as commands_main
from diffuser_ros.planning import PlannerConfig, load_planner
from diffuser_ros.planning.objective import Objective, command_value_input
from diffuser_ros.training.sequences import (
    CommandValueDataset,
    discounted_returns,
    speed_coverage,
    speed_tracking_rewards,
)

DIM = HOPPER_OBS + HOPPER_ACT
SPEED_CHANNEL = HOPPER_ACT + HOPPER_SPEED_INDEX


def _planner(**config):
    return make_tiny_planner(seed=0, with_command=True, config=PlannerConfig(
        n_candidates=4, seed=0, device="cpu", **config))


# -- the objective --------------------------------------------------------------------------
def test_without_a_command_the_objective_is_the_value_function(hopper_observation):
    planner = _planner(command_weight=5.0)
    x = torch.randn(4, DIM, TINY_HORIZON)
    t = torch.zeros(4, dtype=torch.long)
    objective = planner.objective(None, 4)
    torch.testing.assert_close(objective(x, t), planner.value_function(x, t).sample.squeeze(-1))


def test_objective_is_the_weighted_sum_of_its_terms():
    planner = _planner()
    x = torch.randn(3, DIM, TINY_HORIZON)
    t = torch.full((3,), 4, dtype=torch.long)
    command = torch.tensor([1.5, 2.0, 3.0])
    objective = Objective(planner.value_function, value_weight=0.5, command=command,
                          command_value=planner.command_value,
                          command_spec=planner.command_spec, command_weight=2.0,
                          speed_cost_weight=3.0, speed_channel=SPEED_CHANNEL,
                          speed_mean=1.0, speed_std=2.0)
    value = planner.value_function(x, t).sample.squeeze(-1)
    command_value = planner.command_value(
        command_value_input(x, command, planner.command_spec), t).sample.squeeze(-1)
    speed = x[:, SPEED_CHANNEL, 1:] * 2.0 + 1.0
    cost = -((speed - command[:, None]) ** 2).mean(dim=1)
    torch.testing.assert_close(objective(x, t), 0.5 * value + 2.0 * command_value + 3.0 * cost)


def test_the_command_channel_is_the_normalised_command():
    planner = _planner()
    x = torch.zeros(2, DIM, TINY_HORIZON)
    inputs = command_value_input(x, torch.tensor([2.5, 4.0]), planner.command_spec)
    assert inputs.shape == (2, DIM + 1, TINY_HORIZON)
    spec = planner.command_spec
    torch.testing.assert_close(inputs[:, -1], torch.tensor(
        [[0.0] * TINY_HORIZON, [(4.0 - spec.command_mean) / spec.command_std] * TINY_HORIZON]))


def test_the_command_changes_the_plan_and_its_ranking(hopper_observation):
    planner = _planner(command_weight=500.0)
    noise = torch.randn(21, 4, TINY_HORIZON, DIM, generator=torch.Generator().manual_seed(3))
    free = planner.plan(hopper_observation, noise=noise)
    slow = planner.plan(hopper_observation, noise=noise, command=1.0)
    fast = planner.plan(hopper_observation, noise=noise, command=4.0)
    assert not np.allclose(free.actions, slow.actions)
    assert not np.allclose(slow.actions, fast.actions)
    assert not np.allclose(slow.values, fast.values)


def test_speed_cost_guidance_steps_along_its_gradient(hopper_observation):
    """With the return weighted 0, one guide step moves exactly the planned speeds after the
    current state, by scale * w * d/dx[-mean_h (v_h - v*)^2] (v = x * std + mean)."""
    scale, weight, command = 0.1, 2.0, 3.0
    planner = _planner(command_return_weight=0.0, command_weight=0.0, speed_cost_weight=weight,
                       guide_scale=scale, scale_grad_by_std=False, n_guide_steps=1)
    seen = {"value": [], "unet": []}
    planner.value_function.register_forward_pre_hook(
        lambda m, args: seen["value"].append(args[0].detach().clone()))
    planner.unet.register_forward_pre_hook(
        lambda m, args: seen["unet"].append(args[0].detach().clone()))
    planner.plan(hopper_observation, command=command)
    before, after = seen["value"][0], seen["unet"][0]
    mean = planner.normalizer.observation_mean[HOPPER_SPEED_INDEX]
    std = planner.normalizer.observation_std[HOPPER_SPEED_INDEX]
    speed = before[:, SPEED_CHANNEL, 1:] * std + mean
    expected = scale * weight * -2.0 * (speed - command) * std / (TINY_HORIZON - 1)
    delta = after - before
    torch.testing.assert_close(delta[:, SPEED_CHANNEL, 1:], expected, rtol=1e-4, atol=1e-6)
    delta[:, SPEED_CHANNEL, 1:] = 0
    assert torch.count_nonzero(delta) == 0


@pytest.mark.parametrize("command, match", [
    (np.nan, "finite"), ([1.0, 2.0], "one speed or one per observation"), ("fast", "numeric"),
])
def test_bad_commands_are_rejected(hopper_observation, command, match):
    with pytest.raises(ValueError, match=match):
        _planner().plan(hopper_observation, command=command)


def test_a_model_without_command_value_needs_the_speed_cost(hopper_observation):
    planner = make_tiny_planner(seed=0)
    with pytest.raises(ValueError, match="speed_cost_weight"):
        planner.plan(hopper_observation, command=2.0)
    planner.configure(planner.config.replace(speed_cost_weight=1.0))
    assert planner.plan(hopper_observation, command=2.0).action.shape == (HOPPER_ACT,)


def test_command_value_round_trips_through_the_model_folder(tiny_command_model_dir,
                                                            hopper_observation):
    planner = load_planner(tiny_command_model_dir, n_candidates=4, seed=0, device="cpu")
    assert planner.command_spec.speed_range == (1.0, 4.0)
    assert planner.spec.speed_index == HOPPER_SPEED_INDEX
    reference = _planner()
    noise = torch.randn(21, 4, TINY_HORIZON, DIM, generator=torch.Generator().manual_seed(5))
    np.testing.assert_allclose(planner.plan(hopper_observation, noise=noise, command=2.0).values,
                               reference.plan(hopper_observation, noise=noise, command=2.0).values,
                               rtol=1e-5)


def test_a_corrupt_command_spec_is_named(tiny_command_model_dir, tmp_path):
    import shutil

    from diffuser_ros.planning import CheckpointError

    broken = tmp_path / "model"
    shutil.copytree(tiny_command_model_dir, broken)
    (broken / "command.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="command.json"):
        load_planner(broken, device="cpu")
    (broken / "command.json").unlink()
    with pytest.raises(CheckpointError, match="command.json"):
        load_planner(broken, device="cpu")


# -- the command value's data ---------------------------------------------------------------
def _dataset(episodes):
    """D4RL-layout data from ``(speeds, terminal)`` episodes (other observations random)."""
    rng = np.random.default_rng(0)
    obs, terminals, timeouts = [], [], []
    for speeds, terminal in episodes:
        o = rng.normal(size=(len(speeds), HOPPER_OBS))
        o[:, HOPPER_SPEED_INDEX] = speeds
        obs.append(o)
        terminals += [False] * (len(speeds) - 1) + [terminal]
        timeouts += [False] * (len(speeds) - 1) + [not terminal]
    obs = np.concatenate(obs)
    n = len(obs)
    return {"observations": obs, "actions": rng.uniform(-1, 1, (n, HOPPER_ACT)),
            "rewards": rng.normal(size=n), "terminals": np.array(terminals),
            "timeouts": np.array(timeouts),
            "next_observations": np.concatenate([obs[1:], obs[-1:]])}


def test_command_returns_are_the_relabelled_discounted_returns():
    speeds_a = np.linspace(0.5, 3.5, 60)
    speeds_b = np.full(40, 2.0)
    data = _dataset([(speeds_a, True), (speeds_b, False)])
    ds = CommandValueDataset(data, horizon=8, speed_index=HOPPER_SPEED_INDEX,
                             command_range=(1.0, 3.0), reward_width=0.5, discount=0.9,
                             termination_penalty=-100.0, max_episode_length=100,
                             grid_step=0.05)
    for command in (1.0, 2.5, 1.725):  # on the grid, and halfway between two grid points
        rewards = speed_tracking_rewards(speeds_a, np.array([command]), 0.5)[:, 0]
        rewards[-1] -= 100.0
        expected = discounted_returns(rewards, 0.9)
        rows = np.array([i for i, (ep, start) in enumerate(ds.indices) if ep == 0][:30])
        _, values = ds.command_batch(rows, np.full(len(rows), command))
        starts = ds.indices[rows, 1]
        rtol = 1e-5 if command in (1.0, 2.5) else 1e-2  # linear interpolation in between
        np.testing.assert_allclose(values.numpy(), expected[starts], rtol=rtol, atol=1e-2)
    # A timed-out episode at exactly the commanded speed: no penalty, reward 1 at every step.
    rows = np.array([i for i, (ep, start) in enumerate(ds.indices) if ep == 1 and start == 0])
    _, values = ds.command_batch(rows, np.array([2.0]))
    np.testing.assert_allclose(values.numpy(), [discounted_returns(np.ones(40), 0.9)[0]],
                               rtol=1e-5)
    spec = ds.command_spec()
    assert spec.speed_range == (1.0, 3.0) and spec.discount == 0.9
    assert spec.command_mean == 2.0


def test_speed_coverage_separates_the_take_off():
    data = _dataset([(np.concatenate([np.zeros(125), np.full(200, 3.0)]), False)])
    coverage = speed_coverage(data, HOPPER_SPEED_INDEX)
    assert coverage["settled_steps"]["p5"] == 3.0
    assert coverage["all_steps"]["p5"] == 0.0
    assert coverage["n_settled_episodes"] == 1


# -- the controller -------------------------------------------------------------------------
class RecordingPlanner(PlannerProxy):
    """The real tiny planner, recording what each plan was asked for."""

    def __init__(self, planner):
        super().__init__(planner)
        self.calls: list[dict] = []

    def plan(self, observation, constraints=None, **kwargs):
        self.calls.append({"constraints": constraints, **kwargs})
        return self.planner.plan(observation, constraints, **kwargs)


def _controller(planner, **settings):
    clock = FakeClock()
    clock.now = 1
    sent = []
    controller = RecedingHorizonController(planner, ControllerSettings(**settings), clock=clock,
                                           emit=sent.append)
    controller.activate()
    return controller, clock, sent


def test_a_command_is_planned_for_until_it_times_out(hopper_observation):
    planner = RecordingPlanner(_planner())
    controller, clock, _ = _controller(planner, command_timeout=0.5, command_gain=0.0)
    controller.set_command(2.5)
    controller.offer(hopper_observation, clock.now)
    assert controller.run_once()
    assert planner.calls[-1]["command"] == 2.5
    assert controller.status().command == 2.5
    clock.now += int(0.49e9)
    controller.offer(hopper_observation, clock.now)
    controller.run_once()
    assert planner.calls[-1]["command"] == 2.5
    clock.now += int(0.02e9)  # 0.51 s after the command: back to the learned return
    controller.offer(hopper_observation, clock.now)
    controller.run_once()
    assert planner.calls[-1]["command"] is None
    assert controller.status().command is None
    assert controller.status().command_age == pytest.approx(0.51)
    controller.set_command(3.0)  # a new command renews it
    assert controller.command() == 3.0
    controller.set_command(None)
    assert controller.command() is None


def test_the_speed_loop_integrates_the_error_near_the_command(hopper_observation):
    """command_gain: plan for command + gain x integral of (command - measured speed); errors
    beyond the integration band (a take-off) are not integrated; the range bounds it."""
    planner = RecordingPlanner(_planner())
    controller, clock, _ = _controller(planner, command_gain=2.0, command_timeout=1000.0)
    controller.set_command(2.0)

    def plan_at(speed, dt_s):
        obs = hopper_observation.copy()
        obs[HOPPER_SPEED_INDEX] = speed
        clock.now += int(dt_s * 1e9)
        controller.offer(obs, clock.now)
        controller.run_once()
        return planner.calls[-1]["command"]

    assert plan_at(0.0, 0.0) == 2.0     # first state: nothing integrated yet
    assert plan_at(0.5, 0.1) == 2.0     # 1.5 m/s below: a take-off, not integrated
    assert plan_at(1.8, 0.5) == pytest.approx(2.0 + 2.0 * 0.2 * 0.5)    # integrates 0.2 x 0.5 s
    assert plan_at(2.1, 0.5) == pytest.approx(2.2 + 2.0 * -0.1 * 0.5)   # and back
    assert controller.status().planned_command == pytest.approx(2.1)
    assert plan_at(0.0, 10.0) == pytest.approx(2.1)  # beyond the band again: held
    controller.request_reset()  # a new episode starts the loop afresh
    assert plan_at(1.0, 0.1) == 2.0
    for _ in range(5):  # a long error inside the band saturates at the range: 4 m/s
        last = plan_at(1.1, 1.0)
    assert last <= 4.0


def test_a_new_command_starts_the_speed_loop_afresh_and_jitter_keeps_it():
    from diffuser_ros.control.speed_loop import SpeedLoop

    loop, bounds, second = SpeedLoop(), (1.0, 4.0), 10**9
    assert loop.planned(2.0, 1.8, 0, 1.0, bounds) == 2.0
    assert loop.planned(2.0, 1.8, second, 1.0, bounds) == pytest.approx(2.2)  # 0.2 m/s x 1 s
    # 0.05 m/s of jitter keeps the trim (and integrates 2.05 - 1.85 = 0.2 more)
    assert loop.planned(2.05, 1.85, 2 * second, 1.0, bounds) == pytest.approx(2.45)
    assert loop.planned(1.5, 1.8, 3 * second, 1.0, bounds) == 1.5  # a new command: afresh
    # one per robot of a batch
    batch = SpeedLoop()
    np.testing.assert_allclose(batch.planned(1.5, np.array([1.3, 1.7]), 0, 1.0, bounds), [1.5, 1.5])
    np.testing.assert_allclose(batch.planned(1.5, np.array([1.3, 1.7]), second, 1.0, bounds),
                               [1.7, 1.3])


@pytest.mark.parametrize("speed, match", [
    (float("nan"), "finite"), (0.2, r"outside .*\[1.00, 4.00\]"), (9.0, "outside"),
])
def test_commands_the_model_cannot_plan_for_are_refused(speed, match):
    controller, _, _ = _controller(_planner())
    controller.set_command(2.0)
    with pytest.raises(ValueError, match=match):
        controller.set_command(speed)
    assert controller.command() == 2.0  # the command in effect stays


def test_a_model_without_command_value_refuses_commands():
    controller, _, _ = _controller(make_tiny_planner(seed=0))
    assert controller.targets.speed_range is None
    with pytest.raises(ValueError, match="no command value"):
        controller.set_command(2.0)


def test_goal_constraints_are_inpainted_into_every_plan(hopper_observation):
    planner = RecordingPlanner(_planner())
    controller, clock, sent = _controller(planner)
    goal = {TINY_HORIZON - 1: ([0, HOPPER_SPEED_INDEX], np.array([1.3, 2.0]))}
    controller.set_constraints(goal)
    controller.offer(hopper_observation, clock.now)
    controller.run_once()
    plan = sent[-1].plan
    np.testing.assert_array_equal(plan.best_observations[-1, [0, HOPPER_SPEED_INDEX]], [1.3, 2.0])
    assert controller.status().constraints == 2
    with pytest.raises(ValueError, match="constraint"):
        controller.set_constraints({0: ([0], [1.0])})  # index 0 is the measured state
    assert controller.targets.constraints == goal
    controller.set_constraints(None)
    controller.offer(hopper_observation, clock.now + 1)
    controller.run_once()
    assert planner.calls[-1]["constraints"] is None


# -- the evaluator --------------------------------------------------------------------------
def test_command_schedules_parse_and_evaluate():
    schedule = CommandSchedule.parse("2.2;2.8@500")
    assert [schedule(k) for k in (0, 499, 500, 999)] == [2.2, 2.2, 2.8, 2.8]
    assert str(schedule) == "2.2;2.8@500"
    assert CommandSchedule.parse("none")(10) is None
    for bad in ("fast", "2.0@5", "2.0;3.0@0", "2.0;3.0@50;1.0@40", "nan"):
        with pytest.raises(Exception, match="schedule|bad schedule"):
            CommandSchedule.parse(bad)


def test_segment_speeds_and_response_time():
    speeds = np.concatenate([np.full(200, 2.0), np.linspace(2.0, 3.0, 100), np.full(200, 3.0)])
    schedule = CommandSchedule.parse("2.0;3.0@200")
    assert segment_speeds(speeds, schedule, 500, 125) == [2.0, pytest.approx(3.0, abs=1e-9)]
    # the 10-step mean 2 + (k + 4.5 - 200) / 99 first reaches 2.85 at k = 280
    t = response_time(speeds, 200, 3.0, 10, 0.15, 0.01, 500)
    assert t == pytest.approx(0.80)
    assert response_time(speeds, 200, 5.0, 10, 0.15, 0.01, 500) is None


def test_command_evaluation_runs_end_to_end(tiny_command_model_dir, tmp_path):
    out = tmp_path / "commands"
    # 12 steps: too short to fall, so every step of every episode has a speed
    args = ["--model-path", str(tiny_command_model_dir), "--seeds", "0-1", "--max-steps", "12",
            "--schedule", "none", "--schedule", "2.0;3.0@6", "--settle-s", "0.016",
            "--out", str(out), "--no-progress", "--n-candidates", "2", "--device", "cpu"]
    assert commands_main(args) == 0
    results = json.loads((out / "commands.json").read_text())
    step = results["schedules"]["2;3@6"]
    assert step["lengths"] == [12, 12] and step["full_length_fraction"] == 1.0
    assert len(step["speed_trace_mean"]) == 12 and None not in step["speed_trace_mean"]
    assert [s["command"] for s in step["segments"]] == [2.0, 3.0]
    for segment in step["segments"]:  # speeds after the first 2 steps of each segment
        assert all(np.isfinite(a) for a in segment["achieved"])
        assert np.isfinite(segment["achieved_mean"])
    assert results["schedules"]["none"]["segments"][0]["command"] is None
    assert (out / "commands.png").stat().st_size > 0
    # finished schedules are kept: a rerun with one more schedule runs only that one
    before = (out / "commands.json").read_text()
    assert commands_main(args) == 0
    assert json.loads((out / "commands.json").read_text()) == json.loads(before)
