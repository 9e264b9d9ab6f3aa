"""launch/robot.launch.py (and hopper/walker2d.launch.py, which include it), diffuser-ros-demo
and config/<robot>.yaml agree with each other and with the nodes' built-in defaults for each
robot. The launch files are read with ``ast`` (launch_ros is not needed); test_launch_ros.py runs
them with the real ``ros2 launch`` where ROS 2 is installed."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from diffuser_ros import demo, modes
from diffuser_ros.robots import ROBOTS

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "robot.launch.py"


def yaml_file(robot: str) -> Path:
    return REPO / "config" / f"{robot}.yaml"


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
        if name is None:  # f"{robot}_sim_node": the bridge, by its role
            name_node = _kw(call, "name")
            assert isinstance(name_node, ast.JoinedStr)
            assert _const(name_node.values[-1]) == "_sim_node"
            name = demo.SIM
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
    folder, file_name = join.args[1:]
    assert isinstance(file_name, ast.JoinedStr) and _const(file_name.values[-1]) == ".yaml"
    # The robot argument's choices are the robot entries themselves, imported.
    imports_robots = any(isinstance(n, ast.ImportFrom) and n.module == "diffuser_ros.robots"
                         and [a.name for a in n.names] == ["ROBOTS"] for n in tree.body)
    (robot_arg,) = [c for c in _calls(tree, "DeclareLaunchArgument")
                    if _const(c.args[0]) == "robot"]
    return {"arguments": arguments, "nodes": nodes, "share_package": _const(share.args[0]),
            "config_dir": _const(folder),
            "robot_choices_are_the_entries": imports_robots and ast.unparse(
                _kw(robot_arg, "choices")) == "sorted(ROBOTS)"}


@pytest.fixture(scope="module", params=sorted(ROBOTS))
def robot(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def params(robot) -> dict:
    """config/<robot>.yaml, its simulator section under the role name (demo.SIM)."""
    from diffuser_ros.nodes.node_settings import sim_node_name

    loaded = yaml.safe_load(yaml_file(robot).read_text())
    loaded[demo.SIM] = loaded.pop(sim_node_name(robot))
    return loaded


def test_launch_and_runner_start_the_same_nodes_with_the_same_yaml(launch):
    assert {n: v["executable"] for n, v in launch["nodes"].items()} == demo.NODES
    assert {v["package"] for v in launch["nodes"].values()} == {demo.PACKAGE}
    assert launch["share_package"] == demo.PACKAGE
    assert launch["config_dir"] == demo.CONFIG_DIR
    assert launch["robot_choices_are_the_entries"]
    from diffuser_ros.planning import default_model_path

    for robot in ROBOTS:  # every robot entry has a config, a launch file and a shipped model
        assert demo.params_file(robot) == yaml_file(robot)
        assert (REPO / "launch" / f"{robot}.launch.py").is_file(), robot
        assert (default_model_path(robot) / "planner.json").is_file(), robot


@pytest.mark.parametrize("robot", sorted(ROBOTS))
def test_each_robot_launch_file_includes_the_generic_one_with_its_robot(robot):
    tree = ast.parse((REPO / "launch" / f"{robot}.launch.py").read_text())
    (include,) = _calls(tree, "IncludeLaunchDescription")
    (join,) = _calls(tree, "join")
    assert [_const(a) for a in join.args[1:]] == ["launch", "robot.launch.py"]
    constants = {n.targets[0].id: _const(n.value) for n in tree.body if isinstance(n, ast.Assign)}
    assert constants["ROBOT"] == robot
    assert "launch_arguments={'robot': ROBOT}.items()" in ast.unparse(include)


def test_launch_arguments_match_runner_flags_and_parameters(launch):
    assert set(launch["arguments"]) == set(demo.LAUNCH_ARGUMENTS)
    usage = demo.build_parser().format_help()
    for name in launch["arguments"]:
        assert f"--{name.replace('_', '-')} " in usage, name
    from_launch = {arg: (node, param) for node, spec in launch["nodes"].items()
                   for param, arg in spec["arguments"].items()}
    assert from_launch == demo.LAUNCH_ARGUMENTS


def test_launch_defaults_equal_the_yaml_or_the_code(launch, params, robot):
    from diffuser_ros.nodes.node_settings import parameters_of

    for arg, (node, param) in demo.LAUNCH_ARGUMENTS.items():
        default = launch["arguments"][arg]
        if arg in modes.PARAMETERS:
            assert default == modes.AUTO  # resolved by mode: test_auto_arguments_follow_...
            continue
        if arg == "robot":  # the included files set it; robot.launch.py's own is Hopper
            assert default == "hopper" and params["planner_node"]["ros__parameters"]["robot"] \
                == robot
            continue
        code = {s.name: json.loads(s.describe_default())
                for s in parameters_of(node, robot)}
        value = params[node]["ros__parameters"].get(param, code.get(param))
        assert yaml.safe_load(default) == value if default else value == "", arg


def test_auto_arguments_follow_the_mode_in_launch_and_runner():
    tree = ast.parse(LAUNCH_FILE.read_text())
    func = next(n for n in tree.body
                if isinstance(n, ast.FunctionDef) and n.name == "_resolve_auto")
    namespace: dict = {"SetLaunchConfiguration": lambda key, value: (key, value),
                       "AUTO": modes.AUTO, "BY_MODE": modes.BY_MODE}
    exec(compile(ast.Module(body=[func], type_ignores=[]), "launch", "exec"), namespace)  # noqa: S102
    resolve = namespace["_resolve_auto"]
    assert "from diffuser_ros.modes import AUTO, BY_MODE, MODES" in LAUNCH_FILE.read_text()

    class Context:
        def __init__(self, **configurations):
            self.launch_configurations = configurations

    auto = {name: "auto" for name in modes.PARAMETERS}
    for mode, values in modes.BY_MODE.items():
        assert dict(resolve(Context(mode=mode, **auto))) == {k: str(v) for k, v in values.items()}
        given = {**auto, "execution": "tracking"}  # given: kept
        assert "execution" not in dict(resolve(Context(mode=mode, **given)))
        for flags in (["--mode", mode], ["--mode", mode, "--execution", "auto",
                                          "--preset", "auto", "--predict-ahead", "auto"]):
            planner = demo.overrides(demo.build_parser().parse_args(flags))["planner_node"]
            assert {k: planner[k] for k in values} == values
    args = demo.build_parser().parse_args(["--mode", "realtime", "--execution", "hold",
                                           "--predict-ahead", "3", "--preset", "quality"])
    planner = demo.overrides(args)["planner_node"]
    assert (planner["execution"], planner["predict_ahead"], planner["preset"]) == \
        ("hold", 3, "quality")
    # Without --mode the YAML's mode (lockstep) and values stay, except those given.
    planner = demo.overrides(demo.build_parser().parse_args(["--predict-ahead", "2"]))
    assert planner["planner_node"] == {"predict_ahead": 2}
    with pytest.raises(ValueError, match="mode must be one of"):
        modes.resolve("sometimes", {})


def test_runner_flags_become_node_overrides():
    args = demo.build_parser().parse_args(
        ["--mode", "realtime", "--episodes", "3", "--use-sim-time", "false", "--seed", "4"])
    out = demo.overrides(args)
    assert out[demo.SIM] == {"mode": "realtime", "max_episodes": 3, "seed": 4}
    assert out["planner_node"] == {"use_sim_time": False, "seed": 4,
                                   **modes.BY_MODE["realtime"]}
    args = demo.build_parser().parse_args(["--autostart", "false", "--torch-threads", "2",
                                           "--record-video", "run.gif"])
    out = demo.overrides(args)
    assert out["planner_node"] == {"autostart": False, "torch_threads": 2}
    assert out[demo.SIM] == {"record_video": "run.gif"}
    out = demo.overrides(demo.build_parser().parse_args(["--robot", "walker2d"]))
    assert out["planner_node"] == {"robot": "walker2d"}


@pytest.mark.parametrize("flags", [["--mode", "fast"], ["--torch-threads", "x"], ["--robot", "ant"],
                                   ["--use-sim-time", "maybe"], ["--execution", "teleport"]])
def test_runner_rejects_flags_its_parameters_would_reject(flags, capsys):
    with pytest.raises(SystemExit):
        demo.build_parser().parse_args(flags)
    assert f"error: argument {flags[0]}" in capsys.readouterr().err


def test_launch_has_an_autostart_argument_for_the_lifecycle_workflow(launch):
    assert launch["arguments"]["autostart"] == "true"
    assert launch["nodes"]["planner_node"]["arguments"]["autostart"] == "autostart"


def test_yaml_holds_every_parameter_with_the_code_default(params, robot):
    from diffuser_ros.nodes.node_settings import (
        parameters_of,
        robot_controller_defaults,
        robot_node_defaults,
    )
    from diffuser_ros.planning import PlannerConfig
    from diffuser_ros.settings import settings_of

    # The planner settings come from the preset and the joint mapping from the robot entry; a
    # value in the YAML would override them, so the YAML holds none (it cannot show a value
    # that is not in effect, or be a second home of the robot's joints).
    derived = {s.name for s in settings_of(PlannerConfig)} | set(robot_node_defaults(robot)) \
        | set(robot_controller_defaults(robot))
    preset = {s.name: json.loads(s.describe_default()) for s in parameters_of("planner_node",
                                                                             robot)}
    for node in ("planner_node", demo.SIM):
        infos = parameters_of(node, robot)
        values = dict(params[node]["ros__parameters"])
        values.pop("use_sim_time", None)
        if node == "planner_node":  # a robot's deliberate override of its preset may stay
            for name in [n for n in values if n in derived]:
                assert values.pop(name) != preset[name], f"{robot}: {name} repeats its default"
        expected = {s.name for s in infos} - (derived if node == "planner_node" else set())
        assert set(values) == expected, node
        for info in infos:
            if info.name in expected:  # as the YAML writes it: JSON types, lists for tuples
                assert json.dumps(values[info.name]) == info.describe_default(), \
                    f"{node}.{info.name}"


def test_reference_docs_list_every_parameter_topic_and_service():
    from diffuser_ros.nodes.node_settings import parameters_of

    text = (REPO / "docs" / "ros.md").read_text()
    for info in parameters_of("planner_node") + parameters_of(demo.SIM):
        assert f"| `{info.name}` |" in text, info.name
    for name in ("~/estop", "~/reset", "~/planned_trajectory", "/diagnostics", "/clock",
                 "episode_stats", "diffuser-ros-demo"):
        assert name in text, name
    for argument in demo.LAUNCH_ARGUMENTS:  # the launch argument table
        assert f"| `{argument}` |" in text, argument


def test_reference_tables_are_generated_from_the_settings():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "docs_tables.py"),
                             "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_readme_is_a_front_page_that_links_the_reference():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert "<!-- BEGIN" not in text  # the generated reference tables live in docs/ros.md
    for link in ("docs/ros.md", "docs/evaluation.md", "docs/benchmark.md", "docs/training.md"):
        assert f"]({link}" in text, link
    for command in ("make demo", "make test", "ros2 launch diffuser_ros hopper.launch.py"):
        assert command in text, command


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
    assert '(HERE / "launch").glob("*.launch.py")' in setup
    assert '(HERE / "config").glob("*.yaml")' in setup
