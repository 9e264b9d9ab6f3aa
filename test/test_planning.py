"""Planning core: shapes, conditioning, reproducibility, guidance, warm start, batching.

Models are real diffusers ``UNet1DModel``s in tiny configurations (random weights), except
where a test needs a value function with a known gradient: there a linear value is used.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from helpers import HOPPER_ACT, HOPPER_OBS, TINY_HORIZON, make_tiny_planner, tiny_normalizer

from diffuser_ros.planning import GaussianNormalizer, PlannerConfig, preset, set_cpu_threads
from diffuser_ros.planning.schedule import timestep_sequence
from diffuser_ros.robots import WALKER2D
from diffuser_ros.settings import settings_of

DIM = HOPPER_OBS + HOPPER_ACT


class _Out:
    def __init__(self, sample):
        self.sample = sample


class LinearValue(torch.nn.Module):
    """v(x) = sum over the horizon of channel ``channel``: gradient 1 there, 0 elsewhere.

    Records every input it sees so tests can check what the sampler did between calls.
    """

    def __init__(self, channel: int):
        super().__init__()
        self.channel = channel
        self.config = type("Cfg", (), {"in_channels": DIM})()
        self.inputs: list[torch.Tensor] = []

    def forward(self, x, t):
        self.inputs.append(x.detach().clone())
        return _Out(x[:, self.channel, :].sum(dim=1, keepdim=True))


class RecordingUNet:
    """Records the inputs of a planner's real U-Net (to count and inspect denoising calls)
    through a forward pre-hook: the planner keeps running its own network."""

    def __init__(self, unet: torch.nn.Module):
        self.inputs: list[torch.Tensor] = []
        unet.register_forward_pre_hook(lambda module, args: self.inputs.append(
            args[0].detach().clone()))


def test_plan_shapes_and_first_state_is_the_observation(tiny_planner, hopper_observation):
    plan = tiny_planner.plan(hopper_observation)
    n = tiny_planner.config.n_candidates
    assert plan.action.shape == (HOPPER_ACT,)
    assert plan.actions.shape == (n, TINY_HORIZON, HOPPER_ACT)
    assert plan.observations.shape == (n, TINY_HORIZON, HOPPER_OBS)
    assert plan.values.shape == (n,)
    assert 0 <= plan.best < n
    np.testing.assert_array_equal(plan.observations[:, 0], np.broadcast_to(hopper_observation,
                                                                           (n, HOPPER_OBS)))
    assert plan.best_value == plan.values.max()
    np.testing.assert_array_equal(plan.best_actions, plan.actions[plan.best])


def test_action_is_first_best_action_clipped_to_bounds(tiny_planner, hopper_observation):
    plan = tiny_planner.plan(hopper_observation)
    raw = plan.actions[plan.best, 0]
    np.testing.assert_allclose(plan.action, np.clip(raw, -1.0, 1.0))
    assert np.all(np.abs(plan.action) <= 1.0)


def test_batched_observations(tiny_planner):
    obs = np.random.default_rng(3).normal(size=(3, HOPPER_OBS))
    plan = tiny_planner.plan(obs)
    n = tiny_planner.config.n_candidates
    assert plan.action.shape == (3, HOPPER_ACT)
    assert plan.observations.shape == (3, n, TINY_HORIZON, HOPPER_OBS)
    for b in range(3):
        np.testing.assert_array_equal(plan.observations[b, :, 0],
                                      np.broadcast_to(obs[b], (n, HOPPER_OBS)))


def test_batched_plan_equals_planning_each_observation_alone(tiny_planner):
    obs = np.random.default_rng(4).normal(size=(2, HOPPER_OBS))
    n = tiny_planner.config.n_candidates
    noise = torch.randn(21, 2, n, TINY_HORIZON, DIM, generator=torch.Generator().manual_seed(5))
    batched = tiny_planner.plan(obs, noise=noise)
    # oneDNN picks convolution kernels by batch size, and float32 round-off differs between them
    # (~1e-3 after 20 guided steps on some CPUs); rows mixed across the batch would differ O(1).
    for b in range(2):
        alone = tiny_planner.plan(obs[b], noise=noise[:, b])
        np.testing.assert_allclose(batched.actions[b], alone.actions, atol=1e-2)
        np.testing.assert_allclose(batched.values[b], alone.values, atol=1e-2)


def test_extra_constraint_is_met_exactly(tiny_planner, hopper_observation):
    goal_dims, goal = [0, 4], np.array([1.25, -0.5])
    plan = tiny_planner.plan(hopper_observation, constraints={TINY_HORIZON - 1: (goal_dims, goal)})
    np.testing.assert_array_equal(plan.observations[:, -1, goal_dims],
                                  np.broadcast_to(goal, (plan.values.shape[0], 2)))


@pytest.mark.parametrize("bad", [
    {3.5: ([0], [1.0])}, {TINY_HORIZON: ([0], [1.0])}, {2: ([HOPPER_OBS], [1.0])},
    {2: ([0, 0], [1.0, 1.0])}, {2: ([0], [np.nan])}, {2: ([0, 1], [1.0])},
])
def test_invalid_constraints_are_rejected(tiny_planner, hopper_observation, bad):
    with pytest.raises(ValueError, match="constraint"):
        tiny_planner.plan(hopper_observation, constraints=bad)


def test_same_seed_same_plan_different_seed_different_plan(hopper_observation):
    a = make_tiny_planner(seed=0).plan(hopper_observation)
    b = make_tiny_planner(seed=0).plan(hopper_observation)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.values, b.values)
    planner = make_tiny_planner(seed=0)
    c = planner.plan(hopper_observation, generator=torch.Generator().manual_seed(1))
    assert not np.allclose(a.actions, c.actions)
    # reset() re-seeds the planner's own generator: an episode replays identically.
    planner.reset()
    np.testing.assert_array_equal(planner.plan(hopper_observation).actions, a.actions)


def test_random_seed_gives_different_plans(hopper_observation):
    planner = make_tiny_planner(config=PlannerConfig(n_candidates=4, seed=-1, device="cpu"))
    assert not np.allclose(planner.plan(hopper_observation).actions,
                           planner.plan(hopper_observation).actions)


def _linear_planner(channel: int, **cfg):
    value = LinearValue(channel)
    planner = make_tiny_planner(value_function=value,
                                config=PlannerConfig(n_candidates=16, seed=0, device="cpu", **cfg))
    return planner, value


def test_guidance_raises_value_and_moves_along_gradient(hopper_observation):
    channel = HOPPER_ACT + 2  # observation dimension 2
    noise = torch.randn(21, 16, TINY_HORIZON, DIM, generator=torch.Generator().manual_seed(7))
    guided_planner, _ = _linear_planner(channel, guide_scale=5.0, n_guide_steps=2)
    unguided_planner, _ = _linear_planner(channel, n_guide_steps=0)
    guided = guided_planner.plan(hopper_observation, noise=noise)
    unguided = unguided_planner.plan(hopper_observation, noise=noise)
    assert guided.values.mean() > unguided.values.mean()
    assert (guided.values > unguided.values).mean() >= 0.75  # candidate by candidate, same noise
    # Observation dim 2 after the fixed first state moves up; it is what the value rewards.
    lift = guided.observations[:, 1:, 2] - unguided.observations[:, 1:, 2]
    assert lift.mean() > 0.0


def test_guidance_switches_off_exactly(hopper_observation):
    channel = HOPPER_ACT + 2
    noise = torch.randn(21, 16, TINY_HORIZON, DIM, generator=torch.Generator().manual_seed(8))
    reference = _linear_planner(channel, n_guide_steps=0)[0].plan(hopper_observation, noise=noise)
    for cfg in ({"t_stopgrad": 20}, {"guide_scale": 0.0}, {"n_guide_steps": 0}):
        plan = _linear_planner(channel, **cfg)[0].plan(hopper_observation, noise=noise)
        np.testing.assert_array_equal(plan.actions, reference.actions)
        np.testing.assert_array_equal(plan.values, reference.values)


def test_gradient_step_equals_scale_times_posterior_variance(hopper_observation):
    """Between the first guide call and the denoiser of each step, x moves by
    n_guide_steps * scale * posterior_variance(t) on the rewarded channel, nothing elsewhere."""
    channel, scale, n_guide, t_stopgrad = 1, 0.3, 2, 2  # an action channel: free at h = 0 too
    planner, value = _linear_planner(channel, guide_scale=scale, n_guide_steps=n_guide,
                                     t_stopgrad=t_stopgrad)
    unet = RecordingUNet(planner.unet)
    planner.plan(hopper_observation)
    # Independent reference for the fixed-small posterior variance: diffusers' own DDPM.
    ddpm = DDPMScheduler(num_train_timesteps=20, beta_schedule="squaredcos_cap_v2",
                         variance_type="fixed_small", prediction_type="sample")
    guided_steps = [t for t in range(19, -1, -1) if t >= t_stopgrad]
    for k, t in enumerate(range(19, -1, -1)):
        if t not in guided_steps:
            continue
        before, after = value.inputs[n_guide * k], unet.inputs[k]
        delta = after - before
        expected = n_guide * scale * float(ddpm._get_variance(t))
        torch.testing.assert_close(delta[:, channel], torch.full_like(delta[:, channel], expected),
                                   rtol=1e-4, atol=1e-7)
        others = [c for c in range(DIM) if c != channel]
        assert torch.count_nonzero(delta[:, others]) == 0
    # Steps below t_stopgrad do no gradient work: one value call only (for ranking, at t = 0).
    assert len(value.inputs) == n_guide * len(guided_steps) + 1


def test_unscaled_gradient_when_scale_grad_by_std_is_off(hopper_observation):
    planner, value = _linear_planner(1, guide_scale=0.3, n_guide_steps=1, scale_grad_by_std=False)
    unet = RecordingUNet(planner.unet)
    planner.plan(hopper_observation)
    delta = unet.inputs[0] - value.inputs[0]
    torch.testing.assert_close(delta[:, 1], torch.full_like(delta[:, 1], 0.3))


def test_ranking_value_is_from_the_final_steps_input(tiny_planner, hopper_observation):
    """As the original: plans are ranked by the value of the last denoising step's input."""
    unet = RecordingUNet(tiny_planner.unet)
    plan = tiny_planner.plan(hopper_observation)
    with torch.no_grad():
        t0 = torch.zeros(unet.inputs[-1].shape[0], dtype=torch.long)
        expected = tiny_planner.value_function(unet.inputs[-1], t0).sample.squeeze(-1)
    np.testing.assert_allclose(plan.values, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert plan.best == int(np.argmax(plan.values))


def _walker_planner_with_wide_falls(prefer_healthy: bool):
    """A tiny Walker2d-shaped planner whose data spread in torso height and pitch is wide, so
    its random plans leave the healthy range after varying numbers of steps."""
    base = tiny_normalizer(WALKER2D.observation_dim, WALKER2D.action_dim)
    mean, std = base.observation_mean.copy(), base.observation_std.copy()
    mean[:2], std[:2] = (1.25, 0.0), (1.0, 2.0)  # rootz, rooty
    normalizer = GaussianNormalizer(mean, std, base.action_mean, base.action_std)
    config = PlannerConfig(n_candidates=16, seed=0, device="cpu", prefer_healthy=prefer_healthy)
    return make_tiny_planner(config=config, robot=WALKER2D, normalizer=normalizer)


def test_prefer_healthy_ranks_by_healthy_steps_then_value():
    """The same samples, ranked two ways: by value alone, or first by how many planned states
    stay in the robot's healthy range (Walker2d's torso height and pitch) and then by value."""
    by_value = _walker_planner_with_wide_falls(False)
    healthy_first = _walker_planner_with_wide_falls(True)
    states = np.repeat(by_value.normalizer.observation_mean[None], 6, axis=0)
    plain, ranked = by_value.plan(states), healthy_first.plan(states)
    np.testing.assert_array_equal(plain.observations, ranked.observations)
    assert plain.healthy_steps is None
    np.testing.assert_array_equal(plain.best, plain.values.argmax(axis=1))
    healthy = WALKER2D.healthy_steps(ranked.observations)
    np.testing.assert_array_equal(ranked.healthy_steps, healthy)
    rows = np.arange(len(states))
    for row in rows:
        longest = np.flatnonzero(healthy[row] == healthy[row].max())
        assert ranked.best[row] == longest[np.argmax(ranked.values[row, longest])]
    assert (ranked.best != plain.best).any()  # the rule changed some choices
    assert (healthy[rows, ranked.best] >= healthy[rows, plain.best]).all()
    np.testing.assert_allclose(ranked.action, np.clip(ranked.actions[rows, ranked.best, 0], -1, 1))
    # The plan kept for a warm start is the one chosen.
    kept = ranked.trajectory.transpose(1, 2).numpy().astype(np.float64)  # [B, H, D]
    kept = healthy_first.normalizer.unnormalize_transitions(kept)[:, 1:, WALKER2D.action_dim:]
    np.testing.assert_allclose(kept, ranked.best_observations[:, 1:], rtol=1e-5, atol=1e-5)
    assert healthy_first.plan(states[0]).healthy_steps.shape == (16,)


def test_healthy_std_narrows_the_range_to_the_data():
    """healthy_std narrows each healthy bound to the data mean ± k std, never widens it."""
    planner = _walker_planner_with_wide_falls(True)  # data: height 1.25 ± 1, pitch 0 ± 2
    assert planner.healthy_bounds() == ((0, 0.8, 2.0), (1, -1.0, 1.0))
    planner.configure(planner.config.replace(healthy_std=0.25))
    np.testing.assert_allclose(planner.healthy_bounds(), [(0, 1.0, 1.5), (1, -0.5, 0.5)])
    states = np.repeat(planner.normalizer.observation_mean[None], 6, axis=0)
    plan = planner.plan(states)
    narrow = WALKER2D.healthy_steps(plan.observations, planner.healthy_bounds())
    np.testing.assert_array_equal(plan.healthy_steps, narrow)
    assert (narrow <= WALKER2D.healthy_steps(plan.observations)).all()
    assert (narrow < WALKER2D.healthy_steps(plan.observations)).any()
    rows = np.arange(len(states))
    assert (narrow[rows, plan.best] == narrow.max(axis=1)).all()
    with pytest.raises(ValueError, match="healthy_std"):
        planner.config.replace(healthy_std=-1.0)


def test_warm_start_reuses_previous_plan_with_fewer_steps(hopper_observation):
    planner = make_tiny_planner(config=PlannerConfig(n_candidates=4, seed=0, device="cpu",
                                                     warm_start=True, warm_start_steps=3))
    unet = RecordingUNet(planner.unet)
    first = planner.plan(hopper_observation)
    assert not first.warm_started and len(unet.inputs) == 20
    second = planner.plan(hopper_observation)
    assert second.warm_started and len(unet.inputs) == 23
    planner.reset()
    assert not planner.plan(hopper_observation).warm_started


def test_warm_start_starts_from_the_shifted_previous_plan(hopper_observation):
    """With the re-noising noise set to zero, the first denoiser input is the previous best plan
    shifted by one step, scaled by sqrt(alpha_bar), conditions re-imposed."""
    planner = make_tiny_planner(config=PlannerConfig(n_candidates=4, seed=0, device="cpu",
                                                     warm_start=True, warm_start_steps=3))
    previous = planner.plan(hopper_observation).trajectory.clone()
    unet = RecordingUNet(planner.unet)
    planner.configure(planner.config.replace(n_guide_steps=0))
    noise = torch.zeros(4, 4, TINY_HORIZON, DIM)
    planner.plan(hopper_observation, noise=noise)
    t = timestep_sequence(20, 20)[-3]
    scale = float(torch.sqrt(planner.schedule.alphas_cumprod[t]))
    shifted = torch.cat([previous[:, :, 1:], previous[:, :, -1:]], dim=2)[0] * scale
    first_input = unet.inputs[0]
    torch.testing.assert_close(first_input[:, :, 1:], shifted[None, :, 1:].expand(4, -1, -1))


def test_ddim_few_steps_is_deterministic_given_initial_noise(hopper_observation):
    cfg = PlannerConfig(n_candidates=4, seed=0, device="cpu", sampler="ddim", n_denoise_steps=5)
    planner = make_tiny_planner(config=cfg)
    unet = RecordingUNet(planner.unet)
    noise = torch.randn(6, 4, TINY_HORIZON, DIM, generator=torch.Generator().manual_seed(2))
    a = planner.plan(hopper_observation, noise=noise)
    assert len(unet.inputs) == 5
    other = noise.clone()
    other[1:] = torch.randn(5, 4, TINY_HORIZON, DIM)  # eta = 0: step noise is unused
    b = planner.plan(hopper_observation, noise=other)
    np.testing.assert_array_equal(a.actions, b.actions)


def test_timestep_sequences():
    assert timestep_sequence(20, 20) == list(range(19, -1, -1))
    seq = timestep_sequence(20, 5)
    assert seq[0] == 19 and seq[-1] == 0 and len(seq) == 5 and seq == sorted(seq, reverse=True)
    with pytest.raises(ValueError):
        timestep_sequence(20, 21)


@pytest.mark.parametrize("bad_obs, match", [
    (np.full(HOPPER_OBS, np.nan), "non-finite"),
    (np.r_[np.zeros(HOPPER_OBS - 1), np.inf], "non-finite"),
    (np.zeros(HOPPER_OBS + 1), "shape"),
    (np.zeros((2, 3, HOPPER_OBS)), "shape"),
    (["a"] * HOPPER_OBS, "numeric"),
])
def test_bad_observations_are_rejected(tiny_planner, bad_obs, match):
    with pytest.raises(ValueError, match=match):
        tiny_planner.plan(bad_obs)


def test_wrong_noise_shape_is_rejected(tiny_planner, hopper_observation):
    with pytest.raises(ValueError, match="noise"):
        tiny_planner.plan(hopper_observation, noise=torch.zeros(5, 4, TINY_HORIZON, DIM))


@pytest.mark.parametrize("changes", [
    {"n_candidates": 0}, {"n_denoise_steps": 0}, {"n_guide_steps": -1}, {"guide_scale": -0.1},
    {"guide_scale": float("nan")}, {"sampler": "euler"}, {"ddim_eta": 1.5}, {"seed": -2},
    {"device": "tpu"}, {"warm_start": True, "warm_start_steps": 30}, {"n_candidates": 2.5},
    {"nonexistent": 1},
])
def test_invalid_config_raises(changes):
    with pytest.raises(ValueError):
        PlannerConfig().replace(**changes)


def test_config_checked_against_model(tiny_planner):
    with pytest.raises(ValueError, match="n_denoise_steps"):
        tiny_planner.configure(PlannerConfig(n_denoise_steps=25, warm_start=False))
    assert tiny_planner.config.n_denoise_steps == 20  # unchanged after the rejection


def test_presets_are_valid_and_documented():
    assert preset("quality") == PlannerConfig()
    fast = preset("realtime")
    assert fast.n_candidates < 64 and fast.warm_start
    with pytest.raises(ValueError, match="preset"):
        preset("turbo")
    for info in settings_of(PlannerConfig):  # every setting says what it is and its limits
        assert len(info.doc) > 20, info.name
        if info.kind in (int, float):
            assert info.range is not None and info.range[0] <= info.default <= info.range[1], \
                info.name


def test_compile_failure_falls_back_to_eager(hopper_observation, monkeypatch, caplog):
    """A compiler that cannot build the networks must not stop planning."""
    def broken_compile(module, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("no C++ compiler here")
        return run

    eager = make_tiny_planner(seed=0).plan(hopper_observation)
    monkeypatch.setattr(torch, "compile", broken_compile)
    planner = make_tiny_planner(config=PlannerConfig(n_candidates=4, seed=0, device="cpu",
                                                     compile=True))
    with caplog.at_level("WARNING"):
        plan = planner.plan(hopper_observation)
    assert "torch.compile failed" in caplog.text
    np.testing.assert_array_equal(plan.actions, eager.actions)


def test_device_change_rebuilds_the_compiled_networks(hopper_observation, monkeypatch):
    """Compiled networks are specialised to their device (CUDA graphs on CUDA): moving the
    planner must compile them again there. A CPU-only machine has no second device name, so
    'cuda:1' is mapped to cpu:0, a torch.device distinct from plain cpu."""
    from diffuser_ros.planning import planner as planner_module

    compiled = []

    def counting_compile(module, **kwargs):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", counting_compile)
    monkeypatch.setattr(planner_module, "resolve_device", lambda name: torch.device(
        "cpu", 0) if name == "cuda:1" else torch.device("cpu"))
    config = PlannerConfig(n_candidates=4, seed=0, device="cpu", compile=True)
    planner = make_tiny_planner(config=config)
    planner.plan(hopper_observation)
    planner.plan(hopper_observation)
    networks = [planner.unet, planner.value_function]
    assert len(compiled) == 2 and all(a is b for a, b in zip(compiled, networks))  # then reused
    planner.configure(config.replace(device="cuda:1"))
    assert planner.device == torch.device("cpu", 0)
    planner.plan(hopper_observation)
    assert len(compiled) == 4 and all(a is b for a, b in zip(compiled[2:], networks))
    planner.configure(config.replace(n_candidates=2))  # back on plain cpu: rebuilt again
    planner.plan(hopper_observation)
    assert len(compiled) == 6
    planner.configure(config.replace(n_candidates=3))  # same device, still compiled: reused
    planner.plan(hopper_observation)
    assert len(compiled) == 6


def test_cpu_threads_auto_leaves_a_core_and_explicit_counts_apply(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr("os.cpu_count", lambda: 4)
        torch.set_num_threads(4)
        assert set_cpu_threads(0) == 3 and torch.get_num_threads() == 3
        monkeypatch.setattr("os.cpu_count", lambda: 1)
        assert set_cpu_threads(0) == 1
        assert set_cpu_threads(2) == 2 and torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="torch_threads must be >= 0"):
            set_cpu_threads(-1)
    finally:
        torch.set_num_threads(before)
