"""The planner settings each simulator mode runs with unless told otherwise (``auto``).

* ``lockstep``: the world waits for every plan. Each plan's first action is held, plans start
  from the measured state, and the ``realtime`` preset (16 candidates, gradient-guided) is used:
  the settings the shipped model was evaluated with.
* ``realtime``: the robot steps at its control rate while a plan is computed. Each plan starts
  from the state the robot model predicts one period ahead (``predict_ahead`` 1), uses the
  ``fast`` preset (one plan fits a period on one CPU core), and acts from that step on
  (``time_indexed``). See docs/realtime.md.

``ros2 launch diffuser_ros <robot>.launch.py mode:=...`` and ``diffuser-ros-demo --mode ...``
resolve their ``auto`` arguments with this table. The node's own parameter defaults are the
lockstep ones.
"""

from __future__ import annotations

AUTO = "auto"
# simulator mode -> planner_node parameter -> value
BY_MODE: dict[str, dict[str, object]] = {
    "lockstep": {"preset": "realtime", "execution": "hold", "predict_ahead": 0},
    "realtime": {"preset": "fast", "execution": "time_indexed", "predict_ahead": 1},
}
MODES = tuple(BY_MODE)
PARAMETERS = tuple(BY_MODE["lockstep"])  # the planner_node parameters that take 'auto'


def resolve(mode: str, given: dict[str, object]) -> dict[str, object]:
    """The mode's value for every parameter of :data:`BY_MODE` that ``given`` leaves ``auto``
    (or out); the values given stay."""
    if mode not in BY_MODE:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    return {name: value if given.get(name, AUTO) == AUTO else given[name]
            for name, value in BY_MODE[mode].items()}
