"""Parameter declaration helpers: one table per node, declared with full descriptors.

Each node lists its parameters as :class:`ParamSpec` rows (name, default, description, range,
read-only). The same table gives the code's defaults (checked against ``config/hopper.yaml`` by the
tests) and the README's parameter table.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterException

from diffuser_ros.planning import PlannerConfig

INT32_MAX = 2**31 - 1


class ParameterError(ValueError):
    """A parameter given at start-up has the wrong type, range or value."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    read_only: bool = False
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    unit: str = ""

    def descriptor(self) -> ParameterDescriptor:
        descriptor = ParameterDescriptor(name=self.name, description=self.description,
                                         read_only=self.read_only)
        if self.int_range is not None:
            descriptor.integer_range = [IntegerRange(from_value=self.int_range[0],
                                                     to_value=self.int_range[1], step=1)]
        if self.float_range is not None:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(self.float_range[0]), to_value=float(self.float_range[1]),
                step=0.0)]
        if self.choices is not None:
            descriptor.additional_constraints = "one of: " + ", ".join(
                repr(c) for c in self.choices)
        return descriptor

    def check(self, value: Any) -> None:
        """Raise ``ValueError`` when ``value`` is not one of ``choices``."""
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{self.name} must be one of {list(self.choices)}, got {value!r}")


# Ranges of the PlannerConfig fields; PlannerConfig.validate still has the last word
# (e.g. warm_start_steps <= n_denoise_steps, n_denoise_steps <= the model's diffusion steps).
_CONFIG_RANGES: dict[str, dict] = {
    "n_candidates": {"int_range": (1, 65536)},
    "n_denoise_steps": {"int_range": (1, 10000)},
    "sampler": {"choices": ("ddpm", "ddim")},
    "ddim_eta": {"float_range": (0.0, 1.0)},
    "n_guide_steps": {"int_range": (0, 1000)},
    "guide_scale": {"float_range": (0.0, 1000.0)},
    "t_stopgrad": {"int_range": (0, 10000)},
    "warm_start_steps": {"int_range": (1, 10000)},
    "seed": {"int_range": (-1, INT32_MAX)},
}

CONFIG_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(PlannerConfig))


def planner_config_specs() -> list[ParamSpec]:
    """One parameter per PlannerConfig field: same name, default and description."""
    defaults, docs = PlannerConfig(), PlannerConfig.docs()
    return [ParamSpec(name, getattr(defaults, name), docs[name], **_CONFIG_RANGES.get(name, {}))
            for name in CONFIG_FIELDS]


def coerce_config_value(name: str, value: Any) -> Any:
    """``value`` converted to the ROS type of PlannerConfig field ``name`` (e.g. 1 -> 1.0)."""
    kind = type(getattr(PlannerConfig(), name))
    return kind(value)


def declare_parameters(node, specs: list[ParamSpec]) -> dict[str, Any]:
    """Declare ``specs`` on ``node`` (overrides from YAML/CLI apply) and return their values.

    Raises :class:`ParameterError` naming the parameter when an override has the wrong type,
    is out of range or is not an allowed choice.
    """
    values = {}
    for spec in specs:
        try:
            value = node.declare_parameter(spec.name, spec.default, spec.descriptor()).value
        except ParameterException as exc:
            raise ParameterError(f"parameter '{spec.name}': {exc}") from None
        try:
            spec.check(value)
        except ValueError as exc:
            raise ParameterError(str(exc)) from None
        values[spec.name] = value
    return values


def defaults(specs: list[ParamSpec]) -> dict[str, Any]:
    return {s.name: s.default for s in specs}


def markdown_table(specs: list[ParamSpec]) -> str:
    """The README table of ``specs``."""
    rows = ["| Parameter | Default | Range / choices | Runtime | Description |",
            "|---|---|---|---|---|"]
    for s in specs:
        rng = ""
        if s.int_range:
            rng = f"[{s.int_range[0]}, {s.int_range[1]}]"
        elif s.float_range:
            rng = f"[{s.float_range[0]:g}, {s.float_range[1]:g}]"
        elif s.choices:
            rng = ", ".join(f"`{c}`" if c else '`""`' for c in s.choices)
        unit = f" ({s.unit})" if s.unit else ""
        rows.append(f"| `{s.name}` | `{json.dumps(s.default)}` | {rng} | "
                    f"{'read-only' if s.read_only else 'yes'} | {s.description}{unit} |")
    return "\n".join(rows)
