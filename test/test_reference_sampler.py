"""Agreement with the original Diffuser sampling loop, transcribed here from jannerm/diffuser
(``diffuser/models/diffusion.py``: ``cosine_beta_schedule``, ``GaussianDiffusion`` buffers,
``p_sample_loop``; ``diffuser/sampling/functions.py``: ``n_step_guided_p_sample``) and driven
with the same explicit noise tensors as our planner (21 draws: x_T, then one per step, the last
drawn and discarded).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from helpers import HOPPER_ACT, HOPPER_OBS, TINY_HORIZON, make_tiny_planner

from diffuser_ros.planning import PlannerConfig

DIM = HOPPER_ACT + HOPPER_OBS


def cosine_beta_schedule(timesteps, s=0.008):
    steps = timesteps + 1
    x = np.linspace(0, steps, steps)
    alphas_cumprod = np.cos(((x / steps) + s) / (1 + s) * np.pi * 0.5) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1 - (alphas_cumprod[1:] / alphas_cumprod[:-1])
    return torch.tensor(np.clip(betas, a_min=0, a_max=0.999), dtype=torch.float32)


class OriginalDiffusion:
    """The buffers and guided loop of the original code, in its [batch, horizon, dim] layout."""

    def __init__(self, unet, value, n_timesteps=20):
        betas = cosine_beta_schedule(n_timesteps)
        alphas = 1.0 - betas
        alphas_cumprod = torch.cumprod(alphas, axis=0)
        alphas_cumprod_prev = torch.cat([torch.ones(1), alphas_cumprod[:-1]])
        posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        self.posterior_log_variance_clipped = torch.log(torch.clamp(posterior_variance, min=1e-20))
        self.coef1 = betas * torch.sqrt(alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        self.coef2 = (1.0 - alphas_cumprod_prev) * torch.sqrt(alphas) / (1.0 - alphas_cumprod)
        self.n_timesteps = n_timesteps
        # The original models take [batch, horizon, dim] and transpose inside.
        self.model = lambda x, t: unet(x.transpose(1, 2), t).sample.transpose(1, 2)
        self.value = lambda x, t: value(x.transpose(1, 2), t).sample.squeeze(-1)

    def guided_sample(self, cond, act_dim, noises, scale, n_guide_steps, t_stopgrad,
                      scale_grad_by_std=True):
        def apply_conditioning(x):
            for t, val in cond.items():
                x[:, t, act_dim:] = val.clone()
            return x

        x = apply_conditioning(noises[0].clone())
        for k, i in enumerate(reversed(range(self.n_timesteps))):
            t = torch.full((x.shape[0],), i, dtype=torch.long)
            model_log_variance = self.posterior_log_variance_clipped[t][:, None, None]
            model_std = torch.exp(0.5 * model_log_variance)
            model_var = torch.exp(model_log_variance)
            for _ in range(n_guide_steps):
                with torch.enable_grad():
                    x = x.detach().requires_grad_()
                    y = self.value(x, t)
                    grad = torch.autograd.grad([y.sum()], [x])[0]
                x = x.detach()
                if scale_grad_by_std:
                    grad = model_var * grad
                grad[t < t_stopgrad] = 0
                x = x + scale * grad
                x = apply_conditioning(x)
            with torch.no_grad():
                x_recon = self.model(x, t)  # predict_epsilon=False: the model outputs x0
                model_mean = self.coef1[i] * x_recon + self.coef2[i] * x
            noise = noises[k + 1]
            noise[t == 0] = 0
            x = model_mean + model_std * noise
            x = apply_conditioning(x)
        return x, y


def with_original_schedule(planner, original):
    """Our planner with the original's float32 schedule constants (ours are computed in float64,
    so they differ in the 7th digit, which a random network amplifies over 20 steps)."""
    steps = torch.arange(19, -1, -1)
    planner.use_coefficients(dataclasses.replace(
        planner.coefficients, x0_coef=original.coef1[steps], xt_coef=original.coef2[steps],
        noise_std=torch.exp(0.5 * original.posterior_log_variance_clipped[steps]),
        grad_scale=torch.exp(original.posterior_log_variance_clipped[steps])))
    return planner


def test_schedule_constants_match_the_original():
    planner = make_tiny_planner()
    original = OriginalDiffusion(None, None)
    steps = torch.arange(19, -1, -1)
    ours = planner.coefficients
    torch.testing.assert_close(ours.x0_coef, original.coef1[steps], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.xt_coef, original.coef2[steps], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.grad_scale,
                               torch.exp(original.posterior_log_variance_clipped[steps]),
                               rtol=1e-5, atol=1e-7)
    expected_std = torch.exp(0.5 * original.posterior_log_variance_clipped[steps])
    expected_std[-1] = 0.0  # the original masks the last step's noise with (t != 0)
    torch.testing.assert_close(ours.noise_std, expected_std, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n, n_guide_steps, scale, t_stopgrad, seed", [
    (8, 2, 0.1, 2, 11),  # the paper's Hopper settings
    (4, 1, 3.0, 0, 12),  # strong guidance on every step, the final one included
])
def test_planner_matches_the_original_guided_loop(hopper_observation, n, n_guide_steps, scale,
                                                  t_stopgrad, seed):
    cfg = PlannerConfig(n_candidates=n, n_guide_steps=n_guide_steps, guide_scale=scale,
                        t_stopgrad=t_stopgrad, seed=0, device="cpu")
    planner = make_tiny_planner(config=cfg)
    original = OriginalDiffusion(planner.unet, planner.value_function)
    with_original_schedule(planner, original)
    noises = torch.randn(21, n, TINY_HORIZON, DIM, generator=torch.Generator().manual_seed(seed))
    ours = planner.plan(hopper_observation, noise=noises)

    obs = torch.as_tensor(planner.normalizer.normalize_observations(hopper_observation),
                          dtype=torch.float32)
    x, y = original.guided_sample({0: obs}, HOPPER_ACT, noises.clone(), scale=scale,
                                  n_guide_steps=n_guide_steps, t_stopgrad=t_stopgrad)
    expected = planner.normalizer.unnormalize_transitions(x.detach().double().numpy())

    # Bit for bit: same operations in the same order on the same numbers.
    np.testing.assert_array_equal(ours.actions, expected[..., :HOPPER_ACT])
    np.testing.assert_array_equal(ours.observations[:, 1:], expected[:, 1:, HOPPER_ACT:])
    np.testing.assert_array_equal(ours.values, y.detach().numpy())
    assert ours.best == int(torch.argmax(y))
