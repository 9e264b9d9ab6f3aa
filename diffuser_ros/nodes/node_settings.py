"""The nodes' own settings, declared with :func:`~diffuser_ros.settings.setting` (rclpy-free).

``planner_node``'s parameters are four settings groups: :class:`RobotSettings` (which robot
entry it drives), :class:`PlannerNodeSettings` (the node's own: lifecycle, model, topics, QoS,
joint mapping, threads, preset; the joint mapping's defaults from the robot entry),
:class:`~diffuser_ros.planning.PlannerConfig` (how it plans; defaults from ``preset``) and
:class:`~diffuser_ros.control.ControllerSettings` (timing, safety, execution; the control
period's default from the robot entry). The simulator bridge's (``sim_node``, started as
``<robot>_sim_node``) are :class:`SimulatorSettings`. ``nodes/parameters.py`` turns them into
ROS parameters, ``diffuser-ros-demo`` into flags, ``scripts/docs_tables.py`` into the tables of
``docs/ros.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from diffuser_ros.control import ControllerSettings
from diffuser_ros.planning import DEFAULT_PRESET, PRESETS, PlannerConfig
from diffuser_ros.robots import DEFAULT_ROBOT, HOPPER, ROBOTS, robot
from diffuser_ros.settings import SettingInfo, check_fields, setting, settings_of

STATE_INPUTS = ("joint_states", "observation")
RELIABILITIES = ("reliable", "best_effort")
MODES = ("lockstep", "realtime")


@dataclass(frozen=True)
class RobotSettings:
    """Which robot entry ``planner_node`` drives (declared first: it gives defaults)."""

    robot: str = setting(
        DEFAULT_ROBOT.name, "The robot entry (diffuser_ros.robots) the planner drives: "
        "model_path '' loads its shipped model (diffuser_ros/models/<robot>), and its joints "
        "give the defaults of joint_names, position_skip, velocity_clip, action_joints and "
        "control_period.", choices=tuple(sorted(ROBOTS)), runtime=False)

    def __post_init__(self) -> None:
        check_fields(self)


def robot_node_defaults(name: str) -> dict:
    """The joint mapping of the robot entry ``name`` as :class:`PlannerNodeSettings` defaults."""
    entry = robot(name)
    return {"joint_names": entry.joints, "position_skip": entry.position_skip,
            "velocity_clip": entry.velocity_clip, "action_joints": entry.action_joints}


def robot_controller_defaults(name: str) -> dict:
    """The robot entry ``name``'s control period as a :class:`ControllerSettings` default."""
    return {"control_period": robot(name).control_period}


@dataclass(frozen=True)
class PlannerNodeSettings:
    """``planner_node``'s own parameters (read-only, except ``preset``)."""

    preset: str = setting(
        DEFAULT_PRESET, "Base values of the planner settings: " + ", ".join(sorted(PRESETS))
        + " or '' (the PlannerConfig defaults). At start-up every planner setting given "
        "explicitly wins over it; set at runtime, it writes its values into the settings.",
        choices=("",) + tuple(sorted(PRESETS)))
    autostart: bool = setting(
        True, "Configure and activate at start-up; false leaves the node unconfigured for "
        "'ros2 lifecycle set'.", runtime=False)
    model_path: str = setting(
        "", "Planner checkpoint folder; '' = robot's shipped model "
        "(diffuser_ros/models/<robot>).", runtime=False)
    state_input: str = setting(
        "joint_states", "Where the state comes from: 'joint_states' (sensor_msgs/JointState "
        "mapped by joint_names) or 'observation' (a flat std_msgs/Float64MultiArray).",
        choices=STATE_INPUTS, runtime=False)
    state_topic: str = setting(
        "joint_states", "JointState topic (state_input 'joint_states').", runtime=False)
    observation_topic: str = setting(
        "observation", "Float64MultiArray observation topic (state_input 'observation').",
        runtime=False)
    action_topic: str = setting(
        "action", "Float64MultiArray topic the actions go out on (a forward command "
        "controller's 'commands').", runtime=False)
    cmd_vel_topic: str = setting(
        "cmd_vel", "geometry_msgs/Twist topic whose linear.x commands the forward speed (m/s), "
        "for command_timeout; needs a model with a command value.", runtime=False)
    goal_topic: str = setting(
        "~/goal", "trajectory_msgs/JointTrajectory topic of goal constraints: each point's "
        "positions/velocities (NaN = free) are inpainted into every plan at horizon index "
        "time_from_start / control_period; an empty message clears the goal.", runtime=False)
    qos_depth: int = setting(
        1, "History depth of the state subscription (1 = newest only).", range=(1, 1000),
        runtime=False)
    qos_reliability: str = setting(
        "reliable", "Reliability of the state subscription.", choices=RELIABILITIES,
        runtime=False)
    joint_names: tuple[str, ...] = setting(
        HOPPER.joints, "Joints, in observation order, read from the JointState by name.",
        runtime=False)
    position_skip: int = setting(
        HOPPER.position_skip, "Leading joints of joint_names whose positions are left out of "
        "the observation (gymnasium locomotion: 1, root x).", range=(0, 1000), runtime=False)
    velocity_clip: float = setting(
        HOPPER.velocity_clip, "Joint velocities are clipped to +-velocity_clip (gymnasium "
        "locomotion: 10); 0 disables.", range=(0.0, 1e9), runtime=False)
    action_joints: tuple[str, ...] = setting(
        HOPPER.action_joints, "The joints the action's entries drive, in order (names of "
        "~/planned_trajectory).", runtime=False)
    diagnostics_period: float = setting(
        1.0, "Period of the /diagnostics status.", range=(0.01, 60.0), unit="s", runtime=False)
    torch_threads: int = setting(
        0, "CPU threads torch plans with (torch.set_num_threads, for the whole process); 0 = "
        "auto: one fewer than the machine's cores, leaving one to the simulator and DDS.",
        range=(0, 1024), runtime=False)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class SimulatorSettings:
    """The simulator bridge's parameters (all read-only)."""

    mode: str = setting(
        "lockstep", "'lockstep': one step per received action (deterministic); 'realtime': a "
        "wall timer steps at 1/dt holding the last action.", choices=MODES, runtime=False)
    env_id: str = setting(
        HOPPER.env_id, "gymnasium MuJoCo environment, one a robot entry describes "
        "(diffuser_ros.robots: " + ", ".join(sorted(r.env_id for r in ROBOTS.values())) + ").",
        choices=tuple(sorted(r.env_id for r in ROBOTS.values())), runtime=False)
    max_episode_steps: int = setting(
        1000, "Steps after which an episode is truncated.", range=(1, 10_000_000),
        runtime=False)
    max_episodes: int = setting(
        0, "Episodes to run before stopping (0 = unlimited).", range=(0, 10_000_000),
        runtime=False)
    seed: int = setting(
        0, "Episode k resets with seed + k; -1 = unseeded.", range=(-1, 2**31 - 1),
        runtime=False)
    mass_scale: float = setting(
        1.0, "Every body's mass and inertia x this: a robot that differs from the planner's "
        "model of it (the robot model used for prediction and tracking stays as trained).",
        range=(0.1, 10.0), runtime=False)
    friction_scale: float = setting(
        1.0, "Every geom's sliding friction x this (as mass_scale).", range=(0.1, 10.0),
        runtime=False)
    action_timeout: float = setting(
        0.5, "Realtime mode: zero action once no action has arrived for this long.",
        range=(1e-3, 3600.0), unit="s", runtime=False)
    state_republish_period: float = setting(
        1.0, "Lockstep mode: publish the current state again when no action has arrived for "
        "this long (or for 3x the slowest answer so far, if longer).", range=(0.01, 3600.0),
        unit="s", runtime=False)
    state_topic: str = setting("joint_states", "JointState output topic.", runtime=False)
    action_topic: str = setting("action", "Float64MultiArray action input topic.",
                                runtime=False)
    episode_stats_topic: str = setting(
        "episode_stats", "std_msgs/String JSON per episode and a final summary (transient "
        "local).", runtime=False)
    controller_engaged_topic: str = setting(
        "planner_node/engaged", "std_msgs/Bool (latched) saying whether the controller may "
        "drive the robot; while it is false or has not yet said true, the simulation is held "
        "(paused, as a robot held until its controller is active): before activation, during "
        "an e-stop, when deactivated. '' = never hold.", runtime=False)
    planner_reset_service: str = setting(
        "planner_node/reset", "Trigger service called at the start of every new episode "
        "('' = none).", runtime=False)
    record_video: str = setting(
        "", "Write a video of the run to this file ('' = off; needs off-screen MuJoCo "
        "rendering, e.g. MUJOCO_GL=osmesa with libosmesa6).", runtime=False)
    video_width: int = setting(320, "Video frame width.", range=(16, 4096), unit="px",
                               runtime=False)
    video_height: int = setting(240, "Video frame height.", range=(16, 4096), unit="px",
                                runtime=False)

    def __post_init__(self) -> None:
        check_fields(self)


# planner_node's parameters, group by group (PlannerNodeSettings' joint mapping and the control
# period default from the robot; PlannerConfig's from the preset).
PLANNER_NODE_GROUPS = (RobotSettings, PlannerNodeSettings, PlannerConfig, ControllerSettings)
# The ROS-standard parameter the launch file and the demo set on the planner.
USE_SIM_TIME = SettingInfo("use_sim_time", True, "Follow the simulator's /clock (simulation "
                           "time) instead of the system clock: the standard ROS parameter, "
                           "false by default, true in the config/<robot>.yaml files.")


def planner_node_parameters(preset: str = DEFAULT_PRESET,
                            robot_name: str = DEFAULT_ROBOT.name) -> list[SettingInfo]:
    """Every parameter of ``planner_node``, the joint mapping's defaults from ``robot_name``,
    the planner settings' from ``preset``."""
    return (settings_of(RobotSettings, {"robot": robot_name})
            + settings_of(PlannerNodeSettings, robot_node_defaults(robot_name))
            + settings_of(PlannerConfig, PRESETS.get(preset))
            + settings_of(ControllerSettings, robot_controller_defaults(robot_name)))


def sim_node_parameters(robot_name: str = DEFAULT_ROBOT.name) -> list[SettingInfo]:
    """Every parameter of the simulator bridge, for ``robot_name``'s environment."""
    return settings_of(SimulatorSettings, {"env_id": robot(robot_name).env_id})


def sim_node_name(robot_name: str) -> str:
    """What the launch files and the demo call the simulator bridge of a robot
    (``hopper_sim_node``): the section of ``config/<robot>.yaml`` that holds its parameters."""
    return f"{robot_name}_sim_node"


def parameters_of(node_name: str, robot_name: str = DEFAULT_ROBOT.name) -> list[SettingInfo]:
    """The parameters of ``planner_node`` or a simulator bridge (``*sim_node``) for
    ``robot_name`` (shipped defaults)."""
    if node_name == "planner_node":
        return planner_node_parameters(robot_name=robot_name)
    if node_name.endswith("sim_node"):
        return sim_node_parameters(robot_name)
    raise ValueError(f"unknown node {node_name!r}")
