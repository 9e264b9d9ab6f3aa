"""Trajectory windows over episodes, as the original Diffuser's ``SequenceDataset`` and
``ValueDataset``.

Episodes are padded with zeros (raw units) up to ``max_episode_length`` and windows may run into
the padding, as the original's ``use_padding=True``. Window starts follow the original's
``make_indices`` exactly: ``range(max_start)`` with ``max_start = min(length - 1,
max_episode_length - horizon)``, so an episode's last step never starts a window (and an episode
of one step gives none). The normaliser is fitted on real transitions only. The value target
of a window is the discounted return from its first step to the episode's end (not truncated
to the horizon), with ``termination_penalty`` added to the last reward of episodes that
terminate (fall), not of those that time out.
"""

from __future__ import annotations

import numpy as np
import torch

from diffuser_ros.data.d4rl_io import episode_bounds, validate_dataset
from diffuser_ros.planning.normalizer import GaussianNormalizer
from diffuser_ros.planning.objective import CommandSpec


def discounted_returns(rewards: np.ndarray, discount: float) -> np.ndarray:
    """``G[t] = sum_k discount**k * rewards[t + k]`` for every t of one episode."""
    out = np.zeros(len(rewards), dtype=np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + discount * running
        out[t] = running
    return out


class SequenceDataset:
    """Normalised [horizon, action_dim + obs_dim] windows plus their value targets."""

    def __init__(self, data: dict[str, np.ndarray], horizon: int, max_episode_length: int = 1000,
                 discount: float = 0.997, termination_penalty: float = -100.0,
                 normalizer: GaussianNormalizer | None = None):
        validate_dataset(data)
        if horizon > max_episode_length:
            raise ValueError(f"horizon {horizon} exceeds max_episode_length {max_episode_length}")
        self.horizon = horizon
        self.discount = discount
        obs = np.asarray(data["observations"], dtype=np.float64)
        act = np.asarray(data["actions"], dtype=np.float64)
        rewards = np.asarray(data["rewards"], dtype=np.float64)
        terminals = np.asarray(data["terminals"], dtype=bool)
        self.obs_dim, self.act_dim = obs.shape[1], act.shape[1]
        self.normalizer = normalizer or GaussianNormalizer.fit(obs, act)

        bounds = [(s, e) for s, e in episode_bounds(data)]
        too_long = [e - s for s, e in bounds if e - s > max_episode_length]
        if too_long:
            raise ValueError(f"an episode has {too_long[0]} steps, more than max_episode_length "
                             f"{max_episode_length}")
        n_ep, dim = len(bounds), self.act_dim + self.obs_dim
        # Padded buffers: raw zeros after each episode's end, normalised like real entries.
        raw = np.zeros((n_ep, max_episode_length, dim))
        padded_rewards = np.zeros((n_ep, max_episode_length))
        self.episode_lengths = np.array([e - s for s, e in bounds])
        for i, (s, e) in enumerate(bounds):
            raw[i, : e - s, : self.act_dim] = act[s:e]
            raw[i, : e - s, self.act_dim:] = obs[s:e]
            padded_rewards[i, : e - s] = rewards[s:e]
            if terminals[e - 1]:
                padded_rewards[i, e - s - 1] += termination_penalty
        self.trajectories = self.normalizer.normalize_transitions(raw).astype(np.float32)
        self.returns = np.stack([discounted_returns(r, discount) for r in padded_rewards])
        # (episode, start) of every window, as the original's make_indices (use_padding=True):
        # starts 0 .. max_start - 1 with max_start = min(length - 1, max_episode_length - horizon).
        self.indices = np.array(
            [(i, start) for i, length in enumerate(self.episode_lengths)
             for start in range(min(length - 1, max_episode_length - horizon))],
            dtype=np.int64).reshape(-1, 2)
        if len(self.indices) == 0:
            raise ValueError(f"no training windows: every episode is shorter than 2 steps or "
                             f"horizon {horizon} == max_episode_length {max_episode_length}")

    def __len__(self) -> int:
        return len(self.indices)

    def window(self, index: int) -> tuple[np.ndarray, float]:
        ep, start = self.indices[index]
        return self.trajectories[ep, start:start + self.horizon], float(self.returns[ep, start])

    def batch(self, indices: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows ``[B, horizon, dim]`` (float32, normalised) and value targets ``[B]``."""
        idx = self.indices[np.asarray(indices)]
        offsets = idx[:, 1:2] + np.arange(self.horizon)
        windows = self.trajectories[idx[:, :1], offsets]
        values = self.returns[idx[:, 0], idx[:, 1]]
        return torch.from_numpy(windows), torch.from_numpy(values.astype(np.float32))


def speed_tracking_rewards(speeds: np.ndarray, commands: np.ndarray,
                           width: float) -> np.ndarray:
    """Reward of tracking each command: ``exp(-((speed - command) / width)**2)``, ``[T, G]``."""
    return np.exp(-(((speeds[:, None] - commands[None, :]) / width) ** 2))


class CommandValueDataset(SequenceDataset):
    """Windows plus the discounted return of tracking a commanded forward speed: the dataset's
    rewards relabelled for every command (a grid over ``command_range``, interpolated between
    its points), with ``termination_penalty`` added on a fall. The windows (and their
    normaliser) are the diffusion model's; only the value target changes.
    """

    def __init__(self, data: dict[str, np.ndarray], horizon: int, speed_index: int,
                 command_range: tuple[float, float], reward_width: float = 0.5,
                 discount: float = 0.99, termination_penalty: float = -100.0,
                 max_episode_length: int = 1000, normalizer: GaussianNormalizer | None = None,
                 grid_step: float = 0.05):
        super().__init__(data, horizon, max_episode_length, discount, termination_penalty,
                         normalizer)
        low, high = map(float, command_range)
        if not low < high:
            raise ValueError(f"command_range must be (low, high) with low < high, got "
                             f"{command_range}")
        if reward_width <= 0:
            raise ValueError("reward_width must be > 0")
        self.command_range = (low, high)
        self.reward_width = float(reward_width)
        self.termination_penalty = float(termination_penalty)
        self.speed_coverage = speed_coverage(data, speed_index)
        self.grid = np.linspace(low, high, int(round((high - low) / grid_step)) + 1)
        speeds = np.asarray(data["observations"], dtype=np.float64)[:, speed_index]
        terminals = np.asarray(data["terminals"], dtype=bool)
        bounds = list(episode_bounds(data))
        # Returns of real steps only, flat: episode i's step k is row offsets[i] + k.
        self.offsets = np.concatenate([[0], np.cumsum([e - s for s, e in bounds])[:-1]])
        returns = np.zeros((len(speeds), len(self.grid)), dtype=np.float32)
        for (s, e), offset in zip(bounds, self.offsets):
            rewards = speed_tracking_rewards(speeds[s:e], self.grid, reward_width)
            if terminals[e - 1]:
                rewards[-1] += termination_penalty
            running = np.zeros(len(self.grid))
            for k in range(e - s - 1, -1, -1):
                running = rewards[k] + discount * running
                returns[offset + k] = running
        self.command_returns = returns

    def command_spec(self) -> CommandSpec:
        """The metadata a planner needs to use a value trained on this dataset."""
        low, high = self.command_range
        # the command input is normalised like a uniform variable over the trained range
        return CommandSpec(reward_width=self.reward_width, discount=self.discount,
                           termination_penalty=self.termination_penalty,
                           command_mean=(low + high) / 2, command_std=(high - low) / 12 ** 0.5,
                           speed_range=(low, high), speed_coverage=self.speed_coverage)

    def command_batch(self, indices, commands) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows ``[B, horizon, dim]`` and the return of tracking ``commands`` [B] from each."""
        windows, _ = self.batch(indices)
        idx = self.indices[np.asarray(indices)]
        rows = self.offsets[idx[:, 0]] + idx[:, 1]
        commands = np.clip(np.asarray(commands, dtype=np.float64), *self.command_range)
        position = (commands - self.grid[0]) / (self.grid[1] - self.grid[0])
        below = np.minimum(np.floor(position).astype(np.int64), len(self.grid) - 2)
        frac = position - below
        table = self.command_returns
        values = (1 - frac) * table[rows, below] + frac * table[rows, below + 1]
        return windows, torch.from_numpy(values.astype(np.float32))


def speed_coverage(data: dict[str, np.ndarray], speed_index: int,
                   settle_steps: int = 125) -> dict:
    """What forward speeds the dataset covers: percentiles of the speed over all steps, over the
    steps after the first ``settle_steps`` of each episode (the take-off excluded; 125 = 1 s of
    Hopper), and of each episode's mean speed after them."""
    speeds = np.asarray(data["observations"], dtype=np.float64)[:, speed_index]
    settled, episode_means = [], []
    for s, e in episode_bounds(data):
        if e - s > settle_steps:
            settled.append(speeds[s + settle_steps:e])
            episode_means.append(float(speeds[s + settle_steps:e].mean()))
    qs = (5, 25, 50, 75, 95)

    def pct(x):
        x = np.asarray(x)
        return {f"p{q}": round(float(np.percentile(x, q)), 3) for q in qs} if x.size else {}

    settled = np.concatenate(settled) if settled else np.zeros(0)
    return {"speed_index": int(speed_index), "settle_steps": settle_steps,
            "all_steps": pct(speeds), "settled_steps": pct(settled),
            "settled_episode_means": pct(episode_means), "n_steps": int(speeds.size),
            "n_settled_steps": int(settled.size), "n_settled_episodes": len(episode_means)}
