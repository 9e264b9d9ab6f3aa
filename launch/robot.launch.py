"""A robot's demo: ``planner_node`` + the simulator bridge (``sim_node``, named
``<robot>_sim_node``) with ``config/<robot>.yaml``.

    ros2 launch diffuser_ros robot.launch.py robot:=walker2d episodes:=3
    ros2 launch diffuser_ros hopper.launch.py mode:=realtime episodes:=3 preset:=realtime

``hopper.launch.py`` and ``walker2d.launch.py`` are this file with ``robot`` set.

Launch arguments override single parameters of the YAML; the launch ends when the simulator has
run ``episodes`` episodes (0 = until Ctrl-C), and ends with a non-zero exit code as soon as either
node fails (e.g. a planner ``model_path`` that does not load). ``planner_node`` is a managed
(lifecycle) node that configures and activates itself (``autostart:=true``); with
``autostart:=false`` it waits for ``ros2 lifecycle set /planner_node configure`` / ``activate``,
and the simulator holds the robot until the planner says it is engaged.

``preset``, ``execution`` and ``predict_ahead`` default to ``auto``, resolved here where the mode
is known (``diffuser_ros.modes``, which ``diffuser-ros-demo`` uses too): in lockstep the shipped
model's evaluated settings, in realtime a plan that fits a control period, made for the step it
acts at.

Without launch / launch_ros, ``diffuser-ros-demo`` runs the same nodes with the same YAML in one
process; its flags mirror these arguments (``--mode``, ``--autostart``, ``--device``,
``--model-path``, ``--episodes``, ``--preset``, ``--use-sim-time``, ``--execution``,
``--predict-ahead``, ``--robot``).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    OpaqueFunction,
    RegisterEventHandler,
    SetLaunchConfiguration,
)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

# What 'auto' means in each mode, and the robot entries (each ships a model and a
# config/<robot>.yaml: test_launch.py checks it).
from diffuser_ros.modes import AUTO, BY_MODE, MODES
from diffuser_ros.robots import ROBOTS


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument("robot", default_value="hopper", choices=sorted(ROBOTS),
                              description="The robot: its config/<robot>.yaml, shipped model "
                                          "and simulated environment"),
        DeclareLaunchArgument("mode", default_value="lockstep", choices=list(MODES),
                              description="Simulator: one step per action, or a 125 Hz timer"),
        DeclareLaunchArgument("autostart", default_value="true", choices=["true", "false"],
                              description="Planner configures and activates itself; false: "
                                          "'ros2 lifecycle set /planner_node configure', then "
                                          "'activate'"),
        DeclareLaunchArgument("device", default_value="auto",
                              description="Planner device: auto, cpu, cuda, cuda:N"),
        DeclareLaunchArgument("model_path", default_value="",
                              description="Planner checkpoint folder ('' = the shipped model)"),
        DeclareLaunchArgument("episodes", default_value="0",
                              description="Episodes to run before shutting down (0 = unlimited)"),
        DeclareLaunchArgument("preset", default_value="auto",
                              description="Planner preset: realtime, fast, quality (the paper), "
                                          "'' (the individual parameters); auto: realtime in "
                                          "lockstep, fast in realtime"),
        DeclareLaunchArgument("use_sim_time", default_value="true",
                              description="Planner follows the simulator's /clock"),
        DeclareLaunchArgument("execution", default_value="auto",
                              choices=["auto", "hold", "time_indexed", "tracking"],
                              description="Planner execution between plans; auto: hold in "
                                          "lockstep, time_indexed in realtime"),
        DeclareLaunchArgument("predict_ahead", default_value="auto",
                              description="Plan from the state predicted this many control "
                                          "periods ahead; auto: 0 in lockstep, 1 in realtime"),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_resolve_auto),
                              OpaqueFunction(function=_nodes)])


def _nodes(context):
    """The two nodes with the robot's parameter file (the robot is known once arguments are)."""
    robot = context.launch_configurations["robot"]
    params = os.path.join(get_package_share_directory("diffuser_ros"), "config", f"{robot}.yaml")

    def arg(name, value_type):
        return ParameterValue(LaunchConfiguration(name), value_type=value_type)

    planner = Node(
        package="diffuser_ros", executable="planner_node", name="planner_node", output="screen",
        parameters=[params, {
            "robot": arg("robot", str),
            "device": arg("device", str),
            "model_path": arg("model_path", str),
            "preset": arg("preset", str),
            "use_sim_time": arg("use_sim_time", bool),
            "execution": arg("execution", str),
            "predict_ahead": arg("predict_ahead", int),
            "autostart": arg("autostart", bool),
        }])
    sim = Node(
        package="diffuser_ros", executable="sim_node", name=f"{robot}_sim_node",
        output="screen",
        parameters=[params, {
            "mode": arg("mode", str),
            "max_episodes": arg("episodes", int),
        }])
    # Either node ending ends the launch; a failure makes it exit non-zero (launch returns 1 when
    # an event handler raises, and only then).
    stop_with = [RegisterEventHandler(OnProcessExit(target_action=node, on_exit=_end_launch))
                 for node in (planner, sim)]
    return [planner, sim, *stop_with]


def _resolve_auto(context):
    """Each ``auto`` argument becomes the mode's value before the nodes start."""
    configurations = context.launch_configurations
    mode = configurations["mode"]
    return [SetLaunchConfiguration(name, str(value)) for name, value in BY_MODE[mode].items()
            if configurations[name] == AUTO]


def _end_launch(event, context):
    if event.returncode != 0:
        raise RuntimeError(f"{event.action.name} failed (exit code {event.returncode}); "
                           "its log above says why")
    return [EmitEvent(event=Shutdown(reason=f"{event.action.name} finished"))]
