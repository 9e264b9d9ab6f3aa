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
