"""Checkpoint folders: round trip, the published Hopper layout, and clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from diffusers import UNet1DModel
from helpers import HOPPER_ACT, HOPPER_OBS, tiny_normalizer

from diffuser_ros.planning import (
    CheckpointError,
    GaussianNormalizer,
    PlannerConfig,
    PlannerSpec,
    load_planner,
    make_scheduler,
    save_planner,
)

# config.json of the published Hopper checkpoint's unet/ and value_function/ folders (the layout
# diffusers' scripts/convert_models_diffuser_to_diffusers.py builds), written out literally.
PUBLISHED_UNET = {
    "_class_name": "UNet1DModel", "act_fn": "mish", "block_out_channels": [32, 64, 128, 256],
    "down_block_types": ["DownResnetBlock1D"] * 4, "downsample_each_block": False,
    "extra_in_channels": 0, "flip_sin_to_cos": False, "freq_shift": 1, "in_channels": 14,
    "layers_per_block": 1, "mid_block_type": "MidResTemporalBlock1D", "norm_num_groups": 8,
    "out_block_type": "OutConv1DBlock", "out_channels": 14, "sample_size": 65536,
    "time_embedding_type": "positional", "up_block_types": ["UpResnetBlock1D"] * 3,
    "use_timestep_embedding": True,
}
PUBLISHED_VALUE = {
    **PUBLISHED_UNET, "up_block_types": [], "mid_block_type": "ValueFunctionMidBlock1D",
    "out_block_type": "ValueFunction", "downsample_each_block": True,
}


def test_normalizer_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    obs, act = rng.normal(2.0, 3.0, size=(500, 11)), rng.normal(-1.0, 0.2, size=(500, 3))
    norm = GaussianNormalizer.fit(obs, act)
    np.testing.assert_allclose(norm.normalize_observations(obs).mean(0), 0.0, atol=1e-9)
    np.testing.assert_allclose(norm.normalize_observations(obs).std(0), 1.0, atol=1e-9)
    np.testing.assert_allclose(norm.unnormalize_observations(norm.normalize_observations(obs)),
                               obs, atol=1e-12)
    np.testing.assert_allclose(norm.unnormalize_actions(norm.normalize_actions(act)), act,
                               atol=1e-12)
    traj = torch.as_tensor(np.concatenate([act, obs], axis=1))
    torch.testing.assert_close(norm.unnormalize_transitions(norm.normalize_transitions(traj)),
                               traj)
    norm.save(tmp_path / "n.json")
    loaded = GaussianNormalizer.load(tmp_path / "n.json")
    np.testing.assert_array_equal(loaded.observation_std, norm.observation_std)
    # Per dimension, not one scalar for all (diffusers issue #10636).
    assert len(set(np.round(norm.observation_std, 6))) == 11


def test_normalizer_guards_constant_dimensions():
    obs = np.ones((10, 11))
    norm = GaussianNormalizer.fit(obs, np.zeros((10, 3)))
    assert np.isfinite(norm.normalize_observations(obs)).all()


def test_save_load_gives_bit_identical_plans(tiny_planner, tmp_path, hopper_observation):
    save_planner(tmp_path / "m", tiny_planner.unet, tiny_planner.value_function,
                 tiny_planner.schedule.scheduler, tiny_planner.normalizer, tiny_planner.spec,
                 tiny_planner.config)
    loaded = load_planner(tmp_path / "m")
    assert loaded.config == tiny_planner.config
    assert loaded.spec == tiny_planner.spec
    tiny_planner.reset()
    a = tiny_planner.plan(hopper_observation)
    b = loaded.plan(hopper_observation)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.values, b.values)
    assert (tmp_path / "m/unet/diffusion_pytorch_model.safetensors").is_file()


def test_overrides_at_load(tiny_model_dir):
    planner = load_planner(tiny_model_dir, n_candidates=2, guide_scale=0.05)
    assert planner.config.n_candidates == 2 and planner.config.guide_scale == 0.05
    with pytest.raises(ValueError, match="n_candidates"):
        load_planner(tiny_model_dir, n_candidates=0)


def test_fp16_weights_on_disk_load_as_float32(tiny_planner, tmp_path, hopper_observation):
    save_planner(tmp_path / "half", tiny_planner.unet, tiny_planner.value_function,
                 tiny_planner.schedule.scheduler, tiny_planner.normalizer, tiny_planner.spec,
                 tiny_planner.config, dtype=torch.float16)
    assert next(tiny_planner.unet.parameters()).dtype == torch.float32  # caller's model intact
    loaded = load_planner(tmp_path / "half")
    assert next(loaded.unet.parameters()).dtype == torch.float32
    assert loaded.plan(hopper_observation).action.shape == (HOPPER_ACT,)


def test_published_hopper_layout_loads(tmp_path, hopper_observation):
    """A folder with the published checkpoint's configs (and our normaliser/spec) loads."""
    torch.manual_seed(0)
    for name, cfg in (("unet", PUBLISHED_UNET), ("value_function", PUBLISHED_VALUE)):
        UNet1DModel.from_config(cfg).save_pretrained(tmp_path / name)
    make_scheduler().save_pretrained(tmp_path / "scheduler")
    spec = PlannerSpec(HOPPER_OBS, HOPPER_ACT, 32, (-1.0,) * 3, (1.0,) * 3, "Hopper-v5")
    planner = load_planner(tmp_path, config=PlannerConfig(n_candidates=2, n_denoise_steps=2,
                                                          device="cpu", seed=0),
                           normalizer=tiny_normalizer(), spec=spec)
    assert sum(p.numel() for p in planner.unet.parameters()) == 3_956_302
    assert sum(p.numel() for p in planner.value_function.parameters()) == 2_294_817
    scheduler_cfg = json.loads((tmp_path / "scheduler/scheduler_config.json").read_text())
    assert scheduler_cfg["num_train_timesteps"] == 20
    assert scheduler_cfg["prediction_type"] == "sample"
    assert scheduler_cfg["beta_schedule"] == "squaredcos_cap_v2"
    plan = planner.plan(hopper_observation)
    assert plan.observations.shape == (2, 32, HOPPER_OBS)


@pytest.mark.parametrize("missing", [
    "unet/config.json", "value_function/diffusion_pytorch_model.safetensors",
    "scheduler/scheduler_config.json", "normalizer.json", "planner.json",
])
def test_missing_file_is_named(tiny_model_dir, tmp_path, missing):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    (folder / missing).unlink()
    with pytest.raises(CheckpointError, match=missing.split("/")[-1]):
        load_planner(folder)


@pytest.mark.parametrize("corrupt", [
    "unet/diffusion_pytorch_model.safetensors", "unet/config.json", "normalizer.json",
    "planner.json",
])
def test_corrupt_file_is_named(tiny_model_dir, tmp_path, corrupt):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    (folder / corrupt).write_bytes(b"\x00garbage{")
    with pytest.raises(CheckpointError, match=corrupt.split("/")[0]):
        load_planner(folder)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_planner(tmp_path / "nowhere")


def test_normalizer_spec_mismatch_is_rejected(tiny_model_dir, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    meta = json.loads((folder / "planner.json").read_text())
    meta["observation_dim"] = 17
    (folder / "planner.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="normaliser dims"):
        load_planner(folder)


def test_shipped_model_loads_with_the_shipped_defaults_and_plans_a_valid_action():
    """The model the demo and the launch file use by default: in the package, small, trained
    for Hopper-v5, documented, with the `realtime` preset as its defaults."""
    from diffuser_ros.planning import default_model_path, preset
    from diffuser_ros.planning.checkpoint import read_metadata

    path = default_model_path()
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    assert size <= 25 * 2**20, f"shipped model is {size / 2**20:.1f} MB (limit 25 MB)"
    assert (path / "MODEL_CARD.md").is_file()
    _, spec, meta = read_metadata(path)
    assert (spec.env_id, spec.observation_dim, spec.action_dim) == ("Hopper-v5", 11, 3)
    assert meta["training"]["diffusion_steps"] > 0 and meta["training"]["value_steps"] > 0
    planner = load_planner(path, device="cpu")
    assert planner.config == preset("realtime", seed=planner.config.seed, device="cpu")
    import gymnasium as gym

    env = gym.make("Hopper-v5")
    obs, _ = env.reset(seed=0)
    env.close()
    action = planner.plan(obs, generator=torch.Generator().manual_seed(0)).action
    assert action.shape == (3,) and np.all(np.isfinite(action))
    assert np.all(np.abs(action) <= 1.0)
