"""The one rollout loop on real MuJoCo Hopper: streams of episodes and what the hooks see."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from diffuser_ros.robots import HOPPER
from diffuser_ros.rollout import Step, roll_out

pytest.importorskip("gymnasium")


@pytest.fixture
def envs():
    made = [HOPPER.make_env() for _ in range(2)]
    yield made
    for env in made:
        env.close()


def falls_fast(obs):  # full reverse torque: Hopper falls within a few steps
    return np.full((len(obs), HOPPER.action_dim), -1.0)


def test_ended_episodes_are_followed_by_the_next_seeds(envs):
    steps: list[Step] = []
    seeds = itertools.count(100)
    episodes = roll_out(envs, [7, 8], falls_fast, max_steps=40, next_seed=lambda _: next(seeds),
                        on_step=steps.append)
    assert len(steps) == 40 and all(s.stepped.all() and s.live.all() for s in steps)
    ends = [(s.index, i) for s in steps for i in np.flatnonzero(s.terminated | s.truncated)]
    assert len(ends) >= 4 and sum(len(e) for e in episodes) == len(ends)
    fresh = HOPPER.make_env()
    try:
        for i, env_episodes in enumerate(episodes):
            env_ends = [t for t, j in ends if j == i]
            assert env_episodes[0].seed == 7 + i
            for k, (episode, t) in enumerate(zip(env_episodes, env_ends, strict=True)):
                assert episode.episode_return == steps[t].returns[i]
                assert episode.terminated == bool(steps[t].terminated[i])
                # The next episode gets the next seed in the order episodes start, and the
                # step after the end starts from that seed's reset state.
                next_seed = 100 + ends.index((t, i))
                if k + 1 < len(env_episodes):
                    assert env_episodes[k + 1].seed == next_seed
                if t + 1 < len(steps):
                    np.testing.assert_array_equal(steps[t + 1].observations[i],
                                                  fresh.reset(seed=next_seed)[0])
    finally:
        fresh.close()
    for s, following in zip(steps, steps[1:]):  # inside an episode the states chain up
        going_on = ~(s.terminated | s.truncated)
        np.testing.assert_array_equal(following.observations[going_on],
                                      s.next_observations[going_on])


def test_actions_are_clipped_to_the_action_space_unless_asked_not_to(envs):
    def constant(value):
        return lambda obs: np.full((len(obs), HOPPER.action_dim), value)

    def returns(value, clip):
        episodes = roll_out(envs, [0, 1], constant(value), max_episode_steps=10,
                            clip_actions=clip)
        return [e.episode_return for (e,) in episodes]

    assert returns(5.0, clip=True) == returns(1.0, clip=True)
    # Unclipped, the control cost sees the raw action.
    assert all(a < b for a, b in zip(returns(5.0, clip=False), returns(5.0, clip=True)))


def test_a_finished_env_is_not_stepped_and_keeps_its_last_observation(envs):
    def first_falls(obs):
        actions = np.zeros((len(obs), HOPPER.action_dim))
        actions[0] = -1.0
        return actions

    steps: list[Step] = []
    (fell,), (stood,) = roll_out(envs, [0, 1], first_falls, max_episode_steps=25,
                                 on_step=steps.append)
    assert fell.terminated and stood.truncated and stood.length == 25 == len(steps)
    after = steps[fell.length:]
    assert after and not any(s.stepped[0] or s.live[0] or s.rewards[0] for s in after)
    np.testing.assert_array_equal(after[-1].observations[0],
                                  steps[fell.length - 1].next_observations[0])
    assert steps[fell.length - 1].returns[0] == fell.episode_return
