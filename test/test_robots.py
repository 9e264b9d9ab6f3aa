"""The robot entries agree with the real gymnasium environments they name."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from diffuser_ros.robots import HOPPER, ROBOTS, Robot, env_robot, robot, robot_for_env
from diffuser_ros.simulation import SimStartupError, joint_layout, make_env

mujoco = pytest.importorskip("mujoco")
pytest.importorskip("gymnasium")


def observation_from_state(entry: Robot, env) -> np.ndarray:
    """The observation as the entry lays it out, each entry read from the MuJoCo state by its
    joint's name (so an entry with two joints swapped builds another vector)."""
    model, data = env.unwrapped.model, env.unwrapped.data
    positions = [data.qpos[model.joint(j).qposadr[0]] for j in entry.joints[entry.position_skip:]]
    velocities = [data.qvel[model.joint(j).dofadr[0]] for j in entry.joints]
    return np.concatenate([positions, np.clip(velocities, -entry.velocity_clip,
                                              entry.velocity_clip)])


@pytest.fixture
def hopper_env():
    env = HOPPER.make_env()
    yield env
    env.close()


def _observations_after_steps(env, seed: int = 3, steps: int = 5) -> list[np.ndarray]:
    obs, _ = env.reset(seed=seed)
    seen = [obs]
    for _ in range(steps):
        obs, *_ = env.step(np.full(HOPPER.action_dim, 0.5, dtype=np.float32))
        seen.append(obs)
    return seen


def test_hopper_joints_are_the_models_in_qpos_order(hopper_env):
    assert tuple(joint_layout(hopper_env)) == HOPPER.joints
    assert len(HOPPER.observation_labels) == HOPPER.observation_dim
    assert hopper_env.observation_space.shape == (HOPPER.observation_dim,)


def test_hopper_observation_layout_matches_the_env(hopper_env):
    obs, _ = hopper_env.reset(seed=3)
    np.testing.assert_array_equal(obs, observation_from_state(HOPPER, hopper_env))
    for _ in range(5):
        obs, *_ = hopper_env.step(np.full(HOPPER.action_dim, 0.5, dtype=np.float32))
        np.testing.assert_array_equal(obs, observation_from_state(HOPPER, hopper_env))
    # Velocities beyond the clip come out clipped.
    sim = hopper_env.unwrapped
    sim.set_state(sim.data.qpos.copy(), np.linspace(-40.0, 40.0, sim.model.nv))
    obs, *_ = hopper_env.step(np.zeros(HOPPER.action_dim, dtype=np.float32))
    assert np.abs(sim.data.qvel).max() > HOPPER.velocity_clip
    np.testing.assert_array_equal(obs, observation_from_state(HOPPER, hopper_env))


def test_a_swapped_joint_does_not_match_the_env(hopper_env):
    joints = list(HOPPER.joints)
    joints[3], joints[4] = joints[4], joints[3]  # thigh <-> leg
    swapped = dataclasses.replace(HOPPER, joints=tuple(joints))
    obs = _observations_after_steps(hopper_env)[-1]
    assert not np.array_equal(obs, observation_from_state(swapped, hopper_env))


def test_hopper_speed_index_is_the_forward_velocity(hopper_env):
    model = hopper_env.unwrapped.model
    rootx = model.joint(HOPPER.observation_labels[HOPPER.speed_index].split()[0])
    assert HOPPER.observation_labels[HOPPER.speed_index] == "rootx velocity"
    assert int(rootx.type[0]) == int(mujoco.mjtJoint.mjJNT_SLIDE)
    np.testing.assert_array_equal(rootx.axis, [1.0, 0.0, 0.0])  # the track runs along x
    obs = _observations_after_steps(hopper_env)[-1]
    assert obs[HOPPER.speed_index] == hopper_env.unwrapped.data.qvel[rootx.dofadr[0]] != 0.0


def test_hopper_actions_and_control_period_match_the_env(hopper_env):
    model = hopper_env.unwrapped.model
    space = hopper_env.action_space
    assert space.shape == (HOPPER.action_dim,)
    driven = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, int(model.actuator_trnid[a, 0]))
              for a in range(model.nu)]
    assert tuple(driven) == HOPPER.action_joints
    # The action bounds are the ctrlrange of the actuators driving the action joints.
    np.testing.assert_array_equal(space.low, model.actuator_ctrlrange[:, 0])
    np.testing.assert_array_equal(space.high, model.actuator_ctrlrange[:, 1])
    assert hopper_env.unwrapped.dt == pytest.approx(HOPPER.control_period, abs=1e-12)


def test_lookups_name_the_known_robots_and_environments():
    assert robot("hopper") is HOPPER and robot_for_env("Hopper-v5") is HOPPER
    assert env_robot("Hopper-v5") is HOPPER and set(ROBOTS) == {"hopper"}
    assert robot_for_env("Walker2d-v5") is None
    with pytest.raises(ValueError, match="'hopper'"):
        robot("walker")
    with pytest.raises(ValueError, match="Hopper-v5"):
        env_robot("Walker2d-v5")
    with pytest.raises(SimStartupError, match="Walker2d-v5"):
        make_env("Walker2d-v5", 10)


def test_an_inconsistent_entry_is_refused():
    with pytest.raises(ValueError, match="speed_index"):
        dataclasses.replace(HOPPER, speed_index=HOPPER.observation_dim)
    with pytest.raises(ValueError, match="action_joints"):
        dataclasses.replace(HOPPER, action_joints=("thigh_joint", "ankle"))
