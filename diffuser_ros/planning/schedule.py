"""Diffusion schedule: diffusers' DDPM scheduler config plus the per-step coefficients the
guided sampler needs, computed once.

Diffuser on Hopper: 20 steps, cosine schedule (``squaredcos_cap_v2``: s = 0.008, betas clipped
at 0.999), the network predicts x0 (``prediction_type="sample"``), no x0 clipping, fixed-small
posterior variance with its log clamped at 1e-20.

A sampling *sequence* is a decreasing list of training timesteps ending at 0. With all 20 steps
and the ``ddpm`` sampler the coefficients are exactly the original's posterior; fewer steps use
the same x0-predicting model with either strided DDPM posteriors or DDIM (eta = 0 is
deterministic apart from x_T).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DDPMScheduler

SAMPLERS = ("ddpm", "ddim")


def make_scheduler(num_train_timesteps: int = 20) -> DDPMScheduler:
    """The diffusers scheduler that the checkpoint's ``scheduler/`` folder stores."""
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule="squaredcos_cap_v2",
        clip_sample=False,
        variance_type="fixed_small_log",
        prediction_type="sample",
    )


def timestep_sequence(num_train_timesteps: int, n_steps: int) -> list[int]:
    """``n_steps`` training timesteps from T-1 down to 0, evenly spaced (all of them when equal)."""
    if not 1 <= n_steps <= num_train_timesteps:
        raise ValueError(f"n_steps must be in [1, {num_train_timesteps}], got {n_steps}")
    if n_steps == 1:
        return [0]
    seq = np.round(np.linspace(num_train_timesteps - 1, 0, n_steps)).astype(int)
    return [int(t) for t in seq]


@dataclass(frozen=True)
class StepCoefficients:
    """Per-step constants of one sampling sequence, as tensors of length K (step order)."""

    timesteps: torch.Tensor  # [K] long: the training timestep t_k of each step
    x0_coef: torch.Tensor  # coefficient of x0_hat in x_{prev}
    xt_coef: torch.Tensor  # coefficient of x_t in x_{prev}
    noise_std: torch.Tensor  # std of the noise added (0 on the final step)
    grad_scale: torch.Tensor  # posterior variance exp(log var clipped): scales the value gradient
    sqrt_alpha_bar: torch.Tensor  # for re-noising a warm-start plan to t_k
    sqrt_one_minus_alpha_bar: torch.Tensor


class DiffusionSchedule:
    """Cosine-schedule constants from a diffusers ``DDPMScheduler`` (float64 for the maths)."""

    def __init__(self, scheduler: DDPMScheduler):
        cfg = scheduler.config
        if cfg.prediction_type != "sample":
            raise ValueError("diffuser_ros models predict x0: the scheduler's prediction_type must "
                             f"be 'sample', got '{cfg.prediction_type}'")
        self.scheduler = scheduler
        self.num_train_timesteps = int(cfg.num_train_timesteps)
        self.betas = scheduler.betas.double()
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)

    def _alpha_bar(self, t: int) -> torch.Tensor:
        return self.alphas_cumprod[t] if t >= 0 else torch.tensor(1.0, dtype=torch.float64)

    def posterior_variance(self, t: int, prev: int | None = None) -> torch.Tensor:
        """Fixed-small variance of q(x_prev | x_t, x0), clamped at 1e-20 as the original."""
        prev = t - 1 if prev is None else prev
        ab_t, ab_prev = self._alpha_bar(t), self._alpha_bar(prev)
        beta = 1.0 - ab_t / ab_prev
        var = (1.0 - ab_prev) / (1.0 - ab_t) * beta
        return torch.exp(torch.log(torch.clamp(var, min=1e-20)))

    def coefficients(self, sequence: list[int], sampler: str = "ddpm", eta: float = 0.0,
                     device: torch.device | str = "cpu",
                     dtype: torch.dtype = torch.float32) -> StepCoefficients:
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got '{sampler}'")
        if list(sequence) != sorted(set(sequence), reverse=True) or sequence[-1] != 0:
            raise ValueError("timestep sequence must be strictly decreasing and end at 0: "
                             f"{sequence}")
        rows = []
        for k, t in enumerate(sequence):
            prev = sequence[k + 1] if k + 1 < len(sequence) else -1
            ab_t, ab_prev = self._alpha_bar(t), self._alpha_bar(prev)
            var = self.posterior_variance(t, prev)
            if sampler == "ddpm":
                # DDPM posterior mean of q(x_prev | x_t, x0) for the (possibly strided) jump.
                alpha = ab_t / ab_prev
                x0_coef = (1.0 - alpha) * torch.sqrt(ab_prev) / (1.0 - ab_t)
                xt_coef = (1.0 - ab_prev) * torch.sqrt(alpha) / (1.0 - ab_t)
                std = torch.exp(0.5 * torch.log(var))
            else:
                # DDIM (Song et al., 2021) written for an x0-predicting model.
                sigma = eta * torch.sqrt(var)
                xt_coef = torch.sqrt(torch.clamp(1.0 - ab_prev - sigma**2, min=0.0)) / \
                    torch.sqrt(1.0 - ab_t)
                x0_coef = torch.sqrt(ab_prev) - xt_coef * torch.sqrt(ab_t)
                std = sigma
            if prev < 0:
                std = torch.zeros((), dtype=torch.float64)  # no noise on the final step
            rows.append((x0_coef, xt_coef, std, var, torch.sqrt(ab_t), torch.sqrt(1.0 - ab_t)))
        cols = [torch.stack([r[i] for r in rows]).to(device=device, dtype=dtype) for i in range(6)]
        return StepCoefficients(torch.tensor(sequence, dtype=torch.long, device=device), *cols)
