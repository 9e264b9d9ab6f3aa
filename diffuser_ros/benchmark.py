"""Planning-latency benchmark: our planner vs diffusers' ``ValueGuidedRLPipeline``.

In one process, on the same weights and the same replayed Hopper-v5 observations, it times:

* ``reference``: ``diffusers.experimental.ValueGuidedRLPipeline`` at its defaults (64 plans,
  horizon 32, 20 steps, 2 guide steps, scale 0.1), built from our ``unet``/``value_function``;
* ``ours@quality``: our planner at the same settings (the ``quality`` preset = the paper);
* ``ours@realtime`` (and any other preset): the real-time settings we ship.

Warm-up calls are excluded; threads are stated; every variant sees the same observations in the
same order. Prints a table with latency percentiles, decisions/s and the speed-up over the
reference, and writes JSON. Runs on CPU always and on CUDA too when present.

The reference normalises with one scalar mean/std for all dimensions (diffusers issue #10636),
so its plans differ from ours: this benchmark compares speed, not actions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from diffuser_ros.latency import summarize_latencies
from diffuser_ros.planning import (
    PRESETS,
    default_model_path,
    load_planner,
    model_defaults,
    model_env_id,
    preset,
)
from diffuser_ros.robots import DEFAULT_ROBOT, ROBOTS, Robot, robot_for_env
from diffuser_ros.rollout import roll_out


class _StatisticsEnv:
    """What ``ValueGuidedRLPipeline`` reads from its ``env``: spaces and ``get_dataset()``.

    The dataset is sampled from our per-dimension normaliser, so the pipeline's scalar
    statistics are those of the same data distribution our model was trained on.
    """

    def __init__(self, normalizer, n: int = 10_000, seed: int = 0):
        import gymnasium as gym

        rng = np.random.default_rng(seed)
        self._data = {
            "observations": rng.normal(normalizer.observation_mean, normalizer.observation_std,
                                       size=(n, normalizer.observation_dim)),
            "actions": rng.normal(normalizer.action_mean, normalizer.action_std,
                                  size=(n, normalizer.action_dim)),
        }
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (normalizer.observation_dim,))
        self.action_space = gym.spaces.Box(-1.0, 1.0, (normalizer.action_dim,))

    def get_dataset(self):
        return self._data


def reference_pipeline(planner):
    """diffusers' pipeline around our planner's own networks (same weights, same device)."""
    from diffusers import DDPMScheduler
    from diffusers.experimental import ValueGuidedRLPipeline

    scheduler = DDPMScheduler.from_config(planner.schedule.scheduler.config)
    return ValueGuidedRLPipeline(value_function=planner.value_function, unet=planner.unet,
                                 scheduler=scheduler, env=_StatisticsEnv(planner.normalizer))


def replay_observations(n: int, seed: int = 0, robot: Robot = DEFAULT_ROBOT) -> np.ndarray:
    """``robot``'s observations from a short rollout with small random actions (an episode that
    ends after k observations is followed by one seeded ``seed + k``)."""
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    env = robot.make_env()
    try:
        roll_out([env], [seed], lambda obs: rng.uniform(-0.3, 0.3, (len(obs), robot.action_dim)),
                 max_steps=n, next_seed=lambda steps: seed + steps, clip_actions=False,
                 on_step=lambda step: out.append(step.observations[0]))
    finally:
        env.close()
    return np.asarray(out)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(call, observations: np.ndarray, warmup: int, device: torch.device) -> np.ndarray:
    for obs in observations[:warmup]:
        call(obs)
    _sync(device)
    times = []
    for obs in observations[warmup:]:
        start = time.perf_counter()
        call(obs)
        _sync(device)
        times.append(time.perf_counter() - start)
    return np.asarray(times)


def summarize(times: np.ndarray) -> dict:
    """``{calls, mean_ms, p50_ms, p95_ms, p99_ms, max_ms, hz}`` of per-call times in seconds."""
    stats = summarize_latencies(times, percentiles=(50, 95, 99), unit="ms")
    return {"calls": stats.pop("count"), **stats, "hz": float(1000.0 / stats["mean_ms"])}


def run(model: str | Path, devices: list[str], repeats: int, warmup: int,
        presets: list[str], include_reference: bool = True, compile_: bool = False,
        command: float | None = None) -> dict:
    results = {"model": str(model), "torch": torch.__version__, "threads": torch.get_num_threads(),
               "cpu": platform.processor() or platform.machine(), "variants": []}
    # States of the robot the model was trained on.
    robot = robot_for_env(model_env_id(model)) or DEFAULT_ROBOT
    observations = replay_observations(warmup + repeats, robot=robot)
    own = model_defaults(model)  # the presets go on the model's own settings
    for device_name in devices:
        variants = [(name, False, None) for name in presets]
        if compile_:
            variants += [(name, True, None) for name in presets]
        if command is not None:  # the same presets, planning for a speed command
            variants += [(name, False, command) for name in presets]
        for name, compiled, speed in \
                ([("reference", False, None)] if include_reference else []) + variants:
            planner = load_planner(model, config=preset(
                name if name != "reference" else "quality", base=own, device=device_name,
                seed=0, compile=compiled))
            device = planner.device
            if name == "reference":
                pipe = reference_pipeline(planner)
                cfg = PRESETS["quality"]

                def call(obs, pipe=pipe, cfg=cfg, horizon=planner.spec.horizon):
                    # The pipeline prints a tqdm bar per call; keep the table readable.
                    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
                        pipe(obs, batch_size=cfg["n_candidates"], planning_horizon=horizon,
                             n_guide_steps=cfg["n_guide_steps"], scale=cfg["guide_scale"])
            else:
                def call(obs, planner=planner, speed=speed):
                    planner.plan(obs, command=speed)
            stats = summarize(time_calls(call, observations, warmup, device))
            label = ("diffusers ValueGuidedRLPipeline" if name == "reference" else
                     f"ours@{name}" + ("+compile" if compiled else "")
                     + (f"+cmd_vel {speed:g}" if speed is not None else ""))
            results["variants"].append({"variant": label, "device": str(device),
                                        "settings": PRESETS["quality" if name == "reference"
                                                            else name], **stats})
            print(f"  {label:34s} {device!s:6s} p50 {stats['p50_ms']:8.1f} ms  "
                  f"({stats['hz']:.2f} Hz)", flush=True)
    return results


def print_table(results: dict) -> None:
    print(f"\nthreads={results['threads']}  torch={results['torch']}  model={results['model']}")
    header = (f"{'variant':34s} {'device':6s} {'p50 ms':>9s} {'p95 ms':>9s} {'p99 ms':>9s} "
              f"{'max ms':>9s} {'Hz':>8s} {'vs ref':>7s}")
    print(header)
    print("-" * len(header))
    reference = {v["device"]: v for v in results["variants"] if v["variant"].startswith("diff")}
    for v in results["variants"]:
        ref = reference.get(v["device"])
        ratio = f"{ref['mean_ms'] / v['mean_ms']:6.2f}x" if ref else "    n/a"
        print(f"{v['variant']:34s} {v['device']:6s} {v['p50_ms']:9.1f} {v['p95_ms']:9.1f} "
              f"{v['p99_ms']:9.1f} {v['max_ms']:9.1f} {v['hz']:8.2f} {ratio:>7s}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", "--model", dest="model", default=None,
                        help="planner folder (default: the robot's shipped model)")
    parser.add_argument("--robot", choices=sorted(ROBOTS), default=DEFAULT_ROBOT.name,
                        help="whose shipped model to time when --model-path is not given")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per variant")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--torch-threads", "--threads", dest="threads", type=int, default=0,
                        help="torch CPU threads (0: default)")
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--devices", default="auto",
                        help="comma list of cpu/cuda; 'auto' = cpu, plus cuda when present")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--compile", action="store_true",
                        help="also time each preset with torch.compile (warm-up compiles)")
    parser.add_argument("--command", type=float, default=None,
                        help="also time each preset planning for this speed command (m/s)")
    parser.add_argument("--out", type=Path, default=Path("benchmark.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = (["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
               if args.devices == "auto" else args.devices.split(","))
    model = args.model or default_model_path(args.robot)
    results = run(model, devices, args.repeats, args.warmup, args.presets.split(","),
                  include_reference=not args.no_reference, compile_=args.compile,
                  command=args.command)
    print_table(results)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
