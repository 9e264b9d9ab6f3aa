"""The guided loop as one graph (planning/compiled.py): it plans what PyTorch plans."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import TINY_HORIZON, make_tiny_planner

from diffuser_ros.planning import PlannerConfig

pytest.importorskip("openvino", reason="the 'fast' extra (openvino, onnx, onnxscript)")
pytest.importorskip("onnxscript", reason="the 'fast' extra (openvino, onnx, onnxscript)")


def config(backend: str) -> PlannerConfig:
    return PlannerConfig(n_candidates=4, n_denoise_steps=6, warm_start=True, warm_start_steps=3,
                         n_guide_steps=1, t_stopgrad=1, seed=0, device="cpu", backend=backend)


def test_openvino_plans_what_torch_plans_and_the_export_is_cached(tmp_path, monkeypatch,
                                                                   hopper_observation):
    monkeypatch.setenv("DIFFUSER_ROS_CACHE", str(tmp_path))
    goal = {5: ([0, 1], np.array([1.2, 0.0]))}
    torch_planner = make_tiny_planner(seed=0, config=config("torch"))
    fast = make_tiny_planner(seed=0, config=config("openvino"))
    start = torch_planner.plan(hopper_observation, goal)  # a cold plan: PyTorch for both
    noise = torch.randn(4, 4, TINY_HORIZON, 14, generator=torch.Generator().manual_seed(1))
    for _ in range(2):  # the same warm-started plan from the same plan and noise
        expected = torch_planner.plan(hopper_observation, goal, noise=noise, warm_start=start)
        got = fast.plan(hopper_observation, goal, noise=noise, warm_start=start)
        assert got.warm_started and expected.warm_started
        np.testing.assert_allclose(got.actions, expected.actions, atol=2e-4)  # float32 order
        np.testing.assert_allclose(got.values, expected.values, rtol=1e-4, atol=1e-4)
        assert got.best == expected.best
    exported = sorted((tmp_path / "loops").glob("*.onnx"))
    assert len(exported) == 1
    stamp = exported[0].stat().st_mtime_ns
    again = make_tiny_planner(seed=0, config=config("openvino"))
    again.plan(hopper_observation, goal)
    again.plan(hopper_observation, goal)  # same shape, same weights: loaded, not exported again
    assert sorted((tmp_path / "loops").glob("*.onnx")) == exported
    assert exported[0].stat().st_mtime_ns == stamp


def test_speed_commands_and_unknown_backends_fall_back_or_are_refused(tmp_path, monkeypatch,
                                                                      hopper_observation):
    monkeypatch.setenv("DIFFUSER_ROS_CACHE", str(tmp_path))
    planner = make_tiny_planner(seed=0, with_command=True, config=config("openvino"))
    planner.plan(hopper_observation, command=2.0)
    planner.plan(hopper_observation, command=2.0)  # warm, but a command: PyTorch plans it
    assert not (tmp_path / "loops").exists()
    with pytest.raises(ValueError, match="backend"):
        PlannerConfig(backend="tensorrt")
