"""Behaviour cloning baseline: an MLP regressing actions on normalised observations.

The network is 2×256 ReLU with a tanh output scaled to the action bounds, trained with MSE on
every (observation, action) pair of a D4RL-layout dataset (the BC baseline of the D4RL and
Diffuser tables). One ``.pt`` file holds the weights, the observation normaliser and the
training metadata, so an evaluation re-uses it instead of retraining.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

FORMAT_VERSION = 1


class BCNet(nn.Module):
    """MLP ``obs -> hidden... -> act`` with ReLU, output ``mid + half * tanh(.)``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int],
                 action_low: np.ndarray, action_high: np.ndarray) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            width = int(h)
        layers.append(nn.Linear(width, act_dim))
        self.net = nn.Sequential(*layers)
        low = torch.as_tensor(np.asarray(action_low, dtype=np.float32))
        high = torch.as_tensor(np.asarray(action_high, dtype=np.float32))
        self.register_buffer("mid", (high + low) / 2)
        self.register_buffer("half_range", (high - low) / 2)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mid + self.half_range * torch.tanh(self.net(obs))


class BCPolicy:
    """A trained BC network plus its observation normaliser. Call with ``[B, obs_dim]`` (or
    ``[obs_dim]``) raw observations; returns float64 actions within the bounds."""

    def __init__(self, net: BCNet, obs_mean: np.ndarray, obs_std: np.ndarray,
                 hidden: Sequence[int], info: dict | None = None) -> None:
        self.net = net.eval()
        self.obs_mean = np.asarray(obs_mean, dtype=np.float64)
        self.obs_std = np.asarray(obs_std, dtype=np.float64)
        self.hidden = tuple(int(h) for h in hidden)
        self.info = dict(info or {})
        self.device = next(net.parameters()).device

    @property
    def observation_dim(self) -> int:
        return int(self.obs_mean.shape[0])

    @property
    def action_dim(self) -> int:
        return int(self.net.mid.shape[0])

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        return (np.asarray(obs, dtype=np.float64) - self.obs_mean) / self.obs_std

    @torch.no_grad()
    def __call__(self, obs_batch) -> np.ndarray:
        obs = np.asarray(obs_batch, dtype=np.float64)
        single = obs.ndim == 1
        if single:
            obs = obs[None]
        if obs.ndim != 2 or obs.shape[1] != self.observation_dim:
            raise ValueError(f"observation must have shape [{self.observation_dim}] or "
                             f"[B, {self.observation_dim}], got {np.shape(obs_batch)}")
        x = torch.as_tensor(self.normalize(obs), dtype=torch.float32, device=self.device)
        actions = self.net(x).cpu().numpy().astype(np.float64)
        return actions[0] if single else actions

    @torch.no_grad()
    def mse(self, observations: np.ndarray, actions: np.ndarray, chunk: int = 65536) -> float:
        """Mean squared error of the predicted actions against ``actions`` (in chunks, so a
        million-transition dataset does not need gigabytes of activations)."""
        obs = np.asarray(observations, dtype=np.float64)
        act = np.asarray(actions, dtype=np.float64)
        total = 0.0
        for i in range(0, len(obs), chunk):
            total += float(np.sum((self(obs[i:i + chunk]) - act[i:i + chunk]) ** 2))
        return total / act.size

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format_version": FORMAT_VERSION,
            "state_dict": {k: v.cpu() for k, v in self.net.state_dict().items()},
            "obs_mean": torch.as_tensor(self.obs_mean),
            "obs_std": torch.as_tensor(self.obs_std),
            "hidden": list(self.hidden),
            "info": self.info,
        }
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(payload, tmp)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> BCPolicy:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"BC policy file not found: {path}")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            state = payload["state_dict"]
            obs_mean = payload["obs_mean"].numpy()
            obs_std = payload["obs_std"].numpy()
            hidden = [int(h) for h in payload["hidden"]]
        except Exception as exc:  # noqa: BLE001 - torch.load raises many types on corruption
            raise ValueError(f"{path}: not a BC policy file ({exc})") from exc
        mid, half = state["mid"].numpy(), state["half_range"].numpy()
        net = BCNet(len(obs_mean), len(mid), hidden, mid - half, mid + half)
        net.load_state_dict(state)
        return cls(net.to(device), obs_mean, obs_std, hidden, payload.get("info", {}))


def train_bc(data: dict[str, np.ndarray], steps: int = 50_000, batch_size: int = 256,
             lr: float = 1e-3, seed: int = 0, device: str | torch.device = "cpu",
             action_low: float | Sequence[float] = -1.0,
             action_high: float | Sequence[float] = 1.0, hidden: Sequence[int] = (256, 256),
             log_every: int = 1000, progress: bool = False) -> BCPolicy:
    """Fit the BC MLP on ``data["observations"] -> data["actions"]`` with Adam and MSE.

    Targets are clipped to the action bounds (the tanh output cannot leave them). ``info`` of
    the result holds the loss history (mean minibatch loss per ``log_every`` steps), the
    full-dataset MSE before and after training, and the training settings.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError("steps and batch_size must be >= 1")
    obs = np.asarray(data["observations"], dtype=np.float64)
    act = np.asarray(data["actions"], dtype=np.float64)
    if obs.ndim != 2 or act.ndim != 2 or len(obs) != len(act) or len(obs) == 0:
        raise ValueError(f"need observations [N, obs_dim] and actions [N, act_dim], got "
                         f"{obs.shape} and {act.shape}")
    act_dim = act.shape[1]
    low = np.broadcast_to(np.asarray(action_low, dtype=np.float64), (act_dim,)).copy()
    high = np.broadcast_to(np.asarray(action_high, dtype=np.float64), (act_dim,)).copy()
    if (low >= high).any():
        raise ValueError("action_low must be below action_high in every dimension")
    device = torch.device(device)
    mean = obs.mean(axis=0)
    std = np.maximum(obs.std(axis=0), 1e-6)

    generator = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = BCNet(obs.shape[1], act_dim, hidden, low, high).to(device)
    policy = BCPolicy(net, mean, std, hidden)
    x_all = torch.as_tensor((obs - mean) / std, dtype=torch.float32, device=device)
    y_all = torch.as_tensor(np.clip(act, low, high), dtype=torch.float32, device=device)
    initial_mse = policy.mse(obs, act)

    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    history: list[float] = []
    running, count = 0.0, 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, desc="bc", unit="step", leave=False, dynamic_ncols=True)
    start = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(0, len(x_all), (min(batch_size, len(x_all)),), generator=generator)
        idx = idx.to(device)
        loss = torch.mean((net(x_all[idx]) - y_all[idx]) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running += loss.item()
        count += 1
        if count == log_every or step == steps - 1:
            history.append(running / count)
            running, count = 0.0, 0
            if bar is not None:
                bar.set_postfix(loss=f"{history[-1]:.4f}", refresh=False)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    net.eval()
    policy.info = {
        "steps": int(steps), "batch_size": int(batch_size), "lr": float(lr), "seed": int(seed),
        "hidden": [int(h) for h in hidden], "n_transitions": int(len(obs)),
        "loss_history": history, "log_every": int(log_every),
        "initial_mse": initial_mse, "final_mse": policy.mse(obs, act),
        "train_seconds": time.perf_counter() - start,
    }
    return policy
