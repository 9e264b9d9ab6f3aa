"""Closed-loop evaluation on real MuJoCo Hopper-v5 with tiny models (short episodes)."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from helpers import make_tiny_planner

from diffuser_ros.data.d4rl_io import episode_returns, load_dataset, write_dataset
from diffuser_ros.evaluation import (
    HOPPER_EXPERT_RETURN,
    HOPPER_RANDOM_RETURN,
    BCPolicy,
    EpisodeResult,
    controller_policy,
    format_table,
    normalized_score,
    render_episode,
    rendering_available,
    run_episodes,
    summarize,
    train_bc,
)
from diffuser_ros.evaluation import evaluate as evaluate_cli
from diffuser_ros.evaluation.cli import parse_seeds
from diffuser_ros.planning import PlannerConfig

# Few denoising steps keep a tiny planner call around tens of milliseconds on a CPU.
FAST_PLANNER = PlannerConfig(n_candidates=4, n_denoise_steps=3, n_guide_steps=1, seed=0,
                             device="cpu")
FAST_FLAGS = ["--n-candidates", "2", "--n-denoise-steps", "3", "--n-guide-steps", "1",
              "--no-progress", "--torch-threads", "1", "--device", "cpu", "--warm-start-steps", "2"]


def constant(value: float):
    return lambda obs: np.full((len(obs), 3), value)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """~400 Hopper-v5 transitions from a random linear policy (plus noise), D4RL layout."""
    rng = np.random.default_rng(0)
    weights = rng.normal(scale=0.5, size=(11, 3))
    env = gym.make("Hopper-v5")
    keys = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")
    data = {k: [] for k in keys}
    episode = 0
    while len(data["rewards"]) < 400:
        obs, _ = env.reset(seed=10_000 + episode)
        for t in range(60):
            action = np.clip(np.tanh(obs @ weights) + rng.normal(scale=0.05, size=3), -1, 1)
            nobs, reward, term, _, _ = env.step(action)
            for k, v in zip(keys, (obs, action, reward, term, t == 59 and not term, nobs),
                            strict=True):
                data[k].append(v)
            obs = nobs
            if term:
                break
        episode += 1
    env.close()
    path = tmp_path_factory.mktemp("data") / "tiny.hdf5"
    write_dataset(path, {k: np.asarray(v) for k, v in data.items()}, {"source": "test"})
    return path


# -- run_episodes ------------------------------------------------------------------------------
def test_run_episodes_per_seed_results_are_reproducible():
    seeds = [3, 0, 1]
    first = run_episodes(constant(0.0), seeds, max_steps=20, progress=False)
    again = run_episodes(constant(0.0), seeds, max_steps=20, progress=False)
    assert [r.seed for r in first] == seeds
    assert all(r.length == 20 and r.truncated and not r.terminated and r.full_length
               for r in first)
    assert [r.episode_return for r in first] == [r.episode_return for r in again]
    assert len({round(r.episode_return, 9) for r in first}) == 3  # seeds give different starts
    assert all(r.episode_return > 0 for r in first)  # Hopper's healthy reward


def test_fallen_episodes_are_terminated_and_not_stepped_after():
    calls: list[np.ndarray] = []

    def policy(obs):  # row 0 falls within a few steps (full reverse torque), row 1 survives
        calls.append(obs.copy())
        actions = np.zeros((len(obs), 3))
        actions[0] = -1.0
        return actions

    live_log = []
    results = run_episodes(policy, [0, 1], max_steps=30, progress=False,
                           on_step=lambda step, obs, act, rew, live, lat: live_log.append(live))
    fell, stood = results
    assert fell.terminated and not fell.truncated and not fell.full_length
    assert fell.length < 15
    assert stood.length == 30 and stood.truncated and not stood.terminated
    # Every call saw both rows; the fallen env kept its final observation (not stepped).
    assert len(calls) == 30 and all(c.shape == (2, 11) for c in calls)
    np.testing.assert_array_equal(calls[fell.length][0], calls[-1][0])
    assert not live_log[fell.length - 1][0] and live_log[fell.length - 2][0]
    summary = summarize(results)
    assert summary["full_length_fraction"] == 0.5
    assert summary["per_seed_return"]["0"] == fell.episode_return


def test_run_episodes_rejects_wrong_action_shape():
    with pytest.raises(ValueError, match="shape"):
        run_episodes(lambda obs: np.zeros(3), [0, 1], max_steps=2, progress=False)


def test_controller_policy_runs_end_to_end_and_reproduces():
    planner = make_tiny_planner(seed=0, config=FAST_PLANNER)
    policy = controller_policy(planner)
    first = run_episodes(policy, [0, 1], max_steps=8, progress=False)
    assert [r.seed for r in first] == [0, 1]
    assert all(1 <= r.length <= 8 and np.isfinite(r.episode_return) for r in first)
    stats = policy.latency_stats()
    assert stats["n_calls"] == max(r.length for r in first)
    assert 0 < stats["mean_ms"] <= stats["max_ms"] and stats["p95_ms"] <= stats["max_ms"]
    # reset() at the start of a run re-seeds the planner: same seeds -> same returns.
    again = run_episodes(policy, [0, 1], max_steps=8, progress=False)
    assert [r.episode_return for r in again] == [r.episode_return for r in first]


# -- behaviour cloning -------------------------------------------------------------------------
def test_bc_training_reduces_loss_and_round_trips(tiny_dataset, tmp_path):
    data, attrs = load_dataset(tiny_dataset)
    assert attrs["source"] == "test" and len(data["observations"]) >= 400
    policy = train_bc(data, steps=300, batch_size=64, lr=3e-3, seed=0, log_every=50)
    info = policy.info
    assert info["final_mse"] < 0.5 * info["initial_mse"]
    assert info["loss_history"][-1] < info["loss_history"][0]
    batch = policy(data["observations"][:5])
    assert batch.shape == (5, 3) and np.all(np.abs(batch) <= 1.0)
    assert policy(data["observations"][0]).shape == (3,)
    with pytest.raises(ValueError, match="shape"):
        policy(np.zeros((2, 7)))
    loaded = BCPolicy.load(policy.save(tmp_path / "bc.pt"))
    np.testing.assert_allclose(loaded(data["observations"][:5]), batch, rtol=0, atol=1e-6)
    assert loaded.info["final_mse"] == info["final_mse"]
    # Same seed, same data -> the same network.
    twin = train_bc(data, steps=300, batch_size=64, lr=3e-3, seed=0, log_every=50)
    np.testing.assert_allclose(twin(data["observations"][:5]), batch, atol=1e-6)


# -- scores and report -------------------------------------------------------------------------
def test_normalized_score_reference_points():
    assert normalized_score(HOPPER_EXPERT_RETURN) == pytest.approx(100.0)
    assert normalized_score(3234.3) == pytest.approx(100.0)
    assert normalized_score(-20.272305) == pytest.approx(0.0, abs=1e-12)
    assert normalized_score(HOPPER_RANDOM_RETURN) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(normalized_score([-20.272305, 1607.013847]), [0.0, 50.0])


def test_summary_mean_se_and_table():
    eps = [EpisodeResult(0, 1000.0, 1000, False, True), EpisodeResult(1, 2000.0, 1000, False, True),
           EpisodeResult(2, 3000.0, 400, True, False)]
    s = summarize(eps)
    assert s["return_mean"] == pytest.approx(2000.0)
    assert s["return_se"] == pytest.approx(1000.0 / np.sqrt(3))
    assert s["score_mean"] == pytest.approx(normalized_score(2000.0))
    assert s["score_se"] == pytest.approx(normalized_score(s["return_se"]) - normalized_score(0))
    assert s["full_length_fraction"] == pytest.approx(2 / 3)
    assert s["per_seed_return"] == {"0": 1000.0, "1": 2000.0, "2": 3000.0}
    table = format_table({"guided": {"summary": s, "latency": {"mean_ms": 12.0, "p95_ms": 20.0}}})
    assert "guided" in table and "2000.0" in table and "12.0/20.0" in table


def test_seed_and_variant_parsing():
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    assert parse_seeds("5") == [5]
    for bad in ("3-1", "a", "", "-2"):
        with pytest.raises(Exception, match="seed"):
            parse_seeds(bad)
    with pytest.raises(Exception, match="unknown variant"):
        evaluate_cli.parse_variants("guided,bogus")


def test_cli_requires_inputs_for_baselines(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        evaluate_cli.main(["--out", str(tmp_path), "--variants", "bc"])
    assert exc.value.code == 2 and "--dataset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate_cli.main(["--out", str(tmp_path), "--variants", "guided",
                           "--n-candidates", "0"])
    assert "n_candidates" in capsys.readouterr().err
    missing = tmp_path / "no_such_model"
    assert evaluate_cli.main(["--out", str(tmp_path), "--variants", "guided", "--model",
                              str(missing), "--no-progress"]) == 1
    assert "no_such_model" in capsys.readouterr().err


def test_cli_plans_with_the_models_own_settings_then_the_preset_then_the_flags(tmp_path):
    """A model folder's planner.json defaults are the base (Walker2d's healthy-first ranking is
    not lost to a preset that does not name it); ``--preset`` and single settings go on top."""
    from diffuser_ros.evaluation.cli import planner_config
    from diffuser_ros.planning import PRESETS, default_model_path, preset, save_planner

    tiny = make_tiny_planner(seed=0)
    own = tiny.config.replace(n_candidates=3, warm_start=False, prefer_healthy=True,
                              healthy_std=2.0)
    folder = tmp_path / "model"
    save_planner(folder, tiny.unet, tiny.value_function, tiny.schedule.scheduler,
                 tiny.normalizer, tiny.spec, own)

    def config(model, *flags):
        args = evaluate_cli.build_parser().parse_args(["--out", str(tmp_path), *flags])
        return planner_config(args, model)

    assert config(folder) == own.replace(seed=0)  # reproducible: seed 0 unless given
    fast = config(folder, "--preset", "fast")
    assert (fast.n_candidates, fast.backend) == (PRESETS["fast"]["n_candidates"], "openvino")
    assert fast.prefer_healthy and fast.healthy_std == 2.0
    given = config(folder, "--preset", "fast", "--prefer-healthy", "false", "--seed", "4")
    assert not given.prefer_healthy and given.seed == 4 and given.n_candidates == fast.n_candidates
    # The shipped models: Hopper's own settings are the realtime preset; Walker2d's are those its
    # card reports (healthy first, no warm start).
    assert config(default_model_path("hopper")) == preset("realtime", seed=0)
    walker = config(default_model_path("walker2d"))
    assert walker.prefer_healthy and walker.healthy_std == 3.0 and not walker.warm_start


# -- CLI end to end ----------------------------------------------------------------------------
def test_cli_end_to_end_and_resume(tiny_model_dir, tiny_dataset, tmp_path, capsys, monkeypatch):
    out = tmp_path / "eval"
    argv = ["--model", str(tiny_model_dir), "--seeds", "0-1", "--variants", "guided,unguided,bc",
            "--dataset", str(tiny_dataset), "--max-steps", "10", "--bc-steps", "50",
            "--out", str(out), *FAST_FLAGS]
    assert evaluate_cli.main(argv) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert set(results["variants"]) == {"guided", "unguided", "bc"}
    for name, entry in results["variants"].items():
        assert set(entry) >= {"settings", "summary", "latency", "episodes"}
        assert [e["seed"] for e in entry["episodes"]] == [0, 1]
        assert all(1 <= e["length"] <= 10 for e in entry["episodes"])
        assert set(entry["summary"]) >= {"return_mean", "return_se", "score_mean", "score_se",
                                         "full_length_fraction", "per_seed_return"}
        assert entry["latency"]["n_calls"] >= 1 and entry["latency"]["batch_size"] == 2
        assert name in printed
    guided = results["variants"]["guided"]["settings"]["planner"]
    unguided = results["variants"]["unguided"]["settings"]["planner"]
    assert (guided["n_candidates"], guided["n_guide_steps"]) == (2, 1)
    assert (unguided["n_candidates"], unguided["n_guide_steps"]) == (1, 0)
    assert unguided["n_denoise_steps"] == guided["n_denoise_steps"] == 3
    dataset_returns = episode_returns(load_dataset(tiny_dataset)[0])
    assert results["dataset"]["return_mean"] == pytest.approx(dataset_returns.mean())
    assert (out / "returns.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "bc_policy.pt").is_file()

    # A second run with the same settings skips every variant (nothing is rolled out).
    def no_rollouts(*args, **kwargs):
        raise AssertionError("finished variant was re-run")

    monkeypatch.setattr(evaluate_cli, "run_episodes", no_rollouts)
    assert evaluate_cli.main(argv) == 0
    assert capsys.readouterr().out.count("skipped") == 3
    assert json.loads((out / "results.json").read_text())["variants"] == results["variants"]

    # A variant interrupted mid-way resumes at its first unfinished chunk of seeds, with the
    # BC network from the cache instead of retrained.
    calls = []

    def interrupted_rollouts(policy, seeds, **kwargs):
        calls.append(list(seeds))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return [EpisodeResult(s, 1.0 + s, 10, False, True) for s in seeds]

    monkeypatch.setattr(evaluate_cli, "run_episodes", interrupted_rollouts)
    argv_bc = [a if a != "guided,unguided,bc" else "bc" for a in argv] + ["--chunk-size", "1"]
    with pytest.raises(KeyboardInterrupt):
        evaluate_cli.main(argv_bc)
    partial = json.loads((out / "results.json").read_text())["partial"]["bc"]
    assert [e["seed"] for e in partial["episodes"]] == [0]
    assert evaluate_cli.main(argv_bc) == 0
    assert calls == [[0], [1], [1]] and "using cached" in capsys.readouterr().out
    rerun = json.loads((out / "results.json").read_text())
    assert "partial" not in rerun
    assert rerun["variants"]["bc"]["summary"]["return_mean"] == 1.5
    assert rerun["variants"]["bc"]["settings"]["chunk_size"] == 1
    assert rerun["variants"]["guided"] == results["variants"]["guided"]
    # --force re-runs a finished variant.
    assert evaluate_cli.main([*argv_bc, "--force"]) == 0
    assert calls[3:] == [[0], [1]]


def test_sb3_behaviour_policy_adapter(tmp_path):
    sb3 = pytest.importorskip("stable_baselines3")
    from diffuser_ros.evaluation import sb3_policy

    env = gym.make("Hopper-v5")
    model = sb3.SAC("MlpPolicy", env, policy_kwargs={"net_arch": [8]}, seed=0, device="cpu")
    model.save(tmp_path / "sac.zip")
    env.close()
    policy = sb3_policy(tmp_path / "sac.zip", deterministic=True)
    first = run_episodes(policy, [0, 1], max_steps=5, progress=False)
    again = run_episodes(policy, [0, 1], max_steps=5, progress=False)
    assert [r.episode_return for r in first] == [r.episode_return for r in again]
    assert policy.latency_stats()["n_calls"] == 10
    with pytest.raises(FileNotFoundError):
        sb3_policy(tmp_path / "missing.zip")


def _robot_pixels(frame: np.ndarray) -> int:
    """Pixels of the hopper's orange-brown geoms (red well above blue) in an RGB frame."""
    f = np.asarray(frame, dtype=int)
    return int(((f[..., 0] - f[..., 2] > 60) & (f[..., 0] > 100)).sum())


@pytest.mark.parametrize("factory", ["evaluation", "sim_node"])
def test_rendered_camera_follows_the_hopper(factory):
    """Videos (evaluate --render-gif, hopper_sim_node record_video) must keep the robot in view:
    with gymnasium's default free camera it leaves the frame after about a metre."""
    ok, reason = rendering_available()
    if not ok:
        pytest.skip(f"off-screen rendering unavailable: {reason}")
    if factory == "evaluation":
        from diffuser_ros.rendering import make_render_env

        env = make_render_env("Hopper-v5", 160, 120)
    else:
        from diffuser_ros.simulation import make_env

        env = make_env("Hopper-v5", 10, render_size=(160, 120))
    try:
        env.reset(seed=0)
        sim = env.unwrapped
        assert _robot_pixels(env.render()) > 20
        qpos = sim.data.qpos.copy()
        qpos[0] = 5.0  # rootx: 5 m down the track
        sim.set_state(qpos, sim.data.qvel.copy())
        assert _robot_pixels(env.render()) > 20
    finally:
        env.close()


def test_render_episode_writes_gif(tmp_path):
    ok, reason = rendering_available()
    if not ok:
        pytest.skip(f"off-screen rendering unavailable: {reason}")
    import imageio.v3 as iio

    path = tmp_path / "episode.gif"
    result = render_episode(constant(0.0), seed=0, path=path, max_steps=12)
    frames = iio.imread(path)
    assert result.length == 12 and frames.shape[1:3] == (240, 320) and len(frames) >= 3


def test_tolerance_curve_runs_end_to_end_on_a_tiny_model(tiny_model_dir, tmp_path):
    from diffuser_ros.evaluation import tolerance

    out = tmp_path / "curve"
    argv = ["--model-path", str(tiny_model_dir), "--seeds", "0-1", "--latency", "0,3",
            "--execution", "hold,time_indexed,tracking", "--max-steps", "6", "--out", str(out),
            "--no-progress", "--preset", "", "--n-candidates", "2", "--n-denoise-steps", "2",
            "--device", "cpu"]
    assert tolerance.main(argv) == 0
    results = json.loads((out / "tolerance.json").read_text())
    assert set(results["points"]) == {f"{e}@{d}" for e in ("hold", "time_indexed", "tracking")
                                      for d in (0, 3)}
    for point in results["points"].values():
        assert point["n_episodes"] == 2 and 1 <= point["length_mean"] <= 6
    assert results["settings"]["config"]["n_candidates"] == 2
    # A second run resumes: nothing is re-run, the file is unchanged.
    before = (out / "tolerance.json").read_text()
    assert tolerance.main(argv) == 0
    assert (out / "tolerance.json").read_text() == before


def test_latency_model_delivers_plans_d_steps_late(tiny_planner):
    from diffuser_ros.control import ControllerSettings
    from diffuser_ros.evaluation.closed_loop import ControllerPolicy

    obs = np.zeros((1, 11))
    policy = ControllerPolicy(tiny_planner, latency_steps=3,
                              settings=ControllerSettings(state_timeout=10.0))
    applied = [policy(obs + k) for k in range(8)]
    # The robot waits for the episode's first plan (as the simulator bridge holds it) ...
    assert applied[0].any()
    # ... then holds its action while the next one, started at step 2, is computed for 3 steps
    assert all(np.array_equal(a, applied[0]) for a in applied[1:4])
    assert not np.array_equal(applied[4], applied[0])
    assert policy.controller.status().plans == 3  # delivered at 1, 5 and 8; a fourth in flight
    delay = policy.controller.status().delay
    assert delay["max"] == pytest.approx(3 * 0.008)
    assert delay["mean"] == pytest.approx(2 * 0.008)  # (0 + 3 + 3) / 3 periods


def test_one_episodes_refused_state_does_not_stall_the_others(tiny_planner):
    """The controller refuses a batch as a whole; the evaluator plans a refused row from its
    previous state, so the episodes beside it go on, and it counts the refusal once per
    state (an ended episode's final state stays in the batch, unchanged)."""
    from diffuser_ros.evaluation.closed_loop import ControllerPolicy

    policy = ControllerPolicy(tiny_planner)
    states = np.zeros((2, 11))
    first = policy(states)
    states = states + 0.1
    states[1, 2] = 1e30  # episode 1: an absurd thigh angle
    second = policy(states)
    assert not np.array_equal(second[0], first[0])  # episode 0 was planned on its new state
    policy(states)  # the same refused state again: not a new refusal
    assert policy.refused_states == 1
    assert "thigh_joint position" in policy.last_refusal
    assert policy.controller.status().rejected_states == 0  # nothing reached the controller
