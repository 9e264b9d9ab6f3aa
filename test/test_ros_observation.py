"""rclpy-free pieces of the nodes: joint → observation mapping (latency: test_latency.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffuser_ros.nodes.observation import JointStateMapping
from diffuser_ros.robots import HOPPER

HOPPER_JOINTS = HOPPER.joints


def test_mapping_matches_gymnasium_hopper_v5_observation():
    gym = pytest.importorskip("gymnasium")
    env = gym.make("Hopper-v5", disable_env_checker=True)
    mapping = JointStateMapping()
    try:
        obs, _ = env.reset(seed=3)
        data = env.unwrapped.data
        np.testing.assert_allclose(mapping.from_arrays(data.qpos, data.qvel), obs, atol=0)
        # Velocities beyond +-10 are clipped exactly as Hopper-v5 clips them.
        qvel = np.array([12.0, -30.0, 0.5, 11.0, -10.5, 3.0])
        env.unwrapped.set_state(data.qpos.copy(), qvel)
        expected = env.unwrapped._get_obs()
        np.testing.assert_allclose(mapping.from_arrays(data.qpos, data.qvel), expected, atol=0)
        assert expected[5:].max() == 10.0 and expected[5:].min() == -10.0
    finally:
        env.close()


def test_mapping_reads_joints_by_name_in_any_order():
    mapping = JointStateMapping()
    qpos = np.arange(6, dtype=float)
    qvel = np.array([1.0, 2.0, 3.0, 40.0, -50.0, 6.0])
    order = [4, 0, 5, 2, 1, 3]
    obs = mapping.observation([HOPPER_JOINTS[i] for i in order], qpos[order], qvel[order])
    np.testing.assert_array_equal(obs, np.r_[qpos[1:], 1, 2, 3, 10, -10, 6])
    assert mapping.observation_dim == obs.size == 11
    # An extra joint in the message is ignored.
    obs2 = mapping.observation(list(HOPPER_JOINTS) + ["extra"], np.r_[qpos, 9], np.r_[qvel, 9])
    np.testing.assert_array_equal(obs, obs2)


@pytest.mark.parametrize("names, pos, vel, match", [
    (HOPPER_JOINTS[:5], [0.0] * 5, [0.0] * 5, "lacks joint"),
    (HOPPER_JOINTS, [0.0] * 5, [0.0] * 6, "6 names but 5 positions"),
])
def test_mapping_rejects_joint_states_it_cannot_map(names, pos, vel, match):
    with pytest.raises(ValueError, match=match):
        JointStateMapping().observation(names, pos, vel)


def test_mapping_keeps_non_finite_values_for_the_planner_to_refuse(tiny_planner):
    mapping = JointStateMapping()
    obs = mapping.observation(HOPPER_JOINTS, [0, 0, math.nan, 0, 0, 0], [0, 0, 0, 0, math.inf, 0])
    assert math.isnan(obs[1]) and obs[5 + 4] == math.inf  # inf is not clipped to 10
    with pytest.raises(ValueError, match="rooty position, leg_joint velocity"):
        tiny_planner.check_observation(obs)


def test_mapping_settings_are_validated():
    with pytest.raises(ValueError, match="duplicates"):
        JointStateMapping(("a", "a"))
    with pytest.raises(ValueError, match="position_skip"):
        JointStateMapping(("a", "b"), position_skip=3)
    no_clip = JointStateMapping(("a",), position_skip=0, velocity_clip=0.0)
    np.testing.assert_array_equal(no_clip.observation(["a"], [1.0], [99.0]), [1.0, 99.0])
