#!/usr/bin/env python3
"""Regenerate the README's parameter tables from the code (``--check``: fail if stale).

Tables live between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` markers; the test suite
runs ``--check``, so the README cannot drift from the parameter declarations.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def tables() -> dict[str, str]:
    from diffuser_ros.nodes.hopper_sim_node import SIM_SPECS
    from diffuser_ros.nodes.parameters import markdown_table
    from diffuser_ros.nodes.planner_node import PLANNER_SPECS
    from diffuser_ros.planning.config import markdown_tables

    _, presets = markdown_tables()
    return {"planner_node parameters": markdown_table(PLANNER_SPECS),
            "hopper_sim_node parameters": markdown_table(SIM_SPECS),
            "presets": presets}


def render(text: str) -> str:
    for name, table in tables().items():
        pattern = re.compile(rf"(<!-- BEGIN {re.escape(name)} -->\n).*?(\n<!-- END "
                             rf"{re.escape(name)} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README has no '{name}' markers")
        text = pattern.sub(lambda m, t=table: m.group(1) + t + m.group(2), text)
    return text


def main() -> int:
    text = README.read_text()
    new = render(text)
    if "--check" in sys.argv:
        if new != text:
            print("README tables are stale: run scripts/readme_tables.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
