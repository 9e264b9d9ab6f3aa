"""What the planner optimises: a weighted sum of terms, scored on noisy trajectories.

The same score both guides the samples (its gradient, at every guided denoising step) and
ranks the finished candidates, as Diffuser does with its value function alone. Terms:

* the learned **return** value (the model's ``value_function``), weight 1 without a command
  (the paper), ``command_return_weight`` with one;
* a learned **command value** (``command_value/``, optional): the discounted return of a
  speed-tracking reward, for the commanded speed given as an extra input channel. Trained on the
  dataset with rewards relabelled for many target speeds; the diffusion model is untouched
  (the paper trains new value functions for new tasks). Weight ``command_weight``;
* an analytic **speed cost**, ``-mean_h (v_h - v*)^2`` on the plan's own forward-velocity
  channel, weight ``speed_cost_weight``. Kept as a baseline (see docs/commands.md): the planned
  velocity channel is not what the body then does.

Scores are computed on normalised, channel-first trajectories ``[batch, transition_dim,
horizon]``, with the diffusion step ``t`` ``[batch]``; every term is differentiable in ``x``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from diffusers import UNet1DModel

COMMAND_VALUE_DIR = "command_value"
COMMAND_SPEC_FILE = "command.json"


@dataclass(frozen=True)
class CommandSpec:
    """How a command maps onto the trajectory, and the command value's reward (its metadata).

    The speed is the observation ``PlannerSpec.speed_index`` (Hopper-v5: 5, ``qvel[0]``). The
    reward of one step is ``exp(-((v - command) / reward_width)**2)``, with
    ``termination_penalty`` on a fall, discounted by ``discount``. ``command_mean`` and
    ``command_std`` normalise the command input; ``speed_range`` is the span of commands
    trained on; ``speed_coverage`` records the dataset's forward-speed percentiles.
    """

    reward_width: float
    discount: float
    termination_penalty: float
    command_mean: float
    command_std: float
    speed_range: tuple[float, float]
    speed_coverage: dict | None = None

    def save(self, folder: str | Path) -> None:
        Path(folder, COMMAND_SPEC_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> CommandSpec:
        data = json.loads(Path(folder, COMMAND_SPEC_FILE).read_text())
        data["speed_range"] = tuple(data["speed_range"])
        return cls(**data)


def command_channel(command: torch.Tensor, spec: CommandSpec, horizon: int) -> torch.Tensor:
    """The command as the command value's extra input channel: ``[B] -> [B, 1, horizon]``."""
    norm = (command - spec.command_mean) / spec.command_std
    return norm[:, None, None].expand(-1, 1, horizon)


def command_value_input(x: torch.Tensor, command: torch.Tensor, spec: CommandSpec) -> torch.Tensor:
    """Trajectories ``[B, D, H]`` plus the command channel: ``[B, D + 1, H]``."""
    return torch.cat([x, command_channel(command, spec, x.shape[-1]).to(x.dtype)], dim=1)


@dataclass
class Objective:
    """A weighted sum of terms; ``objective(x, t) -> [B]`` (callable inside autograd).

    ``command`` holds the commanded forward speed of every row of the batch (raw units, m/s),
    or ``None`` when no command is in effect, which leaves the learned return alone (and equals
    the original method exactly when ``value_weight`` is 1).
    """

    value_function: UNet1DModel
    value_weight: float = 1.0
    command: torch.Tensor | None = None
    command_value: UNet1DModel | None = None
    command_spec: CommandSpec | None = None
    command_weight: float = 0.0
    speed_cost_weight: float = 0.0
    speed_channel: int = 0            # channel of the forward velocity in x
    speed_mean: float = 0.0           # its normaliser statistics
    speed_std: float = 1.0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        score = self.value_function(x, t).sample.squeeze(-1)
        if self.value_weight != 1.0:
            score = self.value_weight * score
        if self.command is None:
            return score
        if self.command_weight and self.command_value is not None:
            inputs = command_value_input(x, self.command, self.command_spec)
            score = score + self.command_weight * self.command_value(inputs, t).sample.squeeze(-1)
        if self.speed_cost_weight:
            score = score + self.speed_cost_weight * self.speed_cost(x)
        return score

    def speed_cost(self, x: torch.Tensor) -> torch.Tensor:
        """``-mean_h (v_h - v*)^2`` over the plan's future steps (raw units)."""
        speed = x[:, self.speed_channel, 1:] * self.speed_std + self.speed_mean
        return -((speed - self.command[:, None]) ** 2).mean(dim=1)
