"""Planner settings: one validated dataclass whose fields map one-to-one onto ROS parameters.

Invalid values or combinations raise ``ValueError`` with the reason, so the ROS node can
reject a ``ros2 param set`` before it touches the running planner.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from diffuser_ros.planning.device import VALID_DEVICES
from diffuser_ros.planning.schedule import SAMPLERS


@dataclass(frozen=True)
class PlannerConfig:
    """How the planner samples and guides. Defaults are the paper's Hopper settings."""

    n_candidates: int = field(default=64, metadata={
        "doc": "Candidate plans sampled per decision (per robot); the best by value is executed."})
    n_denoise_steps: int = field(default=20, metadata={
        "doc": "Denoising steps of a cold (non-warm-started) plan; 20 = every training step."})
    sampler: str = field(default="ddpm", metadata={
        "doc": "'ddpm' (the paper's ancestral sampler) or 'ddim' (few-step, same model)."})
    ddim_eta: float = field(default=0.0, metadata={
        "doc": "DDIM stochasticity in [0, 1]: 0 deterministic after x_T, 1 = DDPM posterior."})
    n_guide_steps: int = field(default=2, metadata={
        "doc": "Value-gradient steps before each denoising step; 0 samples unguided."})
    guide_scale: float = field(default=0.1, metadata={
        "doc": "Step size of each value-gradient step (x += scale * grad)."})
    t_stopgrad: int = field(default=2, metadata={
        "doc": "No value gradient on diffusion steps t < t_stopgrad (the last, least noisy ones)."})
    scale_grad_by_std: bool = field(default=True, metadata={
        "doc": "Multiply the value gradient by the posterior variance of the step (original)."})
    warm_start: bool = field(default=False, metadata={
        "doc": "Start from the previous best plan shifted one step and re-noised (paper 5.4)."})
    warm_start_steps: int = field(default=4, metadata={
        "doc": "Denoising steps run on a warm-started plan (it is re-noised to that level)."})
    compile: bool = field(default=False, metadata={
        "doc": "torch.compile both networks (CUDA graphs on GPU); the first plan per batch size "
               "compiles (minutes on a CPU); falls back to eager on failure."})
    seed: int = field(default=-1, metadata={
        "doc": "Seed of the planner's noise generator; -1 draws a random seed."})
    device: str = field(default="auto", metadata={
        "doc": "'auto' (CUDA when present, else CPU), 'cpu', 'cuda' or 'cuda:N'."})

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, num_train_timesteps: int | None = None) -> None:
        """Raise ``ValueError`` naming the first invalid field and why."""
        _int_at_least("n_candidates", self.n_candidates, 1)
        _int_at_least("n_denoise_steps", self.n_denoise_steps, 1)
        _int_at_least("n_guide_steps", self.n_guide_steps, 0)
        _int_at_least("t_stopgrad", self.t_stopgrad, 0)
        _int_at_least("warm_start_steps", self.warm_start_steps, 1)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < -1:
            raise ValueError(f"seed must be an integer >= -1 (-1 = random), got {self.seed!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if not _finite(self.ddim_eta) or not 0.0 <= self.ddim_eta <= 1.0:
            raise ValueError(f"ddim_eta must be in [0, 1], got {self.ddim_eta!r}")
        if not _finite(self.guide_scale) or self.guide_scale < 0:
            raise ValueError(f"guide_scale must be finite and >= 0, got {self.guide_scale!r}")
        for name in ("scale_grad_by_std", "warm_start", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a boolean, got {getattr(self, name)!r}")
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

    @classmethod
    def docs(cls) -> dict[str, str]:
        """Field name → one-line description (used for ROS parameter descriptors and the README)."""
        return {f.name: f.metadata["doc"] for f in dataclasses.fields(cls)}


# Named settings, selectable with one ROS parameter (``preset``). ``quality`` is the paper;
# ``realtime`` trades candidates and steps for rate (see the README's benchmark table).
PRESETS: dict[str, dict] = {
    "quality": {"n_candidates": 64, "n_denoise_steps": 20, "sampler": "ddpm", "n_guide_steps": 2,
                "guide_scale": 0.1, "t_stopgrad": 2, "warm_start": False},
    "realtime": {"n_candidates": 16, "n_denoise_steps": 20, "sampler": "ddpm", "n_guide_steps": 1,
                 "guide_scale": 0.1, "t_stopgrad": 2, "warm_start": True, "warm_start_steps": 4},
}


def markdown_tables() -> tuple[str, str]:
    """The README's settings and presets tables, generated from this module (a test keeps the
    README equal to them)."""
    defaults = PlannerConfig()
    rows = ["| parameter | default | meaning |", "|---|---|---|"]
    for name, doc in PlannerConfig.docs().items():
        rows.append(f"| `{name}` | `{getattr(defaults, name)!r}` | {doc} |")
    names = sorted(PRESETS)
    fields = sorted({k for p in PRESETS.values() for k in p},
                    key=list(PlannerConfig.docs()).index)
    preset_rows = ["| setting | " + " | ".join(f"`{n}`" for n in names) + " |",
                   "|---|" + "---|" * len(names)]
    for field_name in fields:
        cells = [repr(PRESETS[n].get(field_name, getattr(defaults, field_name))) for n in names]
        preset_rows.append(f"| `{field_name}` | " + " | ".join(f"`{c}`" for c in cells) + " |")
    return "\n".join(rows), "\n".join(preset_rows)


def preset(name: str, **overrides) -> PlannerConfig:
    """The named preset as a config, with ``overrides`` applied on top."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PlannerConfig(**{**PRESETS[name], **overrides})


def _int_at_least(name: str, value, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
