"""Offline data and training: D4RL files, windows and value targets, loss, resume, export."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from diffuser_ros.data.d4rl_io import (
    DatasetError,
    episode_bounds,
    episode_returns,
    load_dataset,
    write_dataset,
)
from diffuser_ros.planning import load_planner
from diffuser_ros.training.sequences import SequenceDataset, discounted_returns
from diffuser_ros.training.train import TrainConfig, Trainer, export

TINY = {"channels": (8, 16, 32), "horizon": 8, "batch_size": 4, "grad_accum": 1, "ema_start": 0,
        "ema_every": 1, "device": "cpu"}


# For comparing weights after Adam steps: with 8 channels in 8 GroupNorm groups, the bias of a
# conv before a norm has an exactly-zero gradient, and Adam's first step turns its float noise
# into +-lr; 16 channels (2 a group) leave no parameter without a real gradient.
EXACT = {**TINY, "channels": (16, 32, 64)}


def hopper_like_data(n_episodes=3, length=40, seed=0) -> dict[str, np.ndarray]:
    """Random-action Hopper-v5 episodes from real MuJoCo (short, some falling)."""
    import gymnasium as gym

    env = gym.make("Hopper-v5", max_episode_steps=length)
    rng = np.random.default_rng(seed)
    out = {k: [] for k in ("observations", "actions", "rewards", "terminals", "timeouts",
                           "next_observations")}
    for ep in range(n_episodes):
        obs, _ = env.reset(seed=seed + ep)
        done = False
        while not done:
            action = rng.uniform(-1, 1, 3).astype(np.float32)
            nobs, reward, terminated, truncated, _ = env.step(action)
            for key, value in (("observations", obs), ("actions", action), ("rewards", reward),
                               ("terminals", terminated),
                               ("timeouts", truncated and not terminated),
                               ("next_observations", nobs)):
                out[key].append(value)
            obs, done = nobs, terminated or truncated
    env.close()
    return {k: np.asarray(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def data():
    return hopper_like_data()


def test_dataset_round_trip(tmp_path, data):
    path = write_dataset(tmp_path / "d.hdf5", data, {"env_id": "Hopper-v5", "seeds": [1, 2]})
    loaded, attrs = load_dataset(path)
    for key in data:
        np.testing.assert_allclose(loaded[key], data[key], rtol=1e-6)
    assert attrs["env_id"] == "Hopper-v5"
    np.testing.assert_allclose(episode_returns(loaded), episode_returns(data), rtol=1e-5)


def _write_raw(path, arrays):
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)


@pytest.mark.parametrize("breakage, message", [
    (lambda d: d.pop("rewards"), "missing key"),
    (lambda d: d.__setitem__("actions", d["actions"][:-1]), "same length"),
    (lambda d: d["observations"].__setitem__((5, 2), np.nan), "non-finite"),
])
def test_bad_hdf5_is_a_clear_error(tmp_path, data, breakage, message):
    arrays = {k: v.copy() for k, v in data.items()}
    breakage(arrays)
    _write_raw(tmp_path / "bad.hdf5", arrays)
    with pytest.raises(DatasetError, match=message):
        load_dataset(tmp_path / "bad.hdf5")


def test_missing_or_non_hdf5_file(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "nope.hdf5")
    (tmp_path / "x.hdf5").write_text("not hdf5")
    with pytest.raises(DatasetError, match="HDF5"):
        load_dataset(tmp_path / "x.hdf5")


def test_discounted_returns_by_hand():
    np.testing.assert_allclose(discounted_returns(np.array([1.0, 2.0, 3.0]), 0.5),
                               [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0])


def test_windows_padding_and_value_targets_by_hand():
    """Two episodes: A (3 steps, falls) and B (4 steps, times out); horizon 3, buffer length 5."""
    obs = np.arange(7 * 2, dtype=np.float64).reshape(7, 2)
    act = np.arange(7, dtype=np.float64).reshape(7, 1) * 0.5
    rewards = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 30.0, 40.0])
    data = {"observations": obs, "actions": act, "rewards": rewards,
            "terminals": np.array([0, 0, 1, 0, 0, 0, 0], bool),
            "timeouts": np.array([0, 0, 0, 0, 0, 0, 1], bool)}
    ds = SequenceDataset(data, horizon=3, max_episode_length=5, discount=0.9,
                         termination_penalty=-100.0)
    # The original's rule: starts 0 .. min(length - 1, 5 - 3) - 1, so A: 0, 1 and B: 0, 1.
    assert ds.indices.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    norm = ds.normalizer
    np.testing.assert_allclose(norm.observation_mean, obs.mean(0))  # fitted on real steps only
    # Window (A, start 1): its last two real steps, then padding (raw zeros, normalised).
    window, value = ds.window(1)
    raw = norm.unnormalize_transitions(window.astype(np.float64))
    np.testing.assert_allclose(raw[0], [0.5, 2.0, 3.0], atol=1e-5)
    np.testing.assert_allclose(raw[1], [1.0, 4.0, 5.0], atol=1e-5)
    np.testing.assert_allclose(raw[2], [0.0, 0.0, 0.0], atol=1e-5)
    assert value == pytest.approx(2.0 + 0.9 * (3.0 - 100.0))  # the fall's penalty, last reward
    # Episode A from its start: 1 + 0.9 * 2 + 0.81 * (3 - 100).
    assert ds.window(0)[1] == pytest.approx(1 + 0.9 * 2 + 0.81 * (3 - 100))
    # Episode B times out: no penalty, full return to its end (not truncated to the horizon).
    assert ds.window(2)[1] == pytest.approx(10 + 0.9 * 20 + 0.81 * 30 + 0.729 * 40)
    windows, values = ds.batch(np.array([1, 2]))
    assert windows.shape == (2, 3, 3) and values.shape == (2,)
    assert values[1].item() == pytest.approx(ds.window(2)[1], rel=1e-6)


def original_make_indices(path_lengths, horizon, max_path_length):
    """jannerm/diffuser, diffuser/datasets/sequence.py, ``SequenceDataset.make_indices`` with
    ``use_padding=True`` (the released configs), the ``end`` column dropped."""
    indices = []
    for i, path_length in enumerate(path_lengths):
        max_start = min(path_length - 1, max_path_length - horizon)
        for start in range(max_start):
            indices.append((i, start))
    return indices


@pytest.mark.parametrize("lengths, horizon, max_len", [
    ([1, 2, 5, 12, 19, 20], 8, 20),  # one-step episode, short ones, and ones capped by the buffer
    ([40, 40, 33, 7], 8, 40),
    ([6, 9], 6, 9),
])
def test_window_starts_match_the_original(lengths, horizon, max_len):
    n = sum(lengths)
    ends = np.cumsum(lengths) - 1
    data = {"observations": np.random.default_rng(0).normal(size=(n, 2)),
            "actions": np.random.default_rng(1).normal(size=(n, 1)), "rewards": np.ones(n),
            "terminals": np.zeros(n, bool), "timeouts": np.isin(np.arange(n), ends)}
    ds = SequenceDataset(data, horizon=horizon, max_episode_length=max_len)
    assert ds.indices.tolist() == [list(x) for x in original_make_indices(lengths, horizon,
                                                                          max_len)]
    assert len(ds) == sum(max(0, min(n - 1, max_len - horizon)) for n in lengths)


def test_no_window_at_all_is_a_clear_error():
    data = {"observations": np.zeros((3, 2)), "actions": np.zeros((3, 1)), "rewards": np.ones(3),
            "terminals": np.ones(3, bool), "timeouts": np.zeros(3, bool)}  # 3 one-step episodes
    with pytest.raises(ValueError, match="no training windows"):
        SequenceDataset(data, horizon=2, max_episode_length=5)


@pytest.mark.parametrize("model", ["diffusion", "value"])
def test_one_step_reduces_loss_on_a_fixed_batch(tmp_path, data, model):
    config = TrainConfig(model=model, learning_rate=1e-3, **TINY)
    ds = SequenceDataset(data, config.horizon)
    trainer = Trainer(config, ds, tmp_path)
    batch = trainer.sample_batch()
    with torch.no_grad():
        before = float(trainer.compute_loss(*batch))
    trainer.train_step(batch)
    with torch.no_grad():
        after = float(trainer.compute_loss(*batch))
    assert after < before


def test_first_action_is_weighted_and_first_state_carries_no_loss(tmp_path, data):
    config = TrainConfig(model="diffusion", **TINY)
    trainer = Trainer(config, SequenceDataset(data, config.horizon), tmp_path)
    w = trainer.loss_weights  # [D, H]
    assert torch.all(w[:3, 0] == 10.0) and torch.all(w[3:, 0] == 1.0) and torch.all(w[:, 1:] == 1)
    outputs = []

    def keep_output(module, args, output):
        output.sample.retain_grad()
        outputs.append(output.sample)

    trainer.model.register_forward_hook(keep_output)
    trainer.compute_loss(*trainer.sample_batch()).backward()
    grad = outputs[0].grad  # d loss / d prediction, [B, D, H]
    assert torch.count_nonzero(grad[:, 3:, 0]) == 0  # conditioned first state: no loss
    assert torch.count_nonzero(grad[:, :3, 0]) > 0 and torch.count_nonzero(grad[:, :, 1:]) > 0


@pytest.mark.parametrize("model", ["diffusion", "value"])
def test_resume_gives_the_same_next_loss(tmp_path, data, model):
    config = TrainConfig(model=model, **TINY)
    ds = SequenceDataset(data, config.horizon)
    uninterrupted = Trainer(config, ds, tmp_path / "a")
    for _ in range(3):
        uninterrupted.train_step()
    uninterrupted.save_checkpoint()
    expected = [uninterrupted.train_step() for _ in range(2)]

    resumed = Trainer(config, ds, tmp_path / "a")
    assert resumed.load_checkpoint() and resumed.step == 3
    assert [resumed.train_step() for _ in range(2)] == expected


def test_defaults_step_on_the_originals_64_windows(tmp_path, data):
    config = TrainConfig()
    assert (config.batch_size, config.grad_accum) == (32, 2)  # original: 32 x accumulate 2
    trainer = Trainer(TrainConfig(**{**TINY, "batch_size": 32, "grad_accum": 2}),
                      SequenceDataset(data, 8), tmp_path)
    assert trainer.windows_per_step == 64
    drawn = []
    original_draw = trainer.draw
    trainer.draw = lambda: drawn.append(original_draw()) or drawn[-1]
    trainer.train_step()
    assert [len(idx) for idx, _, _ in drawn] == [32, 32] and trainer.step == 1


def test_grad_accumulation_equals_one_step_on_the_whole_batch(tmp_path, data):
    """Two micro-batches of 4, accumulated, make the same optimiser step as one batch of 8."""
    ds = SequenceDataset(data, 8)
    accumulated = Trainer(TrainConfig(**{**EXACT, "grad_accum": 2}), ds, tmp_path / "a")
    whole = Trainer(TrainConfig(**EXACT), ds, tmp_path / "b")
    b1, b2 = accumulated.sample_batch(), accumulated.sample_batch()
    both = tuple(torch.cat([x, y]) for x, y in zip(b1, b2))
    for _ in range(2):  # the second step also checks that no gradient leaks across steps
        accumulated.train_step([b1, b2])
        whole.train_step(both)
    for p, q in zip(accumulated.model.parameters(), whole.model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="grad_accum=2"):
        accumulated.train_step(b1)


def test_ema_copies_then_averages_with_the_flat_decay_on_the_originals_schedule(tmp_path, data):
    """Original: at its 0-based step s, every ema_every steps, copy the weights while
    s < step_start_ema, then ``ema = 0.995 ema + 0.005 w`` (no warm-up ramp)."""
    config = TrainConfig(**{**TINY, "ema_start": 4, "ema_every": 2, "learning_rate": 1e-2})
    trainer = Trainer(config, SequenceDataset(data, 8), tmp_path)
    for k in (1, 2, 21, 202, 10**6):  # diffusers' ramp gives 0.18 at its 20th update
        assert trainer.ema.get_decay(k) == 0.995
    events = []
    for s in range(9):
        before = [p.clone() for p in trainer.ema.shadow_params]
        trainer.train_step()
        weights = [p.detach() for p in trainer.model.parameters()]
        after = trainer.ema.shadow_params
        if s % 2:
            assert all(torch.equal(a, b) for a, b in zip(after, before)), s
            events.append("none")
        elif s < 4:
            assert all(torch.equal(a, w) for a, w in zip(after, weights)), s
            events.append("copy")
        else:
            for a, b, w in zip(after, before, weights):
                torch.testing.assert_close(a, 0.995 * b + 0.005 * w, rtol=1e-6, atol=1e-7)
            assert trainer.ema.cur_decay_value == 0.995
            assert any(not torch.equal(a, w) for a, w in zip(after, weights))
            events.append("average")
    assert events == ["copy", "none", "copy", "none", "average", "none", "average", "none",
                      "average"]


@pytest.fixture
def fresh_accelerate_state():
    """Accelerate fixes mixed precision once per process: reset it around the test."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()


def test_mixed_precision_is_passed_to_accelerate(tmp_path, data, fresh_accelerate_state):
    with pytest.raises(ValueError, match="mixed_precision"):
        TrainConfig(mixed_precision="fp8")
    trainer = Trainer(TrainConfig(**{**TINY, "mixed_precision": "bf16"}), SequenceDataset(data, 8),
                      tmp_path)
    assert trainer.accelerator.mixed_precision == "bf16"  # autocast on the CPU too
    assert np.isfinite(trainer.train_step())


def test_resume_refuses_another_architecture(tmp_path, data):
    ds = SequenceDataset(data, 8)
    trainer = Trainer(TrainConfig(model="value", **TINY), ds, tmp_path)
    trainer.save_checkpoint()
    other = Trainer(TrainConfig(model="value", **{**TINY, "channels": (8, 16, 32, 64)}), ds,
                    tmp_path)
    with pytest.raises(ValueError, match="trained with"):
        other.load_checkpoint()


def test_resume_refuses_another_value_target(tmp_path, data):
    ds = SequenceDataset(data, 8)
    Trainer(TrainConfig(model="value", discount=0.99, **TINY), ds, tmp_path).save_checkpoint()
    other = Trainer(TrainConfig(model="value", discount=0.997, **TINY), ds, tmp_path)
    with pytest.raises(ValueError, match=r"trained with \{'discount': 0.99,"):
        other.load_checkpoint()
    same = Trainer(TrainConfig(model="value", discount=0.99, **TINY), ds, tmp_path)
    assert same.load_checkpoint()


def test_fit_then_export_gives_a_loadable_planner(tmp_path, data):
    ds = SequenceDataset(data, 8)
    for model in ("diffusion", "value"):
        Trainer(TrainConfig(model=model, steps=3, checkpoint_every=2, log_every=1, **TINY), ds,
                tmp_path / "run").fit()
    assert (tmp_path / "run/diffusion/train.log").read_text().count("loss") == 3
    export(tmp_path / "run", tmp_path / "model", fp16=True)
    planner = load_planner(tmp_path / "model", n_candidates=2)
    plan = planner.plan(data["observations"][0])
    assert plan.action.shape == (3,) and np.isfinite(plan.action).all()


def test_episode_returns_all_or_complete_episodes_only():
    data = {"observations": np.zeros((5, 1)), "rewards": np.array([1.0, 2.0, 3.0, 4.0, 5.0]),
            "terminals": np.array([0, 1, 0, 0, 0], bool),
            "timeouts": np.array([0, 0, 0, 1, 0], bool)}
    np.testing.assert_array_equal(episode_returns(data), [3.0, 7.0, 5.0])  # cut-off one too
    complete = episode_bounds(data, complete_only=True)
    assert complete == [(0, 2), (2, 4)]
    np.testing.assert_array_equal(episode_returns(data, complete), [3.0, 7.0])


@pytest.mark.parametrize("env, warns", [
    ({"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1"}, True),  # --cpu, 2 asked, 1 ran
    ({"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1", "WORLD_SIZE": "2"}, False),
    ({"ACCELERATE_USE_CPU": "False"}, False),  # plain `accelerate launch` of one process
])
def test_a_cpu_launch_that_started_one_process_says_so(monkeypatch, caplog, env, warns):
    from diffuser_ros.training.train import _warn_single_process_cpu_launch

    for key in ("ACCELERATE_USE_CPU", "MASTER_ADDR", "WORLD_SIZE", "OMPI_COMM_WORLD_SIZE",
                "PMI_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with caplog.at_level("WARNING", logger="diffuser_ros.train"):
        _warn_single_process_cpu_launch()
    assert ("--multi_gpu --num_processes N" in caplog.text) == warns


def test_command_value_trains_and_joins_an_existing_planner_folder(tmp_path, data):
    from diffuser_ros.planning import GaussianNormalizer
    from diffuser_ros.training.sequences import CommandValueDataset
    from diffuser_ros.training.train import export_command_value

    ds = SequenceDataset(data, 8)
    for model in ("diffusion", "value"):
        Trainer(TrainConfig(model=model, steps=2, checkpoint_every=2, **TINY), ds,
                tmp_path / "run").fit()
    export(tmp_path / "run", tmp_path / "model")
    config = TrainConfig(model="command_value", steps=2, checkpoint_every=2, learning_rate=1e-3,
                         **TINY)
    cds = CommandValueDataset(data, 8, speed_index=5, command_range=(1.0, 4.0),
                              normalizer=ds.normalizer)
    trainer = Trainer(config, cds, tmp_path / "run")
    windows, values, t, noise, commands = trainer.sample_batch()
    assert ((commands >= 1.0) & (commands <= 4.0)).all()
    batch = (windows, values, t, noise, commands)
    with torch.no_grad():
        before = float(trainer.compute_loss(*batch))
    trainer.train_step(batch)
    with torch.no_grad():
        assert float(trainer.compute_loss(*batch)) < before
    trainer.fit()
    export_command_value(tmp_path / "run", tmp_path / "model")
    planner = load_planner(tmp_path / "model", n_candidates=2, device="cpu")
    assert planner.command_spec.speed_range == (1.0, 4.0) and planner.spec.speed_index == 5
    assert np.isfinite(planner.plan(data["observations"][0], command=2.0).action).all()
    # A command value trained on another normalisation is refused: it would see other inputs.
    other = GaussianNormalizer.fit(data["observations"] * 2.0, data["actions"])
    cds_other = CommandValueDataset(data, 8, speed_index=5, command_range=(1.0, 4.0),
                                    normalizer=other)
    Trainer(config, cds_other, tmp_path / "other").fit()
    with pytest.raises(ValueError, match="another normaliser"):
        export_command_value(tmp_path / "other", tmp_path / "model")
