"""The simulator node's robot apart from ROS: episodes, seeds, statistics (simulation.py)."""

from __future__ import annotations

import numpy as np
import pytest

from diffuser_ros.robots import HOPPER
from diffuser_ros.simulation import (
    SimStartupError,
    SimulatedEpisodes,
    episodes_summary,
    joint_layout,
    make_env,
    summary_line,
)


def test_episodes_are_seeded_stepped_clipped_and_summarised():
    sim = SimulatedEpisodes(make_env(HOPPER.env_id, max_episode_steps=5), seed=7)
    first_state = sim.joint_state()
    assert sim.episode_seed == 7 and sim.forward_speed() is None
    endings = [sim.step(np.array([5.0, -5.0, 0.0])) for _ in range(5)]  # clipped to [-1, 1]
    assert endings[:4] == ["", "", "", ""] and endings[4] == "truncated"
    assert sim.steps == 5 and sim.length == 5 and sim.forward_speed() is not None
    stats = sim.end_episode(endings[4], sim_time=1.04)
    assert stats["episode"] == 1 and stats["seed"] == 7 and stats["length"] == 5
    assert stats["sim_time"] == 1.04 and stats["return"] == pytest.approx(sim.results[0]["return"])
    sim.reset()
    assert sim.episode_seed == 8 and sim.length == 0 and sim.steps == 5
    again = SimulatedEpisodes(make_env(HOPPER.env_id, max_episode_steps=5), seed=7)
    assert again.joint_state() == first_state  # the same seed, the same start
    summary = sim.summary()
    assert summary["episodes"] == 1 and summary["steps"] == 5
    sim.close()
    again.close()


def test_a_run_is_summarised_by_its_standard_error_and_its_full_length_episodes():
    results = [{"return": 10.0, "length": 1000, "reason": "truncated"},
               {"return": 4.0, "length": 300, "reason": "terminated"},
               {"return": 7.0, "length": 700, "reason": "terminated"}]
    summary = episodes_summary(results)
    assert summary["mean_return"] == pytest.approx(7.0)
    assert summary["stderr_return"] == pytest.approx(np.std([10, 4, 7], ddof=1) / np.sqrt(3))
    assert summary["full_length"] == 1 and summary["mean_length"] == pytest.approx(2000 / 3)
    line = summary_line(summary)
    assert "mean return 7.00 ± 1.73 (s.e." in line and "full length 1/3" in line
    one = summary_line(episodes_summary(results[:1]))  # one episode: no spread, no "nan"
    assert "mean return 10.00, full length 1/1" in one and "nan" not in one


def test_the_env_publishes_the_robot_entrys_joints_and_unknown_envs_are_refused():
    env = make_env(HOPPER.env_id, max_episode_steps=10)
    assert tuple(joint_layout(env)) == HOPPER.joints
    env.close()
    with pytest.raises(SimStartupError, match="no robot entry"):
        make_env("Pendulum-v1", max_episode_steps=10)


def test_a_video_that_cannot_be_written_is_a_clear_startup_error(tmp_path):
    env = make_env(HOPPER.env_id, max_episode_steps=10)
    with pytest.raises(SimStartupError, match="cannot write video"):
        SimulatedEpisodes(env, seed=0, record_video=str(tmp_path / "run.avi"))


def test_a_simulated_robot_can_differ_from_its_model():
    from diffuser_ros.control.robot_model import RobotModel

    model = RobotModel(HOPPER)  # the controller's model: as trained
    action = np.array([0.2, -0.2, 0.1])
    for scales, matches in (({}, True), ({"mass_scale": 1.5}, False)):
        env = HOPPER.make_env(**scales)
        state, _ = env.reset(seed=4)
        for _ in range(5):  # standing on the floor: contact, where friction acts
            predicted = model.predict(state, action[None])
            state, *_ = env.step(action.astype(np.float32))
        env.close()
        assert np.allclose(predicted, state, atol=1e-6) == matches
    heavy, normal = HOPPER.make_env(mass_scale=1.5), HOPPER.make_env()
    np.testing.assert_allclose(heavy.unwrapped.model.body_mass,
                               1.5 * normal.unwrapped.model.body_mass)
    slippery = HOPPER.make_env(friction_scale=0.3)
    np.testing.assert_allclose(slippery.unwrapped.model.geom_friction[:, 0],
                               0.3 * normal.unwrapped.model.geom_friction[:, 0])
    for env in (heavy, normal, slippery):
        env.close()
    with pytest.raises(ValueError, match="mass_scale"):
        HOPPER.make_env(mass_scale=0.0)
