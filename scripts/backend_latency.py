#!/usr/bin/env python3
"""Warm-started planning latency of each backend at several candidate counts (one thread).

    .venv/bin/python scripts/backend_latency.py --candidates 4,8,16 --calls 250

``planner.plan`` on replayed Hopper observations, shipped model, ``realtime`` preset with
``n_candidates`` and ``backend`` replaced; the first (cold) plan and the first warm-started one
(which builds the backend's graph, exported once per shape and cached) are not timed. Prints
p50 / p99 in ms. Run it on an idle machine: it is a timing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from diffuser_ros.benchmark import replay_observations
from diffuser_ros.planning import default_model_path, load_planner, preset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--candidates", default="4,8,16")
    p.add_argument("--backends", default="torch,onnxruntime,openvino")
    p.add_argument("--calls", type=int, default=250)
    args = p.parse_args()
    torch.set_num_threads(1)
    observations = replay_observations(args.calls + 10)
    for n in (int(c) for c in args.candidates.split(",")):
        for backend in args.backends.split(","):
            planner = load_planner(str(default_model_path()), config=preset(
                "realtime", seed=0, n_candidates=n, device="cpu", backend=backend))
            for obs in observations[:10]:  # cold, then warm (builds the graph), then warm-up
                planner.plan(obs)
            times = []
            for obs in observations[10:]:
                start = time.perf_counter()
                planner.plan(obs)
                times.append(time.perf_counter() - start)
            ms = np.asarray(times) * 1e3
            print(f"{backend:12s} {n:3d} candidates: p50 {np.percentile(ms, 50):6.1f} ms, "
                  f"p99 {np.percentile(ms, 99):6.1f} ms", flush=True)


if __name__ == "__main__":
    main()
