"""Settings dataclasses that describe themselves (rclpy-free).

A setting is declared once, as a dataclass field made by :func:`setting`: default, one-line doc,
range or choices, unit, and whether it may change while running. Validation
(:func:`check_fields`), the ROS parameter descriptors (``nodes/parameters.py``), the command-line
flags (:func:`add_arguments`) and the README tables all read that one declaration, so adding a
setting touches its definition and its use, nothing else.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SettingInfo:
    """What one setting is: the field's name, default and metadata."""

    name: str
    default: Any
    doc: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    unit: str = ""
    runtime: bool = True  # may change while running (a ROS parameter that is not read-only)

    @property
    def kind(self) -> type:
        return type(self.default)

    def check(self, value: Any) -> None:
        """Raise ``ValueError`` naming the setting when ``value`` has the wrong type or range."""
        kind = self.kind
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
                math.isfinite(value)
        else:
            ok = isinstance(value, kind)
        if not ok:
            raise ValueError(f"{self.name} must be {'a finite ' if kind is float else 'a '}"
                             f"{kind.__name__}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{self.name} must be one of {list(self.choices)}, got {value!r}")
        if self.range is not None and not self.range[0] <= value <= self.range[1]:
            raise ValueError(f"{self.name} must be in [{self.range[0]:g}, {self.range[1]:g}]"
                             f"{' ' + self.unit if self.unit else ''}, got {value!r}")

    def describe_range(self) -> str:
        if self.range is not None:
            return f"[{self.range[0]:g}, {self.range[1]:g}]"
        if self.choices is not None:
            return ", ".join(f"`{c}`" if c else '`""`' for c in self.choices)
        return ""


def setting(default: Any, doc: str, *, range: tuple | None = None,  # noqa: A002 - the word
            choices: tuple[str, ...] | None = None, unit: str = "",
            runtime: bool = True) -> Any:
    """A dataclass field carrying its documentation and limits."""
    return dataclasses.field(default=default, metadata={
        "doc": doc, "range": range, "choices": choices, "unit": unit, "runtime": runtime})


def settings_of(cls_or_instance) -> list[SettingInfo]:
    """The :class:`SettingInfo` of every field of a settings dataclass, in declaration order."""
    out = []
    for f in dataclasses.fields(cls_or_instance):
        meta = f.metadata
        out.append(SettingInfo(f.name, f.default, meta.get("doc", ""), meta.get("range"),
                               meta.get("choices"), meta.get("unit", ""),
                               meta.get("runtime", True)))
    return out


def check_fields(instance) -> None:
    """Type and range of every field; ``ValueError`` names the first bad one."""
    for info in settings_of(instance):
        info.check(getattr(instance, info.name))


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls,
                  exclude: tuple[str, ...] = ()) -> None:
    """One ``--flag-name`` per field of ``cls`` (default None = not given), help from its doc."""
    for info in settings_of(cls):
        if info.name in exclude:
            continue
        flag = "--" + info.name.replace("_", "-")
        kind = _parse_bool if info.kind is bool else info.kind
        rng = info.describe_range().replace("`", "")
        parser.add_argument(flag, dest=info.name, type=kind, default=None,
                            choices=info.choices,
                            help=f"{info.doc} (default {info.default!r}"
                                 f"{'; ' + rng if rng and not info.choices else ''})"
                                 .replace("%", "%%"))


def given_arguments(args: argparse.Namespace, cls) -> dict[str, Any]:
    """The fields of ``cls`` that were given on the command line."""
    return {info.name: getattr(args, info.name) for info in settings_of(cls)
            if getattr(args, info.name, None) is not None}


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")
