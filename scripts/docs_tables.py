#!/usr/bin/env python3
"""Regenerate the parameter reference tables of docs/ros.md from the settings (``--check``: fail
if stale).

Tables live between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` markers. Each is made by
:func:`diffuser_ros.settings.markdown_table` from the settings groups of the node
(``diffuser_ros/nodes/node_settings.py``), so the page cannot drift from the declarations; the
test suite runs ``--check``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "ros.md"


def tables() -> dict[str, str]:
    from diffuser_ros.nodes.node_settings import parameters_of
    from diffuser_ros.planning.config import presets_table
    from diffuser_ros.settings import markdown_table

    return {"planner_node parameters": markdown_table(parameters_of("planner_node")),
            "sim_node parameters": markdown_table(parameters_of("sim_node")),
            "presets": presets_table()}


def render(text: str) -> str:
    for name, table in tables().items():
        pattern = re.compile(rf"(<!-- BEGIN {re.escape(name)} -->\n).*?(\n<!-- END "
                             rf"{re.escape(name)} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"{PAGE.name} has no '{name}' markers")
        text = pattern.sub(lambda m, t=table: m.group(1) + t + m.group(2), text)
    return text


def main() -> int:
    text = PAGE.read_text()
    new = render(text)
    if "--check" in sys.argv:
        if new != text:
            print(f"{PAGE} tables are stale: run scripts/docs_tables.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
