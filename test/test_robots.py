"""The robot entries agree with the real gymnasium environments they name."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from diffuser_ros.robots import HOPPER, ROBOTS, WALKER2D, Robot, env_robot, robot, robot_for_env
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


@pytest.fixture(params=sorted(ROBOTS))
def entry(request) -> Robot:
    return ROBOTS[request.param]


@pytest.fixture
def env(entry):
    env = entry.make_env()
    yield env
    env.close()


def _observations_after_steps(entry: Robot, env, seed: int = 3,
                              steps: int = 5) -> list[np.ndarray]:
    obs, _ = env.reset(seed=seed)
    seen = [obs]
    for _ in range(steps):
        obs, *_ = env.step(np.full(entry.action_dim, 0.5, dtype=np.float32))
        seen.append(obs)
    return seen


def test_joints_are_the_models_in_qpos_order(entry, env):
    assert tuple(joint_layout(env)) == entry.joints
    assert len(entry.observation_labels) == entry.observation_dim
    assert env.observation_space.shape == (entry.observation_dim,)


def test_observation_layout_matches_the_env(entry, env):
    obs, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs, observation_from_state(entry, env))
    for _ in range(5):
        obs, *_ = env.step(np.full(entry.action_dim, 0.5, dtype=np.float32))
        np.testing.assert_array_equal(obs, observation_from_state(entry, env))
    # Velocities beyond the clip come out clipped.
    sim = env.unwrapped
    sim.set_state(sim.data.qpos.copy(), np.linspace(-40.0, 40.0, sim.model.nv))
    obs, *_ = env.step(np.zeros(entry.action_dim, dtype=np.float32))
    assert np.abs(sim.data.qvel).max() > entry.velocity_clip
    np.testing.assert_array_equal(obs, observation_from_state(entry, env))


def test_a_swapped_joint_does_not_match_the_env(entry, env):
    """Any two joints swapped (neighbours, and Walker2d's right and left sides) give another
    vector."""
    obs = _observations_after_steps(entry, env)[-1]
    n = len(entry.joints)
    pairs = [(i, i + 1) for i in range(n - 1)] + [(i, i + 3) for i in range(3, n - 3)]
    for i, j in pairs:
        joints = list(entry.joints)
        joints[i], joints[j] = joints[j], joints[i]
        swapped = dataclasses.replace(entry, joints=tuple(joints), healthy_ranges=())
        assert not np.array_equal(obs, observation_from_state(swapped, env)), (i, j)


def test_slide_joints_are_the_models_and_the_rest_hinges(entry, env):
    """The entry's slide joints (metres) and hinges (radians: the planner's plausible range for
    them is at least [-pi, pi]) are the MuJoCo model's joint types."""
    model = env.unwrapped.model
    slide, hinge = int(mujoco.mjtJoint.mjJNT_SLIDE), int(mujoco.mjtJoint.mjJNT_HINGE)
    for joint in entry.joints:
        expected = slide if joint in entry.slide_joints else hinge
        assert int(model.joint(joint).type[0]) == expected, joint
    observed = entry.joints[entry.position_skip:]
    assert [observed[i] for i in entry.hinge_positions] == \
        [j for j in observed if j not in entry.slide_joints]


def test_speed_index_is_the_forward_velocity(entry, env):
    model = env.unwrapped.model
    rootx = model.joint(entry.observation_labels[entry.speed_index].split()[0])
    assert entry.observation_labels[entry.speed_index] == "rootx velocity"
    assert int(rootx.type[0]) == int(mujoco.mjtJoint.mjJNT_SLIDE)
    np.testing.assert_array_equal(rootx.axis, [1.0, 0.0, 0.0])  # the track runs along x
    obs = _observations_after_steps(entry, env)[-1]
    assert obs[entry.speed_index] == env.unwrapped.data.qvel[rootx.dofadr[0]] != 0.0


def test_actions_and_control_period_match_the_env(entry, env):
    model = env.unwrapped.model
    space = env.action_space
    assert space.shape == (entry.action_dim,)
    driven = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, int(model.actuator_trnid[a, 0]))
              for a in range(model.nu)]
    assert tuple(driven) == entry.action_joints
    # The action bounds are the ctrlrange of the actuators driving the action joints.
    np.testing.assert_array_equal(space.low, model.actuator_ctrlrange[:, 0])
    np.testing.assert_array_equal(space.high, model.actuator_ctrlrange[:, 1])
    assert env.unwrapped.dt == pytest.approx(entry.control_period, abs=1e-12)


def test_healthy_range_is_the_environments_termination_rule(entry, env):
    """On states across and beyond each bound, the entry calls a state healthy exactly when the
    environment does (its public ``is_healthy``, what ends an episode)."""
    sim = env.unwrapped
    env.reset(seed=3)
    qpos0, qvel0 = sim.data.qpos.copy(), sim.data.qvel.copy()
    observed = entry.joints[entry.position_skip:]
    assert {joint for joint, _, _ in entry.healthy_ranges} == {"rootz", "rooty"}
    rng = np.random.default_rng(0)
    verdicts = []
    for joint, low, high in entry.healthy_ranges:
        finite_high = high if np.isfinite(high) else low + 3.0
        for value in np.concatenate([[low - 1e-3, low + 1e-3, finite_high - 1e-3],
                                     [high + 1e-3] if np.isfinite(high) else [],
                                     rng.uniform(low - 0.5, finite_high + 0.5, 20)]):
            qpos = qpos0.copy()
            qpos[sim.model.joint(joint).qposadr[0]] = value
            sim.set_state(qpos, qvel0)
            obs = observation_from_state(entry, env)
            assert obs[observed.index(joint)] == value
            ours = bool(entry.healthy_steps(obs[None]) == 1)
            assert ours == bool(sim.is_healthy), (joint, value)
            verdicts.append(ours)
    assert any(verdicts) and not all(verdicts)


def test_healthy_steps_count_the_leading_healthy_states():
    z, pitch = (WALKER2D.joints[WALKER2D.position_skip:].index(j) for j in ("rootz", "rooty"))
    states = np.zeros((3, 4, WALKER2D.observation_dim))
    states[..., z] = 1.25
    states[1, 2, pitch] = 1.2    # tips over at its third state
    states[2, 0, z] = 0.5        # starts on the ground: nothing after it counts
    states[2, 3, z] = 2.5
    np.testing.assert_array_equal(WALKER2D.healthy_steps(states), [4, 2, 0])
    assert WALKER2D.healthy_steps(states[0]) == 4
    no_rule = dataclasses.replace(WALKER2D, healthy_ranges=())
    np.testing.assert_array_equal(no_rule.healthy_steps(states), [4, 4, 4])


def test_lookups_name_the_known_robots_and_environments():
    assert robot("hopper") is HOPPER and robot_for_env("Hopper-v5") is HOPPER
    assert robot("walker2d") is WALKER2D and env_robot("Walker2d-v5") is WALKER2D
    assert env_robot("Hopper-v5") is HOPPER and set(ROBOTS) == {"hopper", "walker2d"}
    assert robot_for_env("HalfCheetah-v5") is None
    with pytest.raises(ValueError, match="'hopper', 'walker2d'"):
        robot("walker")
    with pytest.raises(ValueError, match="Hopper-v5"):
        env_robot("HalfCheetah-v5")
    with pytest.raises(SimStartupError, match="HalfCheetah-v5"):
        make_env("HalfCheetah-v5", 10)


def test_walker2d_reference_returns_are_d4rls():
    """The D4RL scores of Walker2d (d4rl/infos.py REF_MIN_SCORE / REF_MAX_SCORE)."""
    from diffuser_ros.data.d4rl_scores import normalized_score

    assert normalized_score(1.629008, WALKER2D) == pytest.approx(0.0, abs=1e-12)
    assert normalized_score(4592.3, WALKER2D) == pytest.approx(100.0)
    assert normalized_score(4592.3) != pytest.approx(100.0)  # Hopper's by default


def test_an_inconsistent_entry_is_refused():
    with pytest.raises(ValueError, match="speed_index"):
        dataclasses.replace(HOPPER, speed_index=HOPPER.observation_dim)
    with pytest.raises(ValueError, match="action_joints"):
        dataclasses.replace(HOPPER, action_joints=("thigh_joint", "ankle"))
    with pytest.raises(ValueError, match="healthy range"):
        dataclasses.replace(HOPPER, healthy_ranges=(("rootx", 0.0, 1.0),))  # not observed
    with pytest.raises(ValueError, match="healthy range"):
        dataclasses.replace(HOPPER, healthy_ranges=(("rootz", 1.0, 0.5),))
