"""Behaviour data: rolling an SB3 policy out into a D4RL-layout file, and the replay buffer."""

from __future__ import annotations

import numpy as np
import pytest

from diffuser_ros.data.d4rl_io import episode_bounds, load_dataset

sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 (the data extra)")


@pytest.fixture(scope="module")
def tiny_sac(tmp_path_factory):
    import gymnasium as gym

    env = gym.make("Hopper-v5")
    model = sb3.SAC("MlpPolicy", env, policy_kwargs={"net_arch": [8]}, learning_starts=0,
                    buffer_size=500, seed=0, device="cpu")
    model.learn(60)
    path = tmp_path_factory.mktemp("sac") / "policy.zip"
    model.save(path)
    model.save_replay_buffer(path.with_name("buffer.pkl"))
    env.close()
    return path


def test_record_writes_consistent_episodes(tiny_sac, tmp_path):
    from diffuser_ros.data.behaviour import record

    attrs = record(tiny_sac, tmp_path / "d.hdf5", n_transitions=300, seed=10_000, n_envs=4)
    data, file_attrs = load_dataset(tmp_path / "d.hdf5")
    assert len(data["observations"]) == 300
    assert file_attrs["env_id"] == "Hopper-v5" and file_attrs["policy_actions"] == "stochastic"
    assert attrs["n_complete_episodes"] >= 1
    ends = data["terminals"] | data["timeouts"]
    assert ends[-1]
    # Inside an episode, each observation is the previous step's next observation: the rows are
    # real, distinct states (not one buffer aliased over the whole episode).
    inside = ~ends[:-1]
    np.testing.assert_array_equal(data["observations"][1:][inside],
                                  data["next_observations"][:-1][inside])
    for start, end in episode_bounds(data):
        assert len(np.unique(data["observations"][start:end], axis=0)) == end - start
        assert not data["terminals"][start:end - 1].any()


def test_replay_buffer_becomes_medium_replay(tiny_sac, tmp_path):
    from diffuser_ros.data.behaviour import replay

    attrs = replay(tiny_sac.with_name("buffer.pkl"), tmp_path / "r.hdf5", training_steps=60)
    data, _ = load_dataset(tmp_path / "r.hdf5")
    assert len(data["observations"]) == 60
    assert attrs["policy_training_steps"] == 60
    inside = ~(data["terminals"] | data["timeouts"])[:-1]
    np.testing.assert_array_equal(data["observations"][1:][inside],
                                  data["next_observations"][:-1][inside])


def test_pick_policy_takes_the_first_evaluation_reaching_the_return(tmp_path):
    import json

    from diffuser_ros.data.behaviour import pick_policy

    (tmp_path / "policies").mkdir()
    history = [{"steps": s, "mean_return": r, "returns": [r]}
               for s, r in ((10, 300.0), (20, 1100.0), (30, 900.0), (40, 2900.0))]
    (tmp_path / "eval_history.json").write_text(json.dumps(history[::-1]))  # order-independent
    for entry in history:
        (tmp_path / "policies" / f"step_{entry['steps']}.zip").touch()
    assert pick_policy(tmp_path, 1078.1).name == "step_20.zip"
    assert pick_policy(tmp_path, 2000).name == "step_40.zip"
    with pytest.raises(ValueError, match=r"reached return 3000 \(best: 2900 at 40 steps\)"):
        pick_policy(tmp_path, 3000)
    with pytest.raises(FileNotFoundError, match="no eval_history.json"):
        pick_policy(tmp_path / "policies", 1)


def test_walker2d_sac_stops_at_the_medium_return_and_records_its_own_robot(tmp_path):
    """``train --robot walker2d --stop-at-return R`` ends at the first evaluation reaching R
    (resuming then trains no further), and ``record`` rolls the policy out on the robot its
    observation size names."""
    import json

    from diffuser_ros.data.behaviour import pick_policy, record, train
    from diffuser_ros.robots import WALKER2D

    out = tmp_path / "sac"
    train(out, total_steps=10_000, eval_every=50, seed=0, robot=WALKER2D,
          stop_at_return=-1e9)
    history = json.loads((out / "eval_history.json").read_text())
    assert [h["steps"] for h in history] == [50]  # stopped at the first evaluation
    train(out, total_steps=10_000, eval_every=50, seed=0, robot=WALKER2D,
          stop_at_return=-1e9)  # resumed: already reached, nothing more
    assert len(json.loads((out / "eval_history.json").read_text())) == 1
    policy = pick_policy(out, -1e9)
    assert policy.name == "step_50.zip"
    attrs = record(policy, tmp_path / "w.hdf5", n_transitions=40, seed=10_000, n_envs=2)
    data, file_attrs = load_dataset(tmp_path / "w.hdf5")
    assert file_attrs["env_id"] == "Walker2d-v5" and attrs["env_version"] == "v5"
    assert data["observations"].shape == (40, WALKER2D.observation_dim)
    assert data["actions"].shape == (40, WALKER2D.action_dim)
