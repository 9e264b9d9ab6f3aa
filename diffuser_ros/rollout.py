"""The one rollout loop: gymnasium environments stepped side by side, one batched policy call
per step. The evaluation's episodes and videos, the behaviour policy's evaluation and datasets
and the benchmark's replayed observations all go through :func:`roll_out`; what they keep of a
run they take through its hooks (``on_step``, ``frames``).

A policy is any callable ``policy(obs_batch [B, obs_dim]) -> actions [B, act_dim]``; one with a
``reset()`` is reset when a rollout starts. numpy only (tqdm for the optional progress bar):
the data tools and the benchmark import it without the evaluation's dependencies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class EpisodeResult:
    """One episode. ``terminated``: the env ended it (Hopper fell / became unhealthy);
    ``truncated``: it reached the time limit (the env's or ``max_episode_steps``)."""

    seed: int
    episode_return: float
    length: int
    terminated: bool
    truncated: bool

    @property
    def full_length(self) -> bool:
        """Survived to the time limit (not terminated)."""
        return not self.terminated

    def to_dict(self) -> dict:
        d = asdict(self)
        d["return"] = d.pop("episode_return")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> EpisodeResult:
        return cls(seed=int(d["seed"]), episode_return=float(d["return"]), length=int(d["length"]),
                   terminated=bool(d["terminated"]), truncated=bool(d["truncated"]))


@dataclass(frozen=True)
class Step:
    """One batched step, as ``on_step`` sees it (``B`` environments; arrays are the hook's own).

    An env that was not ``stepped`` (its episode is over and nothing reset it) keeps its last
    observation, a reward of 0 and no end flags.
    """

    index: int                     # 0-based step of the rollout
    observations: np.ndarray       # [B, obs_dim] what the policy saw
    actions: np.ndarray            # [B, act_dim] what it returned (before any clipping)
    rewards: np.ndarray            # [B]
    next_observations: np.ndarray  # [B, obs_dim] after the step (an ended episode's last one)
    terminated: np.ndarray         # [B] the env ended the episode at this step
    truncated: np.ndarray          # [B] the time limit ended it (and the env did not)
    returns: np.ndarray            # [B] each episode's return so far (an ended one's final)
    stepped: np.ndarray            # [B] envs that took this step
    live: np.ndarray               # [B] envs that take the next one
    latency_s: float               # the batched policy call


class FrameSink(Protocol):
    """Where frames go (e.g. :class:`~diffuser_ros.rendering.VideoRecorder`)."""

    def due(self, step: int) -> bool:
        """Whether the frame after episode step ``step`` (0 = the reset) is wanted."""

    def add(self, frame) -> None: ...


def roll_out(envs: Sequence, seeds: Sequence[int], policy: Callable[[np.ndarray], np.ndarray],
             *, max_episode_steps: int | None = None, max_steps: int | None = None,
             next_seed: Callable[[int], int] | None = None, clip_actions: bool = True,
             on_step: Callable[[Step], None] | None = None, frames: FrameSink | None = None,
             progress: str | None = None) -> list[list[EpisodeResult]]:
    """Reset ``envs[i]`` with ``seeds[i]`` and step them all until every episode is over or
    ``max_steps`` batched steps have run; returns each env's finished episodes, in order.

    * ``max_episode_steps``: episodes are truncated at this length (None: the env's limit).
    * ``next_seed(steps_taken)``: an env whose episode ended is reset with this seed and goes
      on (a stream of episodes, as when recording data); None: it stays over. Finished envs stay
      in the batch with their final observation (their actions are ignored and they are not
      stepped), so the batch shape never changes: a planner's warm start stays aligned with its
      env, and its noise stream, hence the result, does not depend on when other episodes end.
    * ``clip_actions``: clip each action to the action space and cast it to the space's dtype
      (the evaluation); False hands the env the policy's actions untouched (SB3 squashes into
      the bounds itself, and a recorded dataset keeps its actions' dtype).
    * ``on_step(step)``: called after every batched step, before any env is reset.
    * ``frames``: the first env's frames: after each reset, after each step it is ``due``, and
      at the end of each episode.
    * ``progress``: a progress bar with this description (None: no bar).
    """
    seeds = [int(s) for s in seeds]
    if len(seeds) != len(envs) or not seeds:
        raise ValueError(f"need one seed per env and at least one env, got {len(seeds)} seeds "
                         f"for {len(envs)} envs")
    for name, limit in (("max_episode_steps", max_episode_steps), ("max_steps", max_steps)):
        if limit is not None and limit < 1:
            raise ValueError(f"{name} must be >= 1, got {limit}")
    if hasattr(policy, "reset"):
        policy.reset()
    n = len(envs)
    obs = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, seeds, strict=True)])
    obs = obs.astype(np.float64)
    if frames is not None:
        frames.add(envs[0].render())
    space = envs[0].action_space
    low, high = np.asarray(space.low), np.asarray(space.high)
    episode_seeds = list(seeds)
    returns = np.zeros(n)
    lengths = np.zeros(n, dtype=np.int64)
    live = np.ones(n, dtype=bool)
    episodes: list[list[EpisodeResult]] = [[] for _ in envs]
    bar = _progress(max_steps or max_episode_steps, progress)
    try:
        step = 0
        while live.any() and (max_steps is None or step < max_steps):
            start = time.perf_counter()
            actions = np.asarray(policy(obs))
            latency = time.perf_counter() - start
            if clip_actions:
                actions = actions.astype(np.float64, copy=False)
            if actions.shape != (n, *space.shape):
                raise ValueError(f"policy returned actions of shape {actions.shape}, "
                                 f"expected {(n, *space.shape)}")
            if not np.isfinite(actions).all():
                raise ValueError(f"policy returned non-finite actions at step {step}")
            before = obs.copy() if on_step is not None else obs
            stepped = live.copy()
            rewards = np.zeros(n)
            terminated = np.zeros(n, dtype=bool)
            truncated = np.zeros(n, dtype=bool)
            for i in np.flatnonzero(stepped):
                action = np.clip(actions[i], low, high).astype(space.dtype) if clip_actions \
                    else actions[i]
                o, r, term, trunc, _ = envs[i].step(action)
                obs[i] = o
                rewards[i] = r
                returns[i] += r
                lengths[i] += 1
                if term or trunc or (max_episode_steps is not None
                                     and lengths[i] >= max_episode_steps):
                    terminated[i] = bool(term)
                    truncated[i] = not term
                    live[i] = False
                    episodes[i].append(EpisodeResult(
                        episode_seeds[i], float(returns[i]), int(lengths[i]), bool(term),
                        not term))
                if i == 0 and frames is not None and (frames.due(int(lengths[0])) or not live[0]):
                    frames.add(envs[0].render())
            if on_step is not None:
                going_on = stepped if next_seed is not None else live  # ended ones are reset
                on_step(Step(step, before, actions, rewards, obs.copy(), terminated, truncated,
                             returns.copy(), stepped, going_on.copy(), latency))
            step += 1
            if next_seed is not None:
                for i in np.flatnonzero(stepped & ~live):
                    episode_seeds[i] = int(next_seed(step))
                    obs[i] = envs[i].reset(seed=episode_seeds[i])[0]
                    returns[i], lengths[i], live[i] = 0.0, 0, True
                    if i == 0 and frames is not None:
                        frames.add(envs[0].render())
            if bar is not None:
                bar.update(1)
                bar.set_postfix(live=int(live.sum()), ms=f"{latency * 1e3:.1f}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    return episodes


def _progress(total: int | None, desc: str | None):
    if desc is None:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True)
