"""Behaviour policy for the offline datasets: stable-baselines3 SAC on a robot's environment.

``train`` runs SAC with periodic deterministic evaluation, keeps every evaluated policy
(``policies/step_<N>.zip``) plus the best one, and checkpoints model + replay buffer so an
interrupted run resumes where it stopped. ``record`` rolls a chosen policy out (stochastic
actions) into a D4RL-layout HDF5 file; ``pick`` names the first evaluated policy that reaches a
return (e.g. a third of expert, for a "medium" dataset); ``replay`` turns the saved replay
buffer into the "medium-replay" dataset.

stable-baselines3 is a data-generation dependency only (``pip install .[data]``); nothing at
planning time imports this module.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
from pathlib import Path

import numpy as np

from diffuser_ros.data.d4rl_io import episode_returns, write_dataset
from diffuser_ros.robots import DEFAULT_ROBOT, ROBOTS, Robot
from diffuser_ros.rollout import Step, roll_out

LOG = logging.getLogger("diffuser_ros.behaviour")


def _env_version(robot: Robot) -> str:
    """``"v5"`` for ``Hopper-v5``: the datasets' env_version attribute."""
    return robot.env_id.rsplit("-", 1)[-1]


def _policy_robot(model, robot: Robot | None) -> Robot:
    """The robot an SB3 policy was trained on (its observation size tells), unless given."""
    if robot is not None:
        return robot
    dim = model.observation_space.shape[0]
    matches = [r for r in ROBOTS.values() if r.observation_dim == dim]
    if len(matches) != 1:
        raise ValueError(f"cannot tell the robot of a policy with {dim} observations; "
                         "pass --robot")
    return matches[0]


def _sb3():
    try:
        import stable_baselines3 as sb3
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise SystemExit(
            "stable-baselines3 is needed to train the behaviour policy: pip install '.[data]'"
        ) from exc
    return sb3


def _history_file(run_dir: Path) -> Path:
    """Where a :func:`train` run keeps its evaluations."""
    return Path(run_dir) / "eval_history.json"


def _read_history(run_dir: Path) -> list[dict] | None:
    """A :func:`train` run's evaluations (``steps``, ``mean_return``, ``returns``), or None."""
    path = _history_file(run_dir)
    return json.loads(path.read_text()) if path.is_file() else None


def _policy_file(run_dir: Path, steps: int) -> Path:
    """The policy a :func:`train` run saved when it evaluated at ``steps``."""
    return Path(run_dir) / "policies" / f"step_{steps}.zip"


def _latest_checkpoint(ckpt_dir: Path) -> tuple[Path, Path] | None:
    models = sorted(ckpt_dir.glob("sac_*_steps.zip"), key=lambda p: int(p.stem.split("_")[1]))
    for model in reversed(models):
        steps = model.stem.split("_")[1]
        buffer = ckpt_dir / f"sac_replay_buffer_{steps}_steps.pkl"
        if buffer.exists():
            return model, buffer
    return None


def _sb3_actions(model, deterministic: bool):
    """An SB3 model as a batched policy (its actions as it gives them: float32, in bounds)."""
    return lambda obs: model.predict(obs, deterministic=deterministic)[0]


def evaluate_policy_returns(model, seeds: list[int], deterministic: bool = True,
                            robot: Robot | None = None) -> list[float]:
    """Full-episode returns of an SB3 policy on its robot's environment, one episode per seed,
    one at a time (batched, the SB3 network's float rounding would depend on the batch)."""
    policy = _sb3_actions(model, deterministic)
    env = _policy_robot(model, robot).make_env()
    try:
        return [roll_out([env], [seed], policy, clip_actions=False)[0][0].episode_return
                for seed in seeds]
    finally:
        env.close()


def train(out: Path, total_steps: int, eval_every: int, seed: int,
          robot: Robot = DEFAULT_ROBOT, stop_at_return: float | None = None) -> None:
    """Train SAC on ``robot``, keeping each evaluated policy; resumes from ``out/checkpoints``.
    ``stop_at_return``: end early once an evaluation reaches it (a "medium" dataset needs only the
    first policy that reaches a third of expert return)."""
    sb3 = _sb3()
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "policies").mkdir(exist_ok=True)
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(exist_ok=True)
    history_path = _history_file(out)
    history = _read_history(out) or []

    env = robot.make_env()
    latest = _latest_checkpoint(ckpt_dir)
    if latest is not None:
        model = sb3.SAC.load(latest[0], env=env, device="cpu")
        model.load_replay_buffer(latest[1])
        LOG.info("resumed from %s at %d steps", latest[0].name, model.num_timesteps)
    else:
        # rl-zoo's Hopper and Walker2d settings: SB3 defaults with 10k random warm-up steps.
        model = sb3.SAC("MlpPolicy", env, learning_starts=10_000, seed=seed, device="cpu",
                        buffer_size=total_steps, verbose=0)

    class EvalAndCheckpoint(BaseCallback):
        def _on_step(self) -> bool:
            n = self.num_timesteps
            if n % eval_every:
                return True
            returns = evaluate_policy_returns(self.model, seeds=list(range(1000, 1005)),
                                              robot=robot)
            mean = float(np.mean(returns))
            self.model.save(_policy_file(out, n))
            history.append({"steps": n, "mean_return": mean, "returns": returns})
            best = max(history, key=lambda h: h["mean_return"])
            if best["steps"] == n:
                self.model.save(out / "policies" / "best.zip")
            history_path.write_text(json.dumps(history, indent=1))
            LOG.info("steps %d: eval return %.0f (best %.0f at %d)", n, mean,
                     best["mean_return"], best["steps"])
            self.model.save(ckpt_dir / f"sac_{n}_steps.zip")
            self.model.save_replay_buffer(ckpt_dir / f"sac_replay_buffer_{n}_steps.pkl")
            for old in ckpt_dir.glob("sac_*"):  # keep only the newest checkpoint pair
                if f"_{n}_steps" not in old.name:
                    old.unlink()
            return stop_at_return is None or mean < stop_at_return

    reached = stop_at_return is not None and any(
        h["mean_return"] >= stop_at_return for h in history)
    remaining = total_steps - model.num_timesteps
    if remaining > 0 and not reached:
        model.learn(remaining, callback=EvalAndCheckpoint(), reset_num_timesteps=False)
    model.save_replay_buffer(out / "replay_buffer.pkl")
    LOG.info("done: %d steps", model.num_timesteps)


def record(policy_path: Path, out_file: Path, n_transitions: int, seed: int,
           n_envs: int = 16, deterministic: bool = False, robot: Robot | None = None) -> dict:
    """Roll out an SB3 policy into a D4RL-layout HDF5 file; returns its provenance."""
    sb3 = _sb3()
    import torch

    torch.set_num_threads(1)
    model = sb3.SAC.load(policy_path, device="cpu")
    robot = _policy_robot(model, robot)
    per_env: list[dict[str, list]] = [
        {k: [] for k in ("observations", "actions", "rewards", "terminals", "timeouts",
                         "next_observations")} for _ in range(n_envs)]
    finished_returns = []

    def keep(step: Step) -> None:
        for i in range(n_envs):  # every env steps: an ended episode is followed by the next
            buf = per_env[i]
            buf["observations"].append(step.observations[i])
            buf["actions"].append(step.actions[i])
            buf["rewards"].append(step.rewards[i])
            buf["terminals"].append(step.terminated[i])
            buf["timeouts"].append(step.truncated[i])
            buf["next_observations"].append(step.next_observations[i])
            if step.terminated[i] or step.truncated[i]:
                finished_returns.append(step.returns[i])

    seeds = itertools.count(seed + n_envs)  # the next episodes', in the order they start
    envs = [robot.make_env() for _ in range(n_envs)]
    try:
        roll_out(envs, range(seed, seed + n_envs), _sb3_actions(model, deterministic),
                 max_steps=math.ceil(n_transitions / n_envs), next_seed=lambda _: next(seeds),
                 clip_actions=False, on_step=keep)
    finally:
        for env in envs:
            env.close()
    for buf in per_env:
        # The last episode of each env is cut short: mark it as a timeout so nothing treats the
        # cut as a fall.
        if buf["timeouts"]:
            buf["timeouts"][-1] = buf["timeouts"][-1] or not buf["terminals"][-1]
    data = {k: np.concatenate([np.asarray(b[k]) for b in per_env])[:n_transitions]
            for k in per_env[0]}
    if not data["terminals"][-1]:
        data["timeouts"][-1] = True
    attrs = {
        "env_id": robot.env_id, "env_version": _env_version(robot),
        "policy": f"sb3 SAC {policy_path.name}",
        "policy_actions": "deterministic" if deterministic else "stochastic",
        "seed": seed, "n_envs": n_envs,
        "mean_episode_return": float(np.mean(finished_returns)),
        "n_complete_episodes": len(finished_returns),
    }
    attrs.update(_policy_provenance(policy_path))
    write_dataset(out_file, data, attrs)
    LOG.info("wrote %s: %d transitions, mean episode return %.0f over %d episodes",
             out_file, len(data["rewards"]), attrs["mean_episode_return"], len(finished_returns))
    return attrs


def pick_policy(run_dir: Path, min_return: float) -> Path:
    """The first evaluated policy of a :func:`train` run whose mean return reaches ``min_return``.

    D4RL's "medium" policy is the first one of its run to reach about a third of expert return;
    picking by that rule (not the best policy) makes the dataset's level reproducible.
    """
    history = _read_history(run_dir)
    if history is None:
        raise FileNotFoundError(f"no eval_history.json in {run_dir}; is it a `train` output?")
    history.sort(key=lambda h: h["steps"])
    for entry in history:
        path = _policy_file(run_dir, entry["steps"])
        if entry["mean_return"] >= min_return and path.is_file():
            return path
    best = max(history, key=lambda h: h["mean_return"], default=None)
    raise ValueError(f"no policy in {run_dir} reached return {min_return:g}" + (
        f" (best: {best['mean_return']:.0f} at {best['steps']} steps); train longer"
        if best else " (no evaluations yet)"))


def _policy_provenance(policy_path: Path) -> dict:
    """Training steps and evaluation return of a policy saved by :func:`train`, if known."""
    run_dir = Path(policy_path).parent.parent
    history = _read_history(run_dir)
    if history is None:
        return {}
    name = Path(policy_path).stem
    if name == "best":
        entry = max(history, key=lambda h: h["mean_return"], default=None)
    else:
        entry = next((h for h in history if _policy_file(run_dir, h["steps"]).stem == name), None)
    if entry is None:
        return {}
    return {"policy_training_steps": int(entry["steps"]),
            "policy_eval_return": float(entry["mean_return"]),
            "policy_eval_episodes": len(entry["returns"])}


def replay(buffer_path: Path, out_file: Path, training_steps: int,
           robot: Robot = DEFAULT_ROBOT) -> dict:
    """Turn SAC's saved replay buffer into a D4RL-layout "medium-replay" dataset."""
    from stable_baselines3.common.save_util import load_from_pkl

    buf = load_from_pkl(buffer_path)
    n = buf.buffer_size if buf.full else buf.pos
    obs = buf.observations[:n, 0]
    nobs = buf.next_observations[:n, 0]
    dones = buf.dones[:n, 0].astype(bool)
    timeouts = buf.timeouts[:n, 0].astype(bool)
    data = {
        "observations": obs, "actions": buf.actions[:n, 0], "rewards": buf.rewards[:n, 0],
        "terminals": dones & ~timeouts, "timeouts": timeouts,
        "next_observations": nobs,
    }
    data["timeouts"][-1] = not data["terminals"][-1]
    returns = episode_returns(data)  # every episode ends in a done (the last one just above)
    attrs = {"env_id": robot.env_id, "env_version": _env_version(robot),
             "policy": "sb3 SAC replay buffer",
             "policy_training_steps": training_steps,
             "mean_episode_return": float(np.mean(returns)), "n_complete_episodes": len(returns)}
    write_dataset(out_file, data, attrs)
    LOG.info("wrote %s: %d transitions, %d episodes", out_file, n, len(returns))
    return attrs


def main(argv: list[str] | None = None) -> None:
    from diffuser_ros.robots import robot as robot_named

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    robots = sorted(ROBOTS)

    def robot_arg(p, default: str | None = DEFAULT_ROBOT.name, help: str = "") -> None:
        p.add_argument("--robot", choices=robots, default=default,
                       help=help or f"the robot entry (default {default})")

    p = sub.add_parser("train", help="train SAC on a robot's environment (resumable)")
    robot_arg(p)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=150_000)
    p.add_argument("--eval-every", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stop-at-return", type=lambda v: v if v == "medium" else float(v),
                   default=None,
                   help="end once an evaluation reaches this return; 'medium' for a third of "
                        "the robot's expert return (all a medium dataset needs)")
    p = sub.add_parser("record", help="roll a policy out into a D4RL-layout HDF5 file")
    robot_arg(p, None, "the robot entry (default: the one whose observation size the policy has)")
    p.add_argument("--policy", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--transitions", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=10_000)
    p.add_argument("--deterministic", action="store_true")
    p = sub.add_parser("pick", help="print the first evaluated policy reaching a return")
    robot_arg(p)
    p.add_argument("--run", type=Path, required=True, help="a `train` output folder")
    p.add_argument("--min-return", type=float, default=None,
                   help="default: a third of the robot's expert return (D4RL 'medium')")
    p = sub.add_parser("replay", help="write the replay buffer as a medium-replay dataset")
    robot_arg(p)
    p.add_argument("--buffer", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--training-steps", type=int, required=True)
    args = parser.parse_args(argv)
    robot = robot_named(args.robot) if args.robot else None
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "INFO"),
                        format="%(asctime)s %(name)s %(message)s")
    if args.cmd == "train":
        stop = args.stop_at_return
        train(args.out, args.steps, args.eval_every, args.seed, robot=robot,
              stop_at_return=robot.expert_return / 3 if stop == "medium" else stop)
    elif args.cmd == "record":
        record(args.policy, args.out, args.transitions, args.seed,
               deterministic=args.deterministic, robot=robot)
    elif args.cmd == "pick":
        min_return = robot.expert_return / 3 if args.min_return is None else args.min_return
        print(pick_policy(args.run, min_return))
    else:
        replay(args.buffer, args.out, args.training_steps, robot=robot)


if __name__ == "__main__":
    main()
