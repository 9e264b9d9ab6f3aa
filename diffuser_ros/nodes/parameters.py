"""Settings dataclasses as ROS parameters: the one place that binds them to rclpy.

A node's parameters are settings groups (:mod:`diffuser_ros.settings` dataclasses). They are
declared once, each with a full descriptor built from its setting (doc, integer or float range,
choices and unit in ``additional_constraints``, read-only), so ``ros2 param describe`` shows
what the code and ``docs/ros.md`` say. A node with runtime parameters binds them through one
:class:`ParameterHandler` (the pattern of nav2's ``ParameterHandler``): its on-set callback builds
the new settings, which validate themselves (type, range, combination) before the node's own
``check``; its post-set callback hands the accepted settings to the node's ``apply``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.exceptions import ParameterException
from rclpy.parameter import Parameter

from diffuser_ros.settings import SettingInfo, settings_of


class ParameterError(ValueError):
    """A parameter given at start-up has the wrong type, range or value."""


def descriptor(info: SettingInfo) -> ParameterDescriptor:
    """The ROS descriptor of one setting: description, range, choices and unit, read-only."""
    result = ParameterDescriptor(name=info.name, description=info.doc,
                                 read_only=not info.runtime)
    if info.range is not None and info.kind is int:
        result.integer_range = [IntegerRange(from_value=int(info.range[0]),
                                             to_value=int(info.range[1]), step=1)]
    elif info.range is not None:
        result.floating_point_range = [FloatingPointRange(
            from_value=float(info.range[0]), to_value=float(info.range[1]), step=0.0)]
    constraints = []
    if info.choices is not None:
        constraints.append("one of: " + ", ".join(repr(c) for c in info.choices))
    if info.unit:
        constraints.append(f"unit: {info.unit}")
    result.additional_constraints = "; ".join(constraints)
    return result


def ros_value(info: SettingInfo, value: Any) -> Any:
    """``value`` as the ROS parameter of ``info`` takes it (float for float, list for lists)."""
    if info.kind is tuple:
        return list(value)
    return float(value) if info.kind is float else value


def declare_settings(node, cls, defaults: Mapping[str, Any] | None = None):
    """Declare one parameter per setting of ``cls`` on ``node`` (overrides from YAML and ``-p``
    apply; ``defaults`` replace field defaults) and return the settings they give.

    Raises :class:`ParameterError` naming the parameter when an override has the wrong type or
    is out of range, or the settings reject the values (choices, combinations).
    """
    values = {}
    for info in settings_of(cls, defaults):
        try:
            value = node.declare_parameter(info.name, ros_value(info, info.default),
                                           descriptor(info)).value
        except ParameterException as exc:
            raise ParameterError(f"parameter '{info.name}': {exc}") from None
        values[info.name] = info.coerce(value)
    try:
        return cls(**values)
    except ValueError as exc:
        raise ParameterError(f"invalid parameter: {exc}") from None


class ParameterHandler:
    """A node's parameters bound to its settings groups, declared once, validated and applied.

    * :meth:`declare` declares a group (one parameter per setting) and keeps its settings;
    * :meth:`bind` installs the callbacks: on-set builds the changed groups (each validates
      itself), adds what ``implied`` derives from the change (e.g. a preset's values), and runs
      ``check(new)``: a ``ValueError`` rejects the change with its message as the reason.
      Post-set makes the new settings current, calls ``apply(old, new)`` and writes the implied
      values into their parameters, so ``ros2 param get`` shows what is in effect.
    """

    def __init__(self, node) -> None:
        self._node = node
        self._current: dict[type, Any] = {}
        self._pending: tuple[dict[type, Any], list[Parameter]] | None = None
        self._check: Callable[[Mapping[type, Any]], None] | None = None
        self._apply: Callable[[Mapping[type, Any], Mapping[type, Any]], None] | None = None
        self._implied: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def declare(self, cls, defaults: Mapping[str, Any] | None = None):
        """Declare ``cls``'s settings as parameters; returns the settings they give."""
        self._current[cls] = declare_settings(self._node, cls, defaults)
        return self._current[cls]

    def get(self, cls):
        """The settings of group ``cls`` in effect."""
        return self._current[cls]

    def bind(self, check: Callable[[Mapping[type, Any]], None] | None = None,
             apply: Callable[[Mapping[type, Any], Mapping[type, Any]], None] | None = None,
             implied: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        """Validate runtime changes with ``check`` and apply them with ``apply`` from now on."""
        self._check, self._apply, self._implied = check, apply, implied
        self._node.add_on_set_parameters_callback(self._on_set)
        self._node.add_post_set_parameters_callback(self._on_post_set)

    def _on_set(self, params: list[Parameter]) -> SetParametersResult:
        given = {p.name: p.value for p in params}
        implied = {k: v for k, v in (self._implied(given) if self._implied else {}).items()
                   if k not in given}
        changes = {**implied, **given}
        new, sync = {}, []
        try:
            for cls, settings in self._current.items():
                infos = {info.name: info for info in settings_of(cls)}
                mine = {n: infos[n].coerce(v) for n, v in changes.items() if n in infos}
                new[cls] = dataclasses.replace(settings, **mine) if mine else settings
                sync += [Parameter(n, value=ros_value(infos[n], v)) for n, v in implied.items()
                         if n in infos]
            if self._check is not None:
                self._check(new)
        except (ValueError, TypeError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self._pending = (new, sync)
        return SetParametersResult(successful=True)

    def _on_post_set(self, params: list[Parameter]) -> None:
        if self._pending is None:
            return
        (new, sync), self._pending = self._pending, None
        old, self._current = self._current, new
        if self._apply is not None and new != old:
            self._apply(old, new)
        if sync:
            self._node.set_parameters(sync)
