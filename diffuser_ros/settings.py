"""Settings dataclasses that describe themselves (rclpy-free).

A setting is declared once, as a dataclass field made by :func:`setting`: default, one-line doc,
range or choices, unit, and whether it may change while running. Everything else reads that one
declaration:

* validation: :func:`check_fields` (called by the dataclasses' ``__post_init__``);
* command-line flags: :func:`add_arguments` / :func:`add_argument` and :func:`given_arguments`;
* ROS parameters with descriptors (name, doc, range, choices, unit, read-only):
  ``diffuser_ros/nodes/parameters.py``, the only place that knows rclpy;
* the reference tables in ``docs/ros.md``: :func:`markdown_table`.

Kinds of setting, from the default's type: ``bool``, ``int``, ``float``, ``str``, and lists as
tuples (``("rootx", "rootz")``: a list of strings; ``(32, 64)``: a list of integers). Fields
declared without :func:`setting` (e.g. a free-form ``dict``) are not settings and are skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_SCALARS = (bool, int, float, str)


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
        """``bool``, ``int``, ``float``, ``str`` or ``tuple`` (a list setting)."""
        return tuple if isinstance(self.default, (tuple, list)) else type(self.default)

    @property
    def item_kind(self) -> type | None:
        """The type of a list setting's items (``str`` when the default is empty); else None."""
        if self.kind is not tuple:
            return None
        return type(self.default[0]) if self.default else str

    def check(self, value: Any) -> None:
        """Raise ``ValueError`` naming the setting when ``value`` has the wrong type or range."""
        if self.kind is tuple:
            item = self.item_kind
            if not isinstance(value, (list, tuple)) or \
                    not all(_is_a(v, item) for v in value):
                raise ValueError(f"{self.name} must be a list of {item.__name__}, got {value!r}")
        elif not _is_a(value, self.kind):
            raise ValueError(f"{self.name} must be {'a finite ' if self.kind is float else 'a '}"
                             f"{self.kind.__name__}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{self.name} must be one of {list(self.choices)}, got {value!r}")
        if self.range is not None and not self.range[0] <= value <= self.range[1]:
            raise ValueError(f"{self.name} must be in {self.describe_range()}"
                             f"{' ' + self.unit if self.unit else ''}, got {value!r}")

    def coerce(self, value: Any) -> Any:
        """``value`` as this setting's type where that loses nothing (1 -> 1.0, list -> tuple)."""
        if self.kind is tuple and isinstance(value, Iterable) and not isinstance(value, str):
            return tuple(value)
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    def describe_range(self) -> str:
        """``[low, high]`` or the choices (backquoted), or '' when unrestricted."""
        if self.range is not None:
            return f"[{_number(self.range[0])}, {_number(self.range[1])}]"
        if self.choices is not None:
            return ", ".join(f"`{c}`" if c else '`""`' for c in self.choices)
        return ""

    def describe_default(self) -> str:
        """The default as JSON (what a YAML parameter file takes)."""
        return json.dumps(list(self.default) if self.kind is tuple else self.default)


def setting(default: Any, doc: str, *, range: tuple | None = None,  # noqa: A002 - the word
            choices: tuple[str, ...] | None = None, unit: str = "",
            runtime: bool = True) -> Any:
    """A dataclass field carrying its documentation and limits (a list setting's default is a
    tuple: dataclass defaults must not be mutable)."""
    kind = tuple if isinstance(default, tuple) else type(default)
    if kind not in _SCALARS + (tuple,):
        raise TypeError(f"a setting is a bool, int, float, str or tuple, not {kind.__name__}")
    return dataclasses.field(default=default, metadata={
        "doc": doc, "range": range, "choices": choices, "unit": unit, "runtime": runtime})


def settings_of(cls_or_instance, defaults: Mapping[str, Any] | None = None) -> list[SettingInfo]:
    """The :class:`SettingInfo` of every :func:`setting` field, in declaration order; ``defaults``
    replace field defaults (e.g. a preset's values)."""
    out = []
    for f in dataclasses.fields(cls_or_instance):
        meta = f.metadata
        if "doc" not in meta:
            continue  # a plain field, not a setting
        info = SettingInfo(f.name, f.default, meta["doc"], meta["range"], meta["choices"],
                           meta["unit"], meta["runtime"])
        if defaults and f.name in defaults:
            info = dataclasses.replace(info, default=info.coerce(defaults[f.name]))
        out.append(info)
    return out


def check_fields(instance) -> None:
    """Type and range of every setting; ``ValueError`` names the first bad one."""
    for info in settings_of(instance):
        info.check(getattr(instance, info.name))


# -- command line ---------------------------------------------------------------------------------
def add_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup, info: SettingInfo,
                 flag: str = "", dest: str = "", doc: str = "") -> None:
    """``--flag`` (default ``--name-with-dashes``) for one setting, default None (= not given);
    type, choices and help from the setting, ``doc`` replacing its doc."""
    flag = flag or "--" + info.name.replace("_", "-")
    rng = info.describe_range().replace("`", "")
    parser.add_argument(flag, dest=dest or info.name, type=_parser_of(info), default=None,
                        choices=info.choices, metavar=_metavar(info, dest or info.name),
                        help=f"{doc or info.doc} (default {_show(info)}"
                             f"{' ' + info.unit if info.unit else ''}"
                             f"{'; ' + rng if rng and not info.choices else ''})"
                             .replace("%", "%%"))


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls,
                  exclude: tuple[str, ...] = ()) -> None:
    """One ``--flag-name`` per setting of ``cls`` (see :func:`add_argument`)."""
    for info in settings_of(cls):
        if info.name not in exclude:
            add_argument(parser, info)


def given_arguments(args: argparse.Namespace, cls) -> dict[str, Any]:
    """The settings of ``cls`` that were given on the command line."""
    return {info.name: getattr(args, info.name) for info in settings_of(cls)
            if getattr(args, info.name, None) is not None}


def parse_bool(text: str) -> bool:
    """A command-line boolean: true/false, 1/0, yes/no, on/off."""
    lowered = text.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _parser_of(info: SettingInfo):
    if info.kind is bool:
        return parse_bool
    if info.kind is tuple:
        item = info.item_kind

        def parse_list(text: str) -> tuple:
            try:
                return tuple(item(v.strip()) for v in text.split(",") if v.strip())
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"expected comma-separated {item.__name__} values, got {text!r}") from None

        return parse_list
    return info.kind


def _metavar(info: SettingInfo, dest: str) -> str | None:
    if info.choices is not None:
        return None
    if info.kind is tuple:
        return f"{info.item_kind.__name__.upper()},..."
    return dest.upper()


def _show(info: SettingInfo) -> str:
    if info.kind is tuple:
        return ",".join(map(str, info.default))
    return repr(info.default)


# -- documentation ------------------------------------------------------------------------------
def markdown_table(infos: Iterable[SettingInfo]) -> str:
    """The reference table of ``infos`` (docs/ros.md; ``scripts/docs_tables.py`` writes it)."""
    rows = ["| Parameter | Default | Unit | Range / choices | Runtime | Description |",
            "|---|---|---|---|---|---|"]
    for info in infos:
        rows.append(f"| `{info.name}` | `{info.describe_default()}` | {info.unit} | "
                    f"{info.describe_range()} | {'yes' if info.runtime else 'read-only'} | "
                    f"{info.doc} |")
    return "\n".join(rows)


def _is_a(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and \
            math.isfinite(value)
    return isinstance(value, kind)


def _number(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"
