"""``diffuser-ros-demo``: the planner and a robot's simulator in one process, no launch needed.

Runs the same two nodes as ``launch/robot.launch.py`` (``hopper.launch.py``,
``walker2d.launch.py``) with the same parameter file (``config/<robot>.yaml``) on one in-process
executor; the flags mirror the launch arguments::

    diffuser-ros-demo --episodes 3 --mode lockstep --preset realtime
    diffuser-ros-demo --robot walker2d --episodes 3

Other parameters can follow ``--ros-args`` (``-p name:=value`` applies to both nodes, after the
YAML), e.g. ``diffuser-ros-demo --episodes 1 --ros-args -p n_candidates:=32`` (a planner setting
given explicitly wins over the preset). The planner is configured and activated at start-up, as
the launch file does. In ``realtime`` the simulator runs in a process of its own
(``--sim-process``), so its 125 Hz timer never waits for the GIL while the planner computes.
It prints a progress line every ``--progress-period`` seconds, each
episode's return, length and end reason as it ends, then a summary (mean return, closed-loop
rate, planning latency), also when stopped by Ctrl-C or SIGTERM; it exits 0 after
``--episodes`` episodes or a signal (1 on a start-up error such as a missing model).
"""

from __future__ import annotations

import os

# Loopback-only DDS discovery unless the user chose otherwise; must precede rclpy's import.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from diffuser_ros import modes  # noqa: E402
from diffuser_ros.robots import DEFAULT_ROBOT  # noqa: E402

PACKAGE = "diffuser_ros"
CONFIG_DIR = "config"  # config/<robot>.yaml, relative to the package's share directory
# The two nodes by role -> executable; launch/robot.launch.py starts the same (test_launch.py
# checks it). The simulator bridge runs as <robot>_sim_node (node_settings.sim_node_name).
SIM = "sim_node"
NODES = {"planner_node": "planner_node", SIM: "sim_node"}
# launch argument (CLI flag with '-' for '_') -> (node role, parameter)
LAUNCH_ARGUMENTS = {
    "robot": ("planner_node", "robot"),  # also picks config/<robot>.yaml and the bridge's name
    "mode": (SIM, "mode"),
    "autostart": ("planner_node", "autostart"),
    "device": ("planner_node", "device"),
    "model_path": ("planner_node", "model_path"),
    "episodes": (SIM, "max_episodes"),
    "preset": ("planner_node", "preset"),
    "use_sim_time": ("planner_node", "use_sim_time"),
    "execution": ("planner_node", "execution"),
    "predict_ahead": ("planner_node", "predict_ahead"),
}
# More flags that set one node parameter: flag (with '-' for '_') -> (node role, parameter)
PARAMETER_FLAGS = {
    "seed": (SIM, "seed"),  # and the planner's seed, see overrides()
    "max_episode_steps": (SIM, "max_episode_steps"),
    "record_video": (SIM, "record_video"),
    "torch_threads": ("planner_node", "torch_threads"),
    "plans_in_flight": ("planner_node", "plans_in_flight"),
}
# Where the simulator runs: beside the planner on one executor, or in a process of its own
# (as under ros2 launch). 'auto': its own in realtime, where its timer must keep 125 Hz while
# the planner's threads hold the GIL; the same in lockstep, where the world waits anyway.
SIM_PROCESSES = ("auto", "same", "separate")


def params_file(robot: str = DEFAULT_ROBOT.name) -> Path:
    """``config/<robot>.yaml``: from the source tree when run from it, else the installed
    share."""
    relative = (CONFIG_DIR, f"{robot}.yaml")
    source = Path(__file__).resolve().parents[1].joinpath(*relative)
    if source.is_file():
        return source
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)).joinpath(*relative))
    except Exception:  # noqa: BLE001 - not in an ament index (e.g. plain pip install)
        pass
    candidates.append(Path(sys.prefix, "share", PACKAGE).joinpath(*relative))
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"cannot find {'/'.join(relative)} of {PACKAGE} (looked at "
                            f"{[str(source)] + [str(c) for c in candidates]})")


def build_parser() -> argparse.ArgumentParser:
    """The flags: one per launch argument and per entry of PARAMETER_FLAGS, each with the type,
    choices and help of the parameter it sets (nodes/node_settings.py), plus the runner's own."""
    from diffuser_ros.nodes.node_settings import USE_SIM_TIME, parameters_of
    from diffuser_ros.settings import add_argument

    parser = argparse.ArgumentParser(
        prog="diffuser-ros-demo", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    infos = {node: {i.name: i for i in parameters_of(node)} for node in NODES}
    infos["planner_node"][USE_SIM_TIME.name] = USE_SIM_TIME
    for flag, (node, param) in {**LAUNCH_ARGUMENTS, **PARAMETER_FLAGS}.items():
        info = infos[node][param]
        doc = f"{node} {param}: {info.doc}"
        if node == "planner_node" and param in modes.PARAMETERS:
            by_mode = ", ".join(f"{values[param]!r} in {mode}"
                                for mode, values in modes.BY_MODE.items())
            doc += f" '{modes.AUTO}' (the default) = {by_mode}."
            if info.kind is str:
                info = dataclasses.replace(info, default=modes.AUTO,
                                           choices=(modes.AUTO, *(info.choices or ())) or None)
            else:  # a number, or 'auto'
                parser.add_argument("--" + flag.replace("_", "-"), dest=flag, metavar=flag.upper(),
                                    type=_auto_or(info.kind), help=doc.replace("%", "%%"))
                continue
        add_argument(parser, info, flag="--" + flag.replace("_", "-"), dest=flag, doc=doc)
    parser.add_argument("--params-file", type=Path,
                        help="parameter YAML (default: the package's config/<robot>.yaml)")
    parser.add_argument("--progress-period", type=float, default=10.0,
                        help="seconds between progress lines while an episode runs (0 = none; "
                             "default 10)")
    parser.add_argument(
        "--sim-process", choices=SIM_PROCESSES, default="auto",
        help="where the simulator runs: 'separate' (a sim_node child process, as ros2 launch "
             "does), 'same' (beside the planner, one executor); 'auto' (default): separate in "
             "realtime, same in lockstep")
    parser.add_argument(
        "--executor", choices=("single", "multi"), default="single",
        help="executor spinning both nodes (default single). Planning runs on the planner's own "
             "worker thread, so one executor thread serves the light callbacks; 'multi' "
             "(MultiThreadedExecutor) measured slower in realtime mode (GIL contention, busy "
             "waits)")
    return parser


def overrides(args: argparse.Namespace) -> dict[str, dict]:
    """Per-node parameter overrides from the flags that were given (the rest: the YAML's)."""
    out: dict[str, dict] = {name: {} for name in NODES}
    for flag, (node, param) in {**LAUNCH_ARGUMENTS, **PARAMETER_FLAGS}.items():
        value = getattr(args, flag)
        if value is not None:
            out[node][param] = value
    if args.seed is not None:
        out["planner_node"]["seed"] = args.seed
    planner = out["planner_node"]
    given = {name: planner.pop(name) for name in modes.PARAMETERS if name in planner}
    if args.mode is not None:  # 'auto' by the mode, as the launch file does
        planner.update(modes.resolve(args.mode, given))
    else:  # without --mode: the YAML's mode and values, except those given
        planner.update({k: v for k, v in given.items() if v != modes.AUTO})
    return out


def _auto_or(kind):
    def parse(text: str):
        return modes.AUTO if text == modes.AUTO else kind(text)
    return parse


def simulator_mode(args: argparse.Namespace, yaml_path: Path, sim_name: str) -> str:
    """The simulator's mode: ``--mode``, else the parameter file's."""
    if args.mode is not None:
        return args.mode
    import yaml

    section = yaml.safe_load(Path(yaml_path).read_text()).get(sim_name) or {}
    return section.get("ros__parameters", {}).get("mode", "lockstep")


def sim_in_own_process(args: argparse.Namespace, mode: str) -> bool:
    """``--sim-process``, with 'auto' resolved by the mode."""
    if args.sim_process != "auto":
        return args.sim_process == "separate"
    return mode == "realtime"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args = argv[argv.index("--ros-args") + 1:] if "--ros-args" in argv else []
    args = build_parser().parse_args(argv[:len(argv) - len(ros_args) - bool(ros_args)])
    import rclpy
    from rclpy.executors import (
        ExternalShutdownException,
        MultiThreadedExecutor,
        SingleThreadedExecutor,
    )
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions
    from rclpy.task import Future

    from diffuser_ros.nodes.entry import StopRequest, spin_until
    from diffuser_ros.nodes.node_settings import sim_node_name
    from diffuser_ros.nodes.parameters import ParameterError
    from diffuser_ros.nodes.planner_node import PlannerNode, StartupError
    from diffuser_ros.nodes.sim_node import SimNode, SimStartupError
    from diffuser_ros.nodes.sim_process import SimProcess
    from diffuser_ros.planning import CheckpointError
    from diffuser_ros.simulation import summary_line

    robot = args.robot or DEFAULT_ROBOT.name
    yaml_path = args.params_file or params_file(robot)
    sim_name = sim_node_name(robot)
    mode = simulator_mode(args, yaml_path, sim_name)
    separate = sim_in_own_process(args, mode)
    node_overrides = overrides(args)
    per_node = {node: [Parameter(k, value=v) for k, v in values.items()]
                for node, values in node_overrides.items()}
    context = rclpy.Context()
    # SIGINT/SIGTERM only stop the spin loop: the nodes then shut down in order and the summary
    # is printed either way (rclpy's own handler would invalidate the context mid-publish).
    stop = StopRequest()
    rclpy.init(args=["--ros-args", "--params-file", str(yaml_path), *ros_args], context=context,
               signal_handler_options=SignalHandlerOptions.NO)
    stop.install()
    executor = None
    nodes = []
    try:
        print(f"parameters: {yaml_path}", flush=True)
        nodes.append(PlannerNode("planner_node", context=context,
                                 parameter_overrides=per_node["planner_node"]))
        planner = nodes[0]
        planner.autostart()  # configure (load + warm up) and activate, as the launch file does
        if planner.planner is not None:  # else autostart false: 'ros2 lifecycle set' it
            print(f"planner: device {planner.planner.device}, "
                  f"{', '.join(f'{k}={v}' for k, v in planner.planner.config.to_dict().items())}",
                  flush=True)
        if separate:
            sim = SimProcess(sim_name, yaml_path, ros_args, node_overrides[SIM], context, mode)
            print(f"simulator: {sim_name} in its own process (pid {sim.process.pid})",
                  flush=True)
        else:
            sim = SimNode(sim_name, context=context, parameter_overrides=per_node[SIM])
        nodes.append(sim)
        done = Future()

        def on_episode(stats: dict) -> None:
            if stats.get("summary"):
                done.set_result(stats)
            else:
                print(f"episode {stats['episode']}: return {stats['return']:.2f}, length "
                      f"{stats['length']}, {stats['reason']}", flush=True)

        sim.add_episode_listener(on_episode)
        executor = (MultiThreadedExecutor if args.executor == "multi" else
                    SingleThreadedExecutor)(context=context)
        for node in nodes:
            executor.add_node(node.node if node is sim and separate else node)
        start = time.monotonic()
        next_report = start + args.progress_period

        def report() -> None:
            nonlocal next_report
            if args.progress_period > 0 and time.monotonic() >= next_report:
                next_report += args.progress_period
                progress = None if separate else sim.progress()
                print(progress_line(progress, planner, time.monotonic() - start), flush=True)

        def finished() -> bool:
            return done.done() or (separate and sim.failed is not None)

        try:
            spin_until(executor, finished, stop, after_spin=report)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        if separate and sim.failed is not None:  # it said why on its own stderr
            print(f"diffuser-ros-demo: cannot start: {sim_name} exited with code "
                  f"{sim.failed}", file=sys.stderr, flush=True)
            return 1
        if stop.requested or not done.done():
            print(f"interrupted ({stop.signal_name or 'shutdown'})", flush=True)
        summary = sim.summary()
        latency = planner.controller.status().latency if planner.controller is not None else \
            {"count": 0, "mean": math.nan, "p95": math.nan, "max": math.nan}
        plans = latency["count"]
        # decisions/s over the simulator's run (first step to last), like its steps/s
        wall = summary["wall_time_s"] or (time.monotonic() - start)
        print(f"summary ({summary['mode']}): {summary_line(summary)}", flush=True)
        print(f"closed loop: {summary['steps_per_s']:.1f} sim steps/s, {plans / wall:.1f} "
              f"decisions/s ({plans} plans in {wall:.1f} s); planning latency mean "
              f"{_ms(latency['mean'])} ms, p95 {_ms(latency['p95'])} ms, max "
              f"{_ms(latency['max'])} ms", flush=True)
        return 0
    except (CheckpointError, StartupError, SimStartupError, ParameterError) as exc:
        print(f"diffuser-ros-demo: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if separate and len(nodes) > 1:
            nodes[1].stop()  # SIGINT: the child shuts down cleanly (and has, if finished)
        if nodes:
            nodes[0].shutdown()  # lifecycle shutdown: safe action out, planning thread joined
        if executor is not None:
            shutdown_executor(executor)
        for node in reversed(nodes):
            node.destroy_node()
        rclpy.try_shutdown(context=context)
        stop.ignore_from_now_on()


def progress_line(progress: dict | None, planner, elapsed: float) -> str:
    """One line while an episode runs: where it is and how fast the loop goes (``progress``:
    the in-process simulator's; None: it runs in its own process, the planner's side only)."""
    status = planner.controller.status() if planner.controller is not None else None
    plans = status.plans if status is not None else 0
    if progress is None:
        return f"  {plans} plans ({plans / elapsed:.1f} decisions/s)"
    speed = progress.get("speed")
    command = status.command if status is not None else None
    speed_text = "" if speed is None else f", speed {speed:.2f} m/s (last 1 s)"
    if command is not None:
        speed_text += f", commanded {command:.2f}"
    return (f"  episode {progress['episode']}: step {progress['length']}, return so far "
            f"{progress['return']:.1f}{speed_text} ({plans / elapsed:.1f} decisions/s, "
            f"{progress['steps'] / elapsed:.1f} sim steps/s)")


def shutdown_executor(executor) -> None:
    """Shut an executor down after its queued callbacks have run.

    rclpy's ``Executor.shutdown`` destroys the wake-up guard condition before it waits for the
    thread pool, so a callback still queued then fails with "cannot use Destroyable" (printed as
    "exception was never retrieved"); draining the pool first avoids that.
    """
    pool = getattr(executor, "_executor", None)
    if pool is not None:
        pool.shutdown(wait=True)
    executor.shutdown()


def _ms(seconds: float) -> str:
    return "nan" if math.isnan(seconds) else f"{seconds * 1e3:.1f}"


if __name__ == "__main__":
    sys.exit(main())
