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

from diffuser_ros.planning import PRESETS, PlannerConfig
from diffuser_ros.settings import settings_of


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


CONFIG_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(PlannerConfig))


def specs_from_settings(cls, defaults: dict[str, Any] | None = None) -> list[ParamSpec]:
    """One parameter per field of a settings dataclass (:mod:`diffuser_ros.settings`): same name,
    doc, range, choices and unit; ``defaults`` replace field defaults (e.g. a preset's)."""
    specs = []
    for info in settings_of(cls):
        default = (defaults or {}).get(info.name, info.default)
        rng = {}
        if info.range is not None:
            key = "int_range" if info.kind is int else "float_range"
            rng[key] = tuple(info.kind(v) for v in info.range)
        specs.append(ParamSpec(info.name, info.kind(default), info.doc,
                               read_only=not info.runtime, choices=info.choices,
                               unit=info.unit, **rng))
    return specs


def planner_config_specs(preset_name: str = "") -> list[ParamSpec]:
    """One parameter per PlannerConfig field; defaults are the preset's values where it has one."""
    return specs_from_settings(PlannerConfig, PRESETS.get(preset_name, {}))


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
