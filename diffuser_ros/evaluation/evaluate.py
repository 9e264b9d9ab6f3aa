"""Closed-loop evaluation of the Diffuser planner and its baselines on a robot's MuJoCo
environment (the model's own, or ``--robot``: Hopper-v5, Walker2d-v5).

Variants (one episode per seed each, all seeds' envs stepped side by side):

* ``guided``    the planner at the chosen preset / overrides (value-guided, ranked candidates);
* ``unguided``  the same diffusion model with ``n_guide_steps=0`` and ``n_candidates=1``
                (pure sampling, no value ranking), every other setting as ``guided``;
* ``bc``        a behaviour-cloning MLP trained on ``--dataset`` (cached in ``--out``);
* ``behaviour`` the stable-baselines3 SAC behaviour policy (deterministic actions).

Writes ``OUT/results.json`` (after every finished variant, and after every finished chunk of
``--chunk-size`` seeds: an interrupted run resumes, and a variant already there with the same
settings and seeds is skipped unless ``--force``) and ``OUT/returns.png``, and prints a table.
Example::

    diffuser-ros-evaluate --model-path diffuser_ros/models/hopper --seeds 0-19 \\
        --variants guided,unguided,bc,behaviour --dataset data/hopper-medium.hdf5 \\
        --behaviour-policy runs/sac/policies/best.zip --preset quality --out eval/quality

Seeds: evaluation seeds default to 0..19. The datasets are generated from seeds 10000 and up
(``diffuser-ros-behaviour record --seed``) and SAC's training-time evaluation uses 1000..1004,
so evaluation episodes never start from a dataset episode's initial state.

Cost: with the full-size model, the ``quality`` preset (64 candidates, 20 steps, 2 guide steps)
takes minutes per batched call for 20 envs on a 2-core CPU (~150 s measured with one thread), i.e.
days for 20 × 1000 steps; run it on a GPU (``--device cuda``), or use ``--preset realtime``
and/or fewer seeds on a CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from diffuser_ros.evaluation.cli import (
    add_env_argument,
    add_planner_arguments,
    fingerprint,
    parse_seeds,
    planner_config,
    resolve_robot,
)
from diffuser_ros.evaluation.closed_loop import (
    bc_policy,
    controller_policy,
    latency_stats,
    render_episode,
    run_episodes,
    sb3_policy,
)
from diffuser_ros.evaluation.report import format_table, plot_returns, summarize, summarize_returns
from diffuser_ros.evaluation.resume import ResultsFile
from diffuser_ros.rendering import RenderingUnavailableError
from diffuser_ros.robots import DEFAULT_ROBOT, Robot, env_robot
from diffuser_ros.rollout import EpisodeResult

VARIANTS = ("guided", "unguided", "bc", "behaviour")
PLANNER_VARIANTS = ("guided", "unguided")
RESULTS_FILE = "results.json"
PLOT_FILE = "returns.png"
BC_FILE = "bc_policy.pt"


def parse_variants(text: str) -> list[str]:
    names = [v for v in str(text).replace(" ", "").split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown variant(s) {unknown}; choose from {VARIANTS}")
    return list(dict.fromkeys(names))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="diffuser-ros-evaluate", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-path", "--model", dest="model", type=str, default=None,
                   help="planner folder (default: the model shipped in the package)")
    p.add_argument("--seeds", type=parse_seeds, default=list(range(20)),
                   help="evaluation seeds, e.g. '0-19' (default) or '0,3,7-9'")
    p.add_argument("--variants", type=parse_variants, default=list(VARIANTS),
                   help=f"comma-separated subset of {','.join(VARIANTS)} (default: all)")
    p.add_argument("--dataset", type=Path, default=None,
                   help="D4RL-layout HDF5: trains the BC baseline and gives the dataset's mean "
                        "return (needed for 'bc')")
    p.add_argument("--behaviour-policy", type=Path, default=None,
                   help="stable-baselines3 SAC .zip (needed for 'behaviour')")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    add_env_argument(p)
    p.add_argument("--max-steps", type=int, default=1000)
    p.add_argument("--chunk-size", type=int, default=None,
                   help="episodes run side by side (default: all seeds at once); each finished "
                        "chunk is saved, so a long variant resumes mid-way")
    p.add_argument("--force", action="store_true",
                   help="re-run variants already in results.json with the same settings")
    p.add_argument("--torch-threads", "--threads", dest="threads", type=int, default=None,
                   help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_planner_arguments(p, "planner settings (guided; unguided derives from them): the "
                          "model's own (its planner.json defaults), the preset's on top, then "
                          "any given here")
    p.add_argument("--planner-seed", dest="seed", type=int, help=argparse.SUPPRESS)  # old name
    b = p.add_argument_group("behaviour cloning")
    b.add_argument("--bc-steps", type=int, default=50_000)
    b.add_argument("--bc-batch-size", type=int, default=256)
    b.add_argument("--bc-lr", type=float, default=1e-3)
    b.add_argument("--bc-seed", type=int, default=0)
    r = p.add_argument_group("rendering")
    r.add_argument("--render-gif", type=Path, default=None,
                   help="also render one episode (first seed) to this .gif/.mp4")
    r.add_argument("--render-variant", choices=VARIANTS, default=None,
                   help="variant to render (default: the first one evaluated)")
    return p


def unguided_config(config):
    return config.replace(n_guide_steps=0, n_candidates=1)


def dataset_summary(path: Path, robot: Robot = DEFAULT_ROBOT) -> dict:
    """Mean ± s.e. return (and normalised score on ``robot``) of the dataset's complete
    episodes."""
    from diffuser_ros.data.d4rl_io import episode_bounds, episode_returns, load_dataset

    data, _ = load_dataset(path)
    complete = episode_bounds(data, complete_only=True) or episode_bounds(data)
    return {"path": str(path), "n_transitions": len(data["rewards"]),
            **summarize_returns(episode_returns(data, complete).tolist(), robot),
            "full_length_fraction": float(np.mean([
                (e - s) >= 1000 and not data["terminals"][e - 1] for s, e in complete]))}


class Evaluation:
    """State of one CLI run: arguments, lazily built policies and the results file."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out: Path = args.out
        self.results_path = self.out / RESULTS_FILE
        self._planner = None
        self._planner_config = None
        self._bc = None
        self._fingerprints: dict[str, str] = {}

    # -- settings used to decide whether a stored variant is still valid --------------------
    def model_path(self) -> str:
        return self.args.model  # resolve_robot filled it in

    def guided_config(self):
        """The guided variant's settings (the model's own with the flags on top), read once."""
        if self._planner_config is None:
            self._planner_config = planner_config(self.args, self.model_path())
        return self._planner_config

    def _fp(self, path) -> str:
        key = str(path)
        if key not in self._fingerprints:
            self._fingerprints[key] = fingerprint(path)
        return self._fingerprints[key]

    def settings(self, variant: str) -> dict:
        a = self.args
        # Planner noise is drawn for the whole batch, so per-seed results depend on which
        # seeds run side by side: the chunk size is part of the settings.
        common = {"variant": variant, "env_id": a.env_id, "seeds": list(a.seeds),
                  "max_steps": a.max_steps, "chunk_size": self.chunk_size()}
        if variant in PLANNER_VARIANTS:
            config = self.guided_config()
            if variant == "unguided":
                config = unguided_config(config)
            model = self.model_path()
            return {**common, "model": str(Path(model).resolve()) if Path(model).exists()
                    else model, "model_sha": self._fp(model), "planner": config.to_dict()}
        if variant == "bc":
            return {**common, "dataset": str(a.dataset.resolve()),
                    "dataset_sha": self._fp(a.dataset), "bc_steps": a.bc_steps,
                    "bc_batch_size": a.bc_batch_size, "bc_lr": a.bc_lr, "bc_seed": a.bc_seed}
        return {**common, "policy": str(a.behaviour_policy.resolve()),
                "policy_sha": self._fp(a.behaviour_policy), "deterministic": True}

    # -- policies -------------------------------------------------------------------------
    def planner(self):
        if self._planner is None:
            from diffuser_ros.planning import load_planner

            self._planner = load_planner(self.model_path(), config=self.guided_config())
            env_id = self._planner.spec.env_id
            if env_id and env_id != self.args.env_id:
                print(f"warning: the model was trained on {env_id}, evaluating on "
                      f"{self.args.env_id}", file=sys.stderr)
        return self._planner

    def bc(self):
        """The BC policy, loaded from ``OUT/bc_policy.pt`` when trained with the same settings
        on the same dataset, else trained now and saved there."""
        from diffuser_ros.data.d4rl_io import load_dataset
        from diffuser_ros.evaluation.bc import BCPolicy, train_bc

        a = self.args
        wanted = {"dataset_sha": self._fp(a.dataset), "steps": a.bc_steps,
                  "batch_size": a.bc_batch_size, "lr": a.bc_lr, "seed": a.bc_seed}
        path = self.out / BC_FILE
        if path.is_file():
            try:
                cached = BCPolicy.load(path)
                if all(cached.info.get(k) == v for k, v in wanted.items()):
                    print(f"bc: using cached {path}")
                    return cached
            except ValueError as exc:
                print(f"bc: ignoring unreadable cache ({exc})", file=sys.stderr)
        data, _ = load_dataset(a.dataset)
        low, high = self._action_bounds()
        print(f"bc: training {a.bc_steps} steps on {len(data['observations'])} transitions")
        policy = train_bc(data, steps=a.bc_steps, batch_size=a.bc_batch_size, lr=a.bc_lr,
                          seed=a.bc_seed, device="cpu", action_low=low, action_high=high,
                          progress=not a.no_progress)
        policy.info["dataset_sha"] = wanted["dataset_sha"]
        policy.save(path)
        print(f"bc: MSE {policy.info['initial_mse']:.4f} -> {policy.info['final_mse']:.4f}, "
              f"saved {path}")
        return policy

    def _action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        env = env_robot(self.args.env_id).make_env()
        try:
            return np.asarray(env.action_space.low), np.asarray(env.action_space.high)
        finally:
            env.close()

    def policy(self, variant: str):
        if variant in PLANNER_VARIANTS:
            planner = self.planner()
            config = self.guided_config()
            planner.configure(unguided_config(config) if variant == "unguided" else config)
            return controller_policy(planner)
        if variant == "bc":
            if self._bc is None:
                self._bc = self.bc()
            return bc_policy(self._bc)
        return sb3_policy(self.args.behaviour_policy, deterministic=True)

    # -- run ------------------------------------------------------------------------------
    def run(self) -> dict:
        a = self.args
        self.out.mkdir(parents=True, exist_ok=True)
        results = ResultsFile(self.results_path, sections=("variants",))
        results.data["env_id"] = a.env_id
        results.data["seed_note"] = (
            "evaluation seeds are small integers (default 0..19); datasets are generated from "
            "seeds >= 10000, SAC evaluation uses 1000..1004")
        if a.dataset is not None:
            results.data["dataset"] = dataset_summary(a.dataset, env_robot(a.env_id))
        for variant in a.variants:
            settings = json.loads(json.dumps(self.settings(variant)))
            if results.entry("variants", variant, settings) is not None and not a.force:
                print(f"{variant}: already in {self.results_path} with these settings, skipped "
                      "(--force re-runs it)")
                continue
            policy = self.policy(variant)
            episodes, latencies, wall, refused = self._run_chunks(variant, settings, policy,
                                                                  results)
            entry = {
                "settings": settings,
                "summary": summarize(episodes, env_robot(a.env_id)),
                "latency": {**latency_stats(latencies), "batch_size": self.chunk_size()},
                "episodes": [e.to_dict() for e in episodes],
                "wall_seconds": wall,
                "refused_states": refused,
                "torch_threads": _torch_threads(),
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            if variant in PLANNER_VARIANTS:
                entry["device"] = str(self._planner.device)
            if variant == "bc":
                entry["bc_training"] = {k: v for k, v in self._bc.info.items()
                                        if k != "loss_history"}
            results.drop("partial", variant)
            results.put("variants", variant, entry)  # saved per variant
            s = entry["summary"]
            print(f"{variant}: return {s['return_mean']:.1f} ± {s['return_se']:.1f}, score "
                  f"{s['score_mean']:.1f}, full-length {s['full_length_fraction']:.2f}")
        results.save()
        self.report(results.data)
        if a.render_gif is not None:
            self.render(results)
        return results.data

    def chunk_size(self) -> int:
        return min(self.args.chunk_size or len(self.args.seeds), len(self.args.seeds))

    def _run_chunks(self, variant: str, settings: dict, policy, results: ResultsFile):
        """Roll out the seeds ``chunk_size`` at a time (all at once by default), saving each
        finished chunk in the results' ``partial`` section so an interrupted variant resumes at
        the first unfinished chunk."""
        a = self.args
        partial = results.entry("partial", variant, settings)
        if partial is None or a.force:
            partial = {"settings": settings, "episodes": [], "latencies_s": [],
                       "wall_seconds": 0.0}
        done = {e["seed"] for e in partial["episodes"]}
        if done:
            print(f"{variant}: resuming, {len(done)} of {len(a.seeds)} episodes already done")
        size = self.chunk_size()
        chunks = [a.seeds[i:i + size] for i in range(0, len(a.seeds), size)]
        for chunk in chunks:
            if set(chunk) <= done:
                continue
            print(f"{variant}: seeds {chunk[0]}..{chunk[-1]} ({len(chunk)} episodes side by "
                  f"side, max {a.max_steps} steps) on {a.env_id}")
            policy.latencies_s.clear()
            policy.refused_states = 0
            start = time.perf_counter()
            episodes = run_episodes(policy, chunk, env_id=a.env_id, max_steps=a.max_steps,
                                    progress=not a.no_progress, desc=variant)
            partial["episodes"] += [e.to_dict() for e in episodes]
            partial["latencies_s"] += list(policy.latencies_s)
            partial["refused_states"] = partial.get("refused_states", 0) + policy.refused_states
            if policy.refused_states:
                print(f"{variant}: the planner refused {policy.refused_states} states of live "
                      f"episodes (each planned from its previous state instead); the last: "
                      f"{policy.last_refusal}")
            partial["wall_seconds"] += time.perf_counter() - start
            if len(chunks) > 1:
                results.put("partial", variant, partial)
        by_seed = {e["seed"]: EpisodeResult.from_dict(e) for e in partial["episodes"]}
        return ([by_seed[s] for s in a.seeds], partial["latencies_s"], partial["wall_seconds"],
                partial.get("refused_states", 0))

    def report(self, results: dict) -> None:
        variants = {name: results["variants"][name] for name in VARIANTS
                    if name in results["variants"]}
        dataset = results.get("dataset")
        print()
        print(format_table(variants, dataset))
        returns = {name: [e["return"] for e in v["episodes"]] for name, v in variants.items()}
        plot_returns(returns, self.out / PLOT_FILE,
                     dataset_mean=dataset["return_mean"] if dataset else None,
                     title=f"{self.args.env_id}: per-seed returns",
                     robot=env_robot(self.args.env_id))
        print(f"\nwrote {self.results_path} and {self.out / PLOT_FILE}")

    def render(self, results: ResultsFile) -> None:
        a = self.args
        variant = a.render_variant or a.variants[0]
        try:
            episode: EpisodeResult = render_episode(
                self.policy(variant), a.seeds[0], a.render_gif, env_id=a.env_id,
                max_steps=a.max_steps)
        except RenderingUnavailableError as exc:
            print(f"rendering skipped: {exc}", file=sys.stderr)
            results.data["render"] = {"error": str(exc)}
        else:
            print(f"rendered {variant} seed {a.seeds[0]} (return {episode.episode_return:.1f}, "
                  f"{episode.length} steps) to {a.render_gif}")
            results.data["render"] = {"path": str(a.render_gif), "variant": variant,
                                      **episode.to_dict()}
        results.save()


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if "bc" in args.variants and args.dataset is None:
        parser.error("variant 'bc' needs --dataset")
    if "behaviour" in args.variants and args.behaviour_policy is None:
        parser.error("variant 'behaviour' needs --behaviour-policy")
    if args.max_steps < 1:
        parser.error("--max-steps must be >= 1")
    if args.chunk_size is not None and args.chunk_size < 1:
        parser.error("--chunk-size must be >= 1")
    for flag, path in (("--dataset", args.dataset), ("--behaviour-policy", args.behaviour_policy)):
        if path is not None and not path.is_file():
            parser.error(f"{flag}: file not found: {path}")
    if args.render_variant and args.render_variant not in args.variants:
        parser.error("--render-variant must be one of the evaluated --variants")
    try:
        resolve_robot(args, "model")
    except ValueError as exc:
        parser.error(str(exc))
    from diffuser_ros.data.d4rl_io import DatasetError
    from diffuser_ros.planning import CheckpointError

    if set(PLANNER_VARIANTS) & set(args.variants):
        try:
            planner_config(args, args.model)
        except CheckpointError as exc:
            print(f"diffuser-ros-evaluate: error: {exc}", file=sys.stderr)
            return 1
        except ValueError as exc:
            parser.error(f"invalid planner settings: {exc}")
    if args.threads is not None:
        import torch

        torch.set_num_threads(max(1, args.threads))
    try:
        Evaluation(args).run()
    except (CheckpointError, DatasetError, FileNotFoundError) as exc:
        print(f"diffuser-ros-evaluate: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
