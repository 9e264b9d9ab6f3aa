"""``diffuser-ros-tolerance``: closed-loop return against planning latency, no wall-clock noise.

A plan started from the state at step t is delivered at step t + d (the deterministic latency
model of :class:`~diffuser_ros.evaluation.closed_loop.ControllerPolicy`); meanwhile the node's
controller core decides what the robot applies. For each execution mode and each d it runs the
same seeds and writes ``tolerance.json`` (mean ± s.e., D4RL score, full-length fraction, per-seed
returns) and ``tolerance.png``. Finished points are kept, so an interrupted run resumes::

    diffuser-ros-tolerance --seeds 0-9 --latency 0,1,2,4,8,16,25 --execution hold,time_indexed \\
        --out docs/tolerance

Read the curve at the d that matters: d = planning latency / control period (Hopper: 8 ms), e.g.
the ``action_delay`` the node reports in its diagnostics.

Latency compensation: ``--predict-ahead d`` plans from the state the robot model predicts for
the step each plan will act at (``predict_ahead`` = d at every point; a number fixes it);
``--in-flight K`` starts a plan every step while fewer than K are in flight (K planners)::

    diffuser-ros-tolerance --seeds 1000-1009 --latency 0,1,2 --execution hold,time_indexed \
        --predict-ahead d --in-flight 1 --out docs/realtime/predict
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from diffuser_ros.control import EXECUTIONS, ControllerSettings
from diffuser_ros.evaluation.cli import (
    add_rollout_arguments,
    load_cli_planner,
    parse_int_list,
    rollout_parser,
)
from diffuser_ros.evaluation.closed_loop import controller_policy, run_episodes
from diffuser_ros.evaluation.report import pyplot, save_figure, summarize
from diffuser_ros.evaluation.resume import ResultsFile
from diffuser_ros.robots import env_robot


def build_parser() -> argparse.ArgumentParser:
    p = rollout_parser("diffuser-ros-tolerance", __doc__)
    p.add_argument("--latency", type=lambda text: parse_int_list(text, "latency"),
                   default=[0, 1, 2, 4, 8, 16, 25],
                   help="plan latencies d in control steps")
    p.add_argument("--execution", default="hold",
                   help=f"comma-separated execution modes ({', '.join(EXECUTIONS)})")
    p.add_argument("--predict-ahead", default="0",
                   help="controller predict_ahead (latency compensation, control steps): a "
                        "number, or 'd' = each point's latency")
    p.add_argument("--mass-scale", type=float, default=1.0,
                   help="the simulated robot's masses x this (its model, for prediction and "
                        "tracking, stays as trained): a robot the model does not match")
    p.add_argument("--friction-scale", type=float, default=1.0,
                   help="the simulated robot's sliding friction x this")
    p.add_argument("--in-flight", type=int, default=1,
                   help="controller plans_in_flight: plans computed at once (one started per "
                        "step)")
    add_rollout_arguments(p)
    return p


def point_key(execution: str, latency: int) -> str:
    return f"{execution}@{latency}"


def predict_steps(option: str, latency: int) -> int:
    """``--predict-ahead`` at a point of latency ``latency``."""
    if option == "d":
        return latency
    try:
        return int(option)
    except ValueError:
        raise SystemExit(f"--predict-ahead must be a number or 'd', got {option!r}") from None


def run(args: argparse.Namespace) -> dict:
    planner, config, model = load_cli_planner(args)
    executions = [e.strip() for e in args.execution.split(",") if e.strip()]
    for e in executions:
        if e not in EXECUTIONS:
            raise SystemExit(f"unknown execution {e!r}; choose from {EXECUTIONS}")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    settings_record = {"model": model, "config": config.to_dict(), "seeds": args.seeds,
                       "predict_ahead": args.predict_ahead, "plans_in_flight": args.in_flight,
                       "mass_scale": args.mass_scale, "friction_scale": args.friction_scale,
                       "max_steps": args.max_steps, "env_id": args.env_id,
                       "device": str(planner.device)}
    results = ResultsFile(out / "tolerance.json", settings_record, sections=("points",))
    tracker = robot_model = None
    if "tracking" in executions:  # one robot model for every tracking point
        from diffuser_ros.control.tracking import ModelInverseDynamics

        tracker = ModelInverseDynamics.for_planner(planner)
    if any(predict_steps(args.predict_ahead, d) for d in args.latency):
        from diffuser_ros.control.robot_model import RobotModel

        robot_model = RobotModel.for_planner(planner)
    for execution in executions:
        for latency in args.latency:
            key = point_key(execution, latency)
            if results.entry("points", key) is not None:
                continue
            settings = ControllerSettings(
                execution=execution, predict_ahead=predict_steps(args.predict_ahead, latency),
                plans_in_flight=args.in_flight)
            policy = controller_policy(planner, latency, settings,
                                       tracker=tracker if execution == "tracking" else None,
                                       robot_model=robot_model)
            start = time.perf_counter()
            episodes = run_episodes(policy, args.seeds, args.env_id, args.max_steps,
                                    progress=not args.no_progress, desc=key,
                                    mass_scale=args.mass_scale,
                                    friction_scale=args.friction_scale)
            summary = summarize(episodes, env_robot(args.env_id))
            summary.update(execution=execution, latency_steps=latency,
                           wall_s=round(time.perf_counter() - start, 1),
                           mean_latency_ms=float(np.mean(policy.latencies_s)) * 1e3)
            results.put("points", key, summary)
            print(f"{key:>18}: return {summary['return_mean']:8.1f} ± "
                  f"{summary['return_se']:6.1f} (score {summary['score_mean']:5.1f}), full "
                  f"length {summary['full_length_fraction']:.0%}", flush=True)
    plot(results.data, out / "tolerance.png")
    return results.data


def plot(results: dict, path: Path) -> Path | None:
    plt = pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    by_execution: dict[str, list] = {}
    for point in results["points"].values():
        by_execution.setdefault(point["execution"], []).append(point)
    for execution, points in sorted(by_execution.items()):
        points.sort(key=lambda p: p["latency_steps"])
        x = np.array([p["latency_steps"] for p in points])
        ax.errorbar(x + 0.5, [p["return_mean"] for p in points],
                    yerr=[p["return_se"] for p in points], marker="o", capsize=3,
                    label=execution)
    ax.set_xscale("log")
    ticks = sorted({p["latency_steps"] for p in results["points"].values()})
    ax.set_xticks([t + 0.5 for t in ticks], [str(t) for t in ticks])
    ax.minorticks_off()  # the log axis' own minor labels would sit between the latencies
    ax.set_xlabel("plan latency d (control steps of 8 ms)")
    ax.set_ylabel("return (mean ± s.e.)")
    robot = results["settings"].get("env_id", "Hopper-v5").split("-")[0]
    ax.set_title(f"{robot}, {len(results['settings']['seeds'])} seeds × "
                 f"{results['settings']['max_steps']} steps")
    ax.legend()
    return save_figure(fig, ax, path)


def main(argv: list[str] | None = None) -> int:
    run(build_parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
