"""launch/hopper.launch.py, diffuser-ros-demo and config/hopper.yaml agree with each other and
with the nodes' built-in defaults. The launch file is read with ``ast`` (launch_ros is not
needed); a launch_ros check runs where launch_ros is installed."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from diffuser_ros import demo

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "hopper.launch.py"
YAML_FILE = REPO / "config" / "hopper.yaml"


def _const(node):
    return node.value if isinstance(node, ast.Constant) else None


def _kw(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _calls(tree, func_name: str) -> list[ast.Call]:
    def name(func):
        return func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)

    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and name(n.func) == func_name]


@pytest.fixture(scope="module")
def launch():
    """What the launch file declares: arguments, nodes and their launch-argument parameters."""
    tree = ast.parse(LAUNCH_FILE.read_text())
    arguments = {_const(c.args[0]): _const(_kw(c, "default_value"))
                 for c in _calls(tree, "DeclareLaunchArgument")}
    nodes = {}
    for call in _calls(tree, "Node"):
        name = _const(_kw(call, "name"))
        params = _kw(call, "parameters")
        assert isinstance(params, ast.List) and isinstance(params.elts[0], ast.Name)
        mapping = {}
        for key, value in zip(params.elts[1].keys, params.elts[1].values):
            # {"param": arg("launch_argument", type)}
            assert isinstance(value, ast.Call) and value.func.id == "arg"
            mapping[_const(key)] = _const(value.args[0])
        nodes[name] = {"package": _const(_kw(call, "package")),
                       "executable": _const(_kw(call, "executable")),
                       "params_var": params.elts[0].id, "arguments": mapping}
    (join,) = [c for c in _calls(tree, "join")
               if c.args and isinstance(c.args[0], ast.Call)]
    share = join.args[0]
    assert share.func.id == "get_package_share_directory"
    return {"arguments": arguments, "nodes": nodes, "share_package": _const(share.args[0]),
            "params_file": tuple(_const(a) for a in join.args[1:])}


@pytest.fixture(scope="module")
def params() -> dict:
    return yaml.safe_load(YAML_FILE.read_text())


def test_launch_and_runner_start_the_same_nodes_with_the_same_yaml(launch):
    assert {n: v["executable"] for n, v in launch["nodes"].items()} == demo.NODES
    assert {v["package"] for v in launch["nodes"].values()} == {demo.PACKAGE}
    assert launch["share_package"] == demo.PACKAGE
    assert launch["params_file"] == demo.PARAMS_FILE
    assert demo.params_file() == YAML_FILE


def test_launch_arguments_match_runner_flags_and_parameters(launch):
    assert set(launch["arguments"]) == set(demo.LAUNCH_ARGUMENTS)
    flags = {opt for action in demo.build_parser()._actions for opt in action.option_strings}
    for name in launch["arguments"]:
        assert "--" + name.replace("_", "-") in flags
    from_launch = {arg: (node, param) for node, spec in launch["nodes"].items()
                   for param, arg in spec["arguments"].items()}
    assert from_launch == demo.LAUNCH_ARGUMENTS


def test_launch_defaults_equal_the_yaml_or_the_code(launch, params):
    pytest.importorskip("rclpy", reason="node modules need rclpy")
    from diffuser_ros.nodes.hopper_sim_node import SIM_SPECS
    from diffuser_ros.nodes.planner_node import PLANNER_SPECS

    code = {"planner_node": {s.name: s.default for s in PLANNER_SPECS},
            "hopper_sim_node": {s.name: s.default for s in SIM_SPECS}}
    for arg, (node, param) in demo.LAUNCH_ARGUMENTS.items():
        if arg == "execution":
            continue  # depends on mode: test_execution_follows_the_mode
        value = params[node]["ros__parameters"].get(param, code[node].get(param))
        default = launch["arguments"][arg]
        assert yaml.safe_load(default) == value if default else value == "", arg


def test_execution_follows_the_mode_in_launch_and_runner():
    tree = ast.parse(LAUNCH_FILE.read_text())
    (declare,) = [c for c in _calls(tree, "DeclareLaunchArgument")
                  if _const(c.args[0]) == "execution"]
    parts = _kw(declare, "default_value").args[0].elts
    for mode, execution in demo.EXECUTION_BY_MODE.items():
        expression = _const(parts[0]) + mode + _const(parts[2])
        assert eval(expression) == execution  # noqa: S307 - our own launch file
        args = demo.build_parser().parse_args(["--mode", mode])
        assert demo.overrides(args)["planner_node"]["execution"] == execution
    args = demo.build_parser().parse_args(["--mode", "realtime", "--execution", "hold"])
    assert demo.overrides(args)["planner_node"]["execution"] == "hold"


def test_runner_flags_become_node_overrides():
    args = demo.build_parser().parse_args(
        ["--mode", "realtime", "--episodes", "3", "--use-sim-time", "false", "--seed", "4"])
    out = demo.overrides(args)
    assert out["hopper_sim_node"] == {"mode": "realtime", "max_episodes": 3, "seed": 4}
    assert out["planner_node"] == {"use_sim_time": False, "seed": 4, "execution": "tracking"}


def test_yaml_holds_every_parameter_with_the_code_default(params):
    pytest.importorskip("rclpy", reason="node modules need rclpy")
    from diffuser_ros.nodes.hopper_sim_node import SIM_SPECS
    from diffuser_ros.nodes.parameters import CONFIG_FIELDS
    from diffuser_ros.nodes.planner_node import PLANNER_SPECS

    for node, specs in (("planner_node", PLANNER_SPECS), ("hopper_sim_node", SIM_SPECS)):
        values = dict(params[node]["ros__parameters"])
        values.pop("use_sim_time", None)
        # The planner settings come from the preset; a value in the YAML would override it, so
        # the YAML holds none (it cannot show a value that is not in effect).
        expected = {s.name for s in specs} - (set(CONFIG_FIELDS) if node == "planner_node"
                                              else set())
        assert set(values) == expected, node
        specs = [s for s in specs if s.name in expected]
        for spec in specs:
            assert values[spec.name] == spec.default, f"{node}.{spec.name}"
            assert type(values[spec.name]) is type(spec.default), f"{node}.{spec.name}"


def test_docs_list_every_parameter_topic_and_service():
    pytest.importorskip("rclpy", reason="node modules need rclpy")
    from diffuser_ros.nodes.hopper_sim_node import SIM_SPECS
    from diffuser_ros.nodes.planner_node import PLANNER_SPECS

    text = (REPO / "README.md").read_text()
    for spec in PLANNER_SPECS + SIM_SPECS:
        assert f"`{spec.name}`" in text, spec.name
    for name in ("~/estop", "~/reset", "~/planned_trajectory", "/diagnostics", "/clock",
                 "episode_stats", "diffuser-ros-demo"):
        assert name in text, name


def test_readme_tables_are_generated_from_the_code():
    pytest.importorskip("rclpy", reason="node modules need rclpy")
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "readme_tables.py"),
                             "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_launch_ends_nonzero_when_a_node_fails():
    tree = ast.parse(LAUNCH_FILE.read_text())
    handlers = _calls(tree, "OnProcessExit")
    assert handlers and all(_kw(h, "on_exit").id == "_end_launch" for h in handlers)
    namespace: dict = {}
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_end_launch")
    exec(compile(ast.Module(body=[func], type_ignores=[]), "launch", "exec"),  # noqa: S102
         {"EmitEvent": lambda event: event, "Shutdown": lambda reason: reason}, namespace)

    class Event:
        def __init__(self, code):
            self.returncode, self.action = code, type("A", (), {"name": "planner_node"})()

    with pytest.raises(RuntimeError, match="planner_node failed"):
        namespace["_end_launch"](Event(1), None)
    assert namespace["_end_launch"](Event(0), None) == ["planner_node finished"]


def test_setup_installs_launch_and_config():
    setup = (REPO / "setup.py").read_text()
    assert '"launch/hopper.launch.py"' in setup and '"config/hopper.yaml"' in setup


def test_launch_description_with_launch_ros(monkeypatch):
    pytest.importorskip("launch_ros", reason="launch_ros is not installed (not on the index)")
    spec = importlib.util.spec_from_file_location("hopper_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "get_package_share_directory", lambda package: str(REPO))
    description = module.generate_launch_description()
    assert {a.name for a in description.get_launch_arguments()} == set(demo.LAUNCH_ARGUMENTS)
    from launch_ros.actions import Node

    nodes = [e for e in description.entities if isinstance(e, Node)]
    assert sorted(n.node_executable for n in nodes) == sorted(demo.NODES.values())
    assert {n.node_package for n in nodes} == {demo.PACKAGE}
