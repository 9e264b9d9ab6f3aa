"""Per-dimension Gaussian normaliser for observations and actions.

Each observation and action dimension gets its own mean and standard deviation, fitted on
real (unpadded) transitions, as the original Diffuser's ``GaussianNormalizer``. (The diffusers
``ValueGuidedRLPipeline`` uses one scalar mean/std for every dimension, diffusers issue #10636;
that squashes small-range joints and is deliberately not copied.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# A dimension that never varies in the data would divide by zero; the floor keeps it finite.
MIN_STD = 1e-6


@dataclass(frozen=True)
class GaussianNormalizer:
    observation_mean: np.ndarray
    observation_std: np.ndarray
    action_mean: np.ndarray
    action_std: np.ndarray

    def __post_init__(self) -> None:
        for name in ("observation_mean", "observation_std", "action_mean", "action_std"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.ndim != 1:
                raise ValueError(f"normaliser {name} must be 1-D, got shape {value.shape}")
            if not np.isfinite(value).all():
                raise ValueError(f"normaliser {name} has non-finite entries")
            object.__setattr__(self, name, value)
        if self.observation_mean.shape != self.observation_std.shape:
            raise ValueError("normaliser observation mean/std shapes differ")
        if self.action_mean.shape != self.action_std.shape:
            raise ValueError("normaliser action mean/std shapes differ")
        if (self.observation_std <= 0).any() or (self.action_std <= 0).any():
            raise ValueError("normaliser standard deviations must be positive")

    @property
    def observation_dim(self) -> int:
        return int(self.observation_mean.shape[0])

    @property
    def action_dim(self) -> int:
        return int(self.action_mean.shape[0])

    @classmethod
    def fit(cls, observations: np.ndarray, actions: np.ndarray) -> GaussianNormalizer:
        """Fit per-dimension mean/std on [N, obs_dim] observations and [N, act_dim] actions."""
        obs = np.asarray(observations, dtype=np.float64)
        act = np.asarray(actions, dtype=np.float64)
        return cls(obs.mean(0), np.maximum(obs.std(0), MIN_STD),
                   act.mean(0), np.maximum(act.std(0), MIN_STD))

    # Transition layout is [actions, observations] along the last axis, as in Diffuser.
    @property
    def transition_mean(self) -> np.ndarray:
        return np.concatenate([self.action_mean, self.observation_mean])

    @property
    def transition_std(self) -> np.ndarray:
        return np.concatenate([self.action_std, self.observation_std])

    def normalize_observations(self, x):
        return (x - _like(self.observation_mean, x)) / _like(self.observation_std, x)

    def unnormalize_observations(self, x):
        return x * _like(self.observation_std, x) + _like(self.observation_mean, x)

    def normalize_actions(self, x):
        return (x - _like(self.action_mean, x)) / _like(self.action_std, x)

    def unnormalize_actions(self, x):
        return x * _like(self.action_std, x) + _like(self.action_mean, x)

    def normalize_transitions(self, x):
        return (x - _like(self.transition_mean, x)) / _like(self.transition_std, x)

    def unnormalize_transitions(self, x):
        return x * _like(self.transition_std, x) + _like(self.transition_mean, x)

    def to_dict(self) -> dict:
        return {
            "type": "gaussian_per_dimension",
            "observation_mean": self.observation_mean.tolist(),
            "observation_std": self.observation_std.tolist(),
            "action_mean": self.action_mean.tolist(),
            "action_std": self.action_std.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> GaussianNormalizer:
        missing = {"observation_mean", "observation_std", "action_mean", "action_std"} - set(data)
        if missing:
            raise ValueError(f"normaliser is missing {sorted(missing)}")
        return cls(*(np.asarray(data[k], dtype=np.float64) for k in
                     ("observation_mean", "observation_std", "action_mean", "action_std")))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> GaussianNormalizer:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _like(stat: np.ndarray, x):
    """The statistic as the same kind of array as ``x`` (numpy or torch, same dtype/device)."""
    if isinstance(x, torch.Tensor):
        return torch.as_tensor(stat, dtype=x.dtype, device=x.device)
    return stat.astype(np.asarray(x).dtype, copy=False) if np.asarray(x).dtype.kind == "f" else stat
