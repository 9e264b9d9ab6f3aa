#!/usr/bin/env python3
"""How close the planner's first steps come to a fall: a cheap probe of the start-up window.

Ranked by value alone, Walker2d's planner fell mostly between steps 100 and 190, after leaving
its data's states (pitching forward past 0.8 rad; the data: 99.9% below 0.6). A full
evaluation of 20 seeds costs 35 min on one core here; this probe runs the seeds side by side
for the first ``--steps`` steps through the evaluation's rollout loop (lockstep, the planner's
own best action) and prints, per run, the falls, the largest pitch each seed reached and how far
it walked: a continuous figure where 20 seeds give only a few falls. It also counts the
decisions in which ``prefer_healthy`` chose another candidate than the value alone.

    ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=79 \\
    python scripts/startup_probe.py --model-path diffuser_ros/models/walker2d --seeds 0-19 \\
        --steps 300 --prefer-healthy true --healthy-std 3 --out probe.json
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from diffuser_ros.evaluation.cli import parse_seeds
from diffuser_ros.planning import PlannerConfig, load_planner
from diffuser_ros.robots import env_robot
from diffuser_ros.rollout import Step, roll_out
from diffuser_ros.settings import add_arguments, given_arguments


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--seeds", type=parse_seeds, default=list(range(20)))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="", help="write the per-seed figures here (json)")
    add_arguments(parser.add_argument_group("planner settings (default: the model's)"),
                  PlannerConfig, exclude=("device",))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    planner = load_planner(args.model_path, device="cpu",
                           **given_arguments(args, PlannerConfig))
    robot = env_robot(planner.spec.env_id)
    pitch = robot.joints[robot.position_skip:].index("rooty")
    envs = [robot.make_env() for _ in args.seeds]
    max_pitch = np.full(len(envs), -np.inf)
    changed = np.zeros(len(envs), dtype=bool)  # the newest decision, per env
    counts = {"changed": 0, "decisions": 0}

    def policy(obs_batch: np.ndarray) -> np.ndarray:
        plan = planner.plan(obs_batch)
        changed[:] = plan.best != plan.values.argmax(axis=1)
        return plan.action

    def on_step(step: Step) -> None:  # only the envs that took the step count
        counts["changed"] += int((changed & step.stepped).sum())
        counts["decisions"] += int(step.stepped.sum())
        np.maximum(max_pitch, np.where(step.stepped, step.next_observations[:, pitch], -np.inf),
                   out=max_pitch)

    episodes = roll_out(envs, args.seeds, policy, max_episode_steps=args.steps,
                        max_steps=args.steps, on_step=on_step)
    fell = {e.seed: e.length - 1 for env_episodes in episodes for e in env_episodes
            if e.terminated}  # the 0-based step that ended it
    changed, decisions = counts["changed"], counts["decisions"]
    walked = [float(env.unwrapped.data.qpos[0]) for env in envs]
    result = {"settings": planner.config.to_dict(), "steps": args.steps, "seeds": args.seeds,
              "fell_at_step": fell, "max_pitch": np.round(max_pitch, 3).tolist(),
              "walked_m": np.round(walked, 2).tolist(), "changed_decisions": changed,
              "decisions": decisions}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    print(f"{len(fell)} of {len(envs)} fell {fell}; largest pitch: median "
          f"{np.median(max_pitch):.2f}, max {max_pitch.max():.2f}, above 0.8 in "
          f"{int((max_pitch > 0.8).sum())}; walked {np.mean(walked):.2f} m on average; "
          f"prefer_healthy chose another candidate in {changed} of {decisions} decisions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
