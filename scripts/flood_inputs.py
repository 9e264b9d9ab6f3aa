#!/usr/bin/env python3
"""Flood a running closed-loop demo with malformed inputs and count what comes out on /action.

    ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=77 \
        .venv/bin/python scripts/flood_inputs.py --messages 10000 --seed 100

1. starts ``diffuser-ros-demo --episodes 0 --seed SEED --mode MODE`` (the shipped model) and waits
   for its first action;
2. publishes ``--messages`` malformed messages, round robin over ``joint_states`` (NaN, ±inf,
   ±1e308, ±1e30, 1e6 in one joint; wrong sizes; unknown joints; mismatched lengths),
   ``cmd_vel`` (NaN, ±inf, ±1e308, out of range, negative) and ``planner_node/goal`` (the same
   values, unknown joints, bad times), while checking every action on ``/action``: three finite
   values within [-1, 1];
3. then lets the demo run on and reports the first episode that started after the flood (its
   seed and return), and an undisturbed run of the same seed (``diffuser-ros-demo --episodes 1
   --seed S``) to compare with;
4. stops the demo with SIGINT and reports its exit code (a lost node would show there).

Prints one JSON line with the counts at the end.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BAD = [math.nan, math.inf, -math.inf, 1e308, -1e308, 1e30, -1e30, 1e6, -1e6]
DEMO = str(Path(sys.executable).with_name("diffuser-ros-demo"))


def malformed_messages(joints: tuple[str, ...]):
    """An endless round robin of (topic kind, message)."""
    from builtin_interfaces.msg import Duration
    from geometry_msgs.msg import Twist, Vector3
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    good_pos = [0.0, 1.25, 0.0, -0.3, -0.4, 0.2]
    good_vel = [2.0, -0.2, 0.0, -0.5, -0.2, 0.1]
    states = []
    for value in BAD:
        for j in range(len(joints)):
            for field in ("position", "velocity"):
                pos, vel = list(good_pos), list(good_vel)
                (pos if field == "position" else vel)[j] = value
                states.append(JointState(name=list(joints), position=pos, velocity=vel))
    states += [JointState(name=list(joints[:4]), position=good_pos[:4], velocity=good_vel[:4]),
               JointState(name=list(joints), position=good_pos[:3], velocity=good_vel),
               JointState(name=["no_such_joint"] * 6, position=good_pos, velocity=good_vel),
               JointState()]
    commands = [Twist(linear=Vector3(x=v)) for v in BAD + [-3.0, 0.0, 50.0]]
    goals = []
    for value in BAD:
        for name in ("thigh_joint", "rootz", "rootx", "foot_joint"):
            goals.append(JointTrajectory(joint_names=[name], points=[JointTrajectoryPoint(
                positions=[value], velocities=[value],
                time_from_start=Duration(nanosec=56_000_000))]))
    goals += [JointTrajectory(joint_names=["no_such_joint"], points=[JointTrajectoryPoint(
        positions=[0.0], time_from_start=Duration(nanosec=56_000_000))]),
              JointTrajectory(joint_names=["thigh_joint"], points=[JointTrajectoryPoint(
                  positions=[0.0], time_from_start=Duration(sec=-1))]),
              JointTrajectory(joint_names=["thigh_joint"], points=[JointTrajectoryPoint(
                  positions=[0.0, 1.0], time_from_start=Duration(nanosec=8_000_000))])]
    kinds = [("joint_states", states), ("cmd_vel", commands), ("goal", goals)]
    iterators = [(kind, itertools.cycle(msgs)) for kind, msgs in kinds]
    for kind, iterator in itertools.cycle(iterators):
        yield kind, next(iterator)


def run_demo(seed: int, episodes: int, log: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen([DEMO, "--episodes", str(episodes), "--seed", str(seed),
                             "--mode", mode, "--progress-period", "1000"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=500.0, help="messages per second")
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--log-dir", type=Path, default=Path("/tmp/flood"))
    p.add_argument("--mode", choices=("lockstep", "realtime"), default="lockstep",
                   help="the demo's simulator mode (realtime: its realtime defaults)")
    args = p.parse_args()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    args.log_dir.mkdir(parents=True, exist_ok=True)

    import rclpy
    from geometry_msgs.msg import Twist
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray, String
    from trajectory_msgs.msg import JointTrajectory

    from diffuser_ros.robots import HOPPER

    demo = run_demo(args.seed, 0, args.log_dir / "flooded_demo.log", args.mode)
    rclpy.init()
    node = rclpy.create_node("flood")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    counts = {"actions": 0, "bad_actions": 0, "sent": {"joint_states": 0, "cmd_vel": 0,
                                                       "goal": 0}}
    episodes: list[dict] = []

    def on_action(msg):
        action = np.asarray(msg.data)
        counts["actions"] += 1
        if action.shape != (3,) or not np.isfinite(action).all() or (np.abs(action) > 1).any():
            counts["bad_actions"] += 1

    def on_stats(msg):
        stats = json.loads(msg.data)
        if not stats.get("summary"):
            episodes.append({**stats, "received": time.monotonic()})

    node.create_subscription(Float64MultiArray, "action", on_action, 100)
    node.create_subscription(String, "episode_stats", on_stats, QoSProfile(
        depth=100, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    publishers = {"joint_states": node.create_publisher(JointState, "joint_states", 10),
                  "cmd_vel": node.create_publisher(Twist, "cmd_vel", 10),
                  "goal": node.create_publisher(JointTrajectory, "planner_node/goal", 10)}

    def spin_until(predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            executor.spin_once(timeout_sec=0.01)
            if demo.poll() is not None:
                return predicate()
        return predicate()

    ok = spin_until(lambda: counts["actions"] > 0, 300)
    print(f"demo running: {ok}; flooding {args.messages} messages at {args.rate:g}/s",
          flush=True)
    started = time.monotonic()
    period = 1.0 / args.rate
    for i, (kind, msg) in enumerate(malformed_messages(HOPPER.joints)):
        if i >= args.messages or demo.poll() is not None:
            break
        publishers[kind].publish(msg)
        counts["sent"][kind] += 1
        executor.spin_once(timeout_sec=0.0)
        while time.monotonic() < started + (i + 1) * period:
            executor.spin_once(timeout_sec=period / 2)
    flood_end = time.monotonic()
    counts["flood_seconds"] = round(flood_end - started, 1)
    counts["actions_during_flood"] = counts["actions"]
    print(f"flood done in {counts['flood_seconds']} s; waiting for a whole episode after it",
          flush=True)
    # The first episode started after the flood: the one after the episode running at its end.
    done_at_flood = len([e for e in episodes if e["received"] <= flood_end])
    spin_until(lambda: len(episodes) >= done_at_flood + 2, 900)
    after = episodes[done_at_flood + 1] if len(episodes) >= done_at_flood + 2 else None
    demo.send_signal(signal.SIGINT)
    try:
        demo_exit = demo.wait(60)
    except subprocess.TimeoutExpired:
        demo.kill()
        demo_exit = "killed after 60 s"
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown()
    counts["demo_alive_after_flood"] = demo_exit != "killed after 60 s"
    counts["demo_exit_code"] = demo_exit
    counts["episode_after_flood"] = after and {k: after[k] for k in ("seed", "return", "length")}
    if after is not None:  # the same seed, undisturbed, for comparison
        log = args.log_dir / "reference_demo.log"
        reference = run_demo(after["seed"], 1, log, args.mode)
        reference.wait(900)
        lines = [ln for ln in log.read_text().splitlines() if "episode 1: return" in ln]
        counts["undisturbed_same_seed"] = lines[-1].split("]: ")[-1] if lines else None
    print(json.dumps(counts))
    return 0 if counts["bad_actions"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
