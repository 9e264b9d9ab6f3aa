"""Planner settings: one validated dataclass whose fields map one-to-one onto ROS parameters.

Invalid values or combinations raise ``ValueError`` with the reason, so the ROS node can
reject a ``ros2 param set`` before it touches the running planner.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from diffuser_ros.planning.compiled import BACKENDS
from diffuser_ros.planning.device import VALID_DEVICES
from diffuser_ros.planning.schedule import SAMPLERS
from diffuser_ros.settings import check_fields, setting, settings_of


@dataclass(frozen=True)
class PlannerConfig:
    """How the planner samples and guides. Field defaults are the paper's Hopper settings; a
    saved model carries its own (planner.json ``defaults``, :func:`preset`'s ``base``)."""

    n_candidates: int = setting(64, "Candidate plans sampled per decision (per robot); the best "
                                "by value is executed.", range=(1, 65536))
    n_denoise_steps: int = setting(20, "Denoising steps of a cold (non-warm-started) plan; 20 = "
                                   "every training step.", range=(1, 10000))
    sampler: str = setting("ddpm", "'ddpm' (the paper's ancestral sampler) or 'ddim' (few-step, "
                           "same model).", choices=SAMPLERS)
    ddim_eta: float = setting(0.0, "DDIM stochasticity in [0, 1]: 0 deterministic after x_T, "
                              "1 = DDPM posterior.", range=(0.0, 1.0))
    n_guide_steps: int = setting(2, "Value-gradient steps before each denoising step; 0 samples "
                                 "unguided.", range=(0, 1000))
    guide_scale: float = setting(0.1, "Step size of each value-gradient step "
                                 "(x += scale * grad).", range=(0.0, 1000.0))
    t_stopgrad: int = setting(2, "No value gradient on diffusion steps t < t_stopgrad (the last, "
                              "least noisy ones).", range=(0, 10000))
    scale_grad_by_std: bool = setting(True, "Multiply the value gradient by the posterior "
                                      "variance of the step (original).")
    command_weight: float = setting(100.0, "Weight of the command value (the model's learned "
                                    "return of tracking the commanded speed) in the objective "
                                    "that guides and ranks plans, while a speed command is in "
                                    "effect.", range=(0.0, 1e6))
    command_return_weight: float = setting(10.0, "Weight of the learned return in that "
                                           "objective while a speed command is in effect "
                                           "(without one it is 1, the paper).",
                                           range=(0.0, 1e6))
    speed_cost_weight: float = setting(0.0, "Weight of the analytic cost -mean (v - v*)^2 on "
                                       "the plan's own forward-velocity channel while a speed "
                                       "command is in effect (a baseline; see docs/commands.md).",
                                       range=(0.0, 1e6))
    prefer_healthy: bool = setting(False, "Rank candidates first by how many of their planned "
                                   "states stay in the robot's healthy range (the states its "
                                   "environment does not end the episode in, e.g. Walker2d's "
                                   "torso height and pitch), then by value: a plan that "
                                   "predicts a fall loses to one that does not. No effect for a "
                                   "model without a robot entry.")
    healthy_std: float = setting(0.0, "With prefer_healthy, narrow each bound of the healthy "
                                 "range to this many of the model's data standard deviations "
                                 "around the data mean: plans that lean or sink further than "
                                 "the data ever did rank below those that do not (0: the "
                                 "environment's range alone).", range=(0.0, 1e6), unit="std")
    warm_start: bool = setting(False, "Start from the previous best plan, shifted by the control "
                               "steps elapsed since it was planned, re-noised (paper 5.4).")
    warm_start_steps: int = setting(4, "Denoising steps run on a warm-started plan (it is "
                                    "re-noised to that level).", range=(1, 10000))
    compile: bool = setting(False, "torch.compile both networks (CUDA graphs on GPU); the first "
                            "plan per batch size compiles (minutes on a CPU); falls back to eager "
                            "on failure.")
    backend: str = setting(
        "torch", "What runs a warm-started plan on a CPU: 'torch' (PyTorch, operator by "
        "operator), 'openvino' or 'onnxruntime' (the whole guided loop as one graph, exported "
        "once per shape and cached on disk: about 3x faster here). Cold plans, speed commands "
        "and CUDA devices use PyTorch.", choices=BACKENDS)
    seed: int = setting(-1, "Seed of the planner's noise generator; -1 draws a random seed.",
                        range=(-1, 2**31 - 1))
    device: str = setting("auto", "'auto' (CUDA when present, else CPU), 'cpu', 'cuda' or "
                          "'cuda:N'.")
    state_limit: float = setting(10.0, "Plausible states: a state (or goal) entry further than "
                                 "this many of the model's data standard deviations from the "
                                 "data mean is refused, naming the entry and the bound (the "
                                 "model cannot plan from there, and normalising it could "
                                 "overflow). Angles are plausible within ±pi at least, "
                                 "velocities within the robot's clip.",
                                 range=(1.0, 1e6), unit="std")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, num_train_timesteps: int | None = None) -> None:
        """Raise ``ValueError`` naming the first invalid field and why."""
        check_fields(self)
        if self.warm_start and self.warm_start_steps > self.n_denoise_steps:
            raise ValueError(f"warm_start_steps ({self.warm_start_steps}) cannot exceed "
                             f"n_denoise_steps ({self.n_denoise_steps})")
        dev = str(self.device).lower()
        if dev not in VALID_DEVICES and not dev.startswith("cuda:"):
            raise ValueError(f"device must be one of {VALID_DEVICES} or 'cuda:N', "
                             f"got {self.device!r}")
        if num_train_timesteps is not None:
            if self.n_denoise_steps > num_train_timesteps:
                raise ValueError(f"n_denoise_steps ({self.n_denoise_steps}) cannot exceed the "
                                 f"model's {num_train_timesteps} diffusion steps")
            if self.t_stopgrad > num_train_timesteps:
                raise ValueError(f"t_stopgrad ({self.t_stopgrad}) cannot exceed the model's "
                                 f"{num_train_timesteps} diffusion steps")

    def replace(self, **changes) -> PlannerConfig:
        """A validated copy with ``changes`` applied (unknown names raise ``ValueError``)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown planner setting(s): {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PlannerConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown planner setting(s): {sorted(unknown)}")
        return cls(**data)



# Named settings, selectable with one ROS parameter (``preset``). ``quality`` is the paper;
# ``realtime`` trades candidates and steps for rate (see the README's benchmark table).
PRESETS: dict[str, dict] = {
    "quality": {"n_candidates": 64, "n_denoise_steps": 20, "sampler": "ddpm", "n_guide_steps": 2,
                "guide_scale": 0.1, "t_stopgrad": 2, "warm_start": False},
    "realtime": {"n_candidates": 16, "n_denoise_steps": 20, "sampler": "ddpm", "n_guide_steps": 1,
                 "guide_scale": 0.1, "t_stopgrad": 2, "warm_start": True, "warm_start_steps": 4},
    # A plan inside one 8 ms control period on one CPU core: 8 warm-started candidates ranked
    # by the value without its gradient step (which cost half the plan and bought no return one
    # period late), the whole loop as one OpenVINO graph (docs/realtime.md).
    "fast": {"n_candidates": 8, "n_denoise_steps": 20, "sampler": "ddpm", "n_guide_steps": 0,
             "guide_scale": 0.1, "t_stopgrad": 2, "warm_start": True, "warm_start_steps": 4,
             "backend": "openvino"},
}
# The node's and the demo's base settings unless told otherwise (config/<robot>.yaml adds what a
# robot's model needs on top, e.g. Walker2d's ranking). The evaluation CLIs and the benchmark
# start from a model's own settings instead (planner.json defaults; the shipped Hopper model's
# are this preset). Explicitly given fields win over either.
DEFAULT_PRESET = "realtime"


def presets_table() -> str:
    """The presets as a markdown table, a column each (docs/ros.md; the settings' own tables
    come from :func:`diffuser_ros.settings.markdown_table`)."""
    defaults = PlannerConfig()
    names = sorted(PRESETS)
    order = [info.name for info in settings_of(PlannerConfig)]
    fields = sorted({k for p in PRESETS.values() for k in p}, key=order.index)
    preset_rows = ["| setting | " + " | ".join(f"`{n}`" for n in names) + " |",
                   "|---|" + "---|" * len(names)]
    for field_name in fields:
        cells = [repr(PRESETS[n].get(field_name, getattr(defaults, field_name))) for n in names]
        preset_rows.append(f"| `{field_name}` | " + " | ".join(f"`{c}`" for c in cells) + " |")
    return "\n".join(preset_rows)


def preset(name: str, base: PlannerConfig | None = None, **overrides) -> PlannerConfig:
    """The named preset (``''``: none) on ``base`` (default: the field defaults; a model's own
    settings, :func:`~diffuser_ros.planning.model_defaults`, keep what the preset does not set,
    e.g. a robot's ``prefer_healthy``), with ``overrides`` on top."""
    if name and name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose '' or one of {sorted(PRESETS)}")
    start = base.to_dict() if base is not None else {}
    return PlannerConfig(**{**start, **PRESETS.get(name, {}), **overrides})

