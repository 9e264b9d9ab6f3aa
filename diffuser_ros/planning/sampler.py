"""The value-guided sampling loop (jannerm/diffuser ``n_step_guided_p_sample``), rclpy-free.

The guide is any differentiable score ``objective(x, t) -> [batch]``: the model's value function
(the original), or a weighted sum of terms (:class:`~diffuser_ros.planning.objective.Objective`).

Tensors are kept channel-first, ``[batch, transition_dim, horizon]``, which is what
``UNet1DModel`` consumes, so no permutes happen inside the loop. Per step:

1. ``n_guide_steps`` times: score and its gradient at the current noisy sample, gradient times
   the posterior variance (``scale_grad_by_std``), zero when ``t < t_stopgrad``,
   ``x += guide_scale * grad``, re-impose the conditions;
2. the U-Net predicts x0; ``x = x0_coef * x0 + xt_coef * x + noise_std * z``; re-impose.

Steps where the gradient would be zero skip the autograd pass (the values they would have
computed are needed only for ranking, on the final step, and are then computed without a
graph), so results equal the original's while doing less work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import UNet1DModel

from diffuser_ros.planning.schedule import StepCoefficients


@dataclass
class Conditioning:
    """Inpainting constraints: entries of the trajectory forced to known (normalised) values.

    ``entries`` is a list of ``(horizon_index, channel_index [C], values [batch or 1, C])``.
    """

    entries: list[tuple[int, torch.Tensor, torch.Tensor]]

    def apply_(self, x: torch.Tensor) -> torch.Tensor:
        """Write the constraints into ``x`` [batch, D, H] in place and return it."""
        for h, channels, values in self.entries:
            x[:, channels, h] = values
        return x


@dataclass(frozen=True)
class GuideSettings:
    n_guide_steps: int
    guide_scale: float
    t_stopgrad: int
    scale_grad_by_std: bool


Score = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def value_and_grad(objective: Score, x: torch.Tensor, t: torch.Tensor):
    """Score of each sample and its gradient w.r.t. the sample (the models' weights frozen)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        values = objective(x, t)
        (grad,) = torch.autograd.grad(values.sum(), x)
    # A copy: with CUDA graphs (compile on CUDA) the next replay overwrites the output buffers.
    return values.detach().clone(), grad


@torch.no_grad()
def guided_sample(unet: UNet1DModel, objective: Score, x: torch.Tensor,
                  conditioning: Conditioning, coefficients: StepCoefficients,
                  guide: GuideSettings, step_noise: torch.Tensor | None,
                  timestep_batches: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Denoise ``x`` [batch, D, H] through every step of ``coefficients``.

    ``step_noise[k]`` is the noise added after step k (unused on the final step, which adds
    none; ``None`` when every step is noiseless, e.g. DDIM with eta 0).
    ``timestep_batches[k]`` is step k's timestep repeated over the batch (built once by the
    caller). Returns the final sample and the ranking values: the score from the last guide call
    of the final step, i.e. of the final denoising step's input, as the original ranks plans.
    """
    conditioning.apply_(x)
    n_steps = len(timestep_batches)
    values = None
    guide_on = guide.n_guide_steps > 0 and guide.guide_scale > 0
    for k in range(n_steps):
        t = timestep_batches[k]
        if guide_on and int(coefficients.timesteps[k]) >= guide.t_stopgrad:
            for _ in range(guide.n_guide_steps):
                values, grad = value_and_grad(objective, x, t)
                if guide.scale_grad_by_std:
                    grad = grad * coefficients.grad_scale[k]
                x = conditioning.apply_(x + guide.guide_scale * grad)
        elif k == n_steps - 1:
            values = objective(x, t).clone()  # see value_and_grad
        x0 = unet(x, t).sample
        x = coefficients.x0_coef[k] * x0 + coefficients.xt_coef[k] * x
        if k < n_steps - 1 and step_noise is not None:
            x = x + coefficients.noise_std[k] * step_noise[k]
        conditioning.apply_(x)
    return x, values
