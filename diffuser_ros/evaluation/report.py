"""Scores, per-variant summaries, the results JSON, the returns plot and the printed table."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from diffuser_ros.data.d4rl_scores import normalized_score, return_for_score, score_se
from diffuser_ros.robots import DEFAULT_ROBOT, Robot
from diffuser_ros.rollout import EpisodeResult


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (sample std / sqrt(n)); s.e. is 0 for a single value."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0
    return float(v.mean()), se


def summarize_returns(returns: Sequence[float], robot: Robot = DEFAULT_ROBOT) -> dict:
    """``{n_episodes, return_mean, return_se, score_mean, score_se}`` of episode returns on
    ``robot``: the one place evaluation results and datasets get their D4RL-normalised scores."""
    mean, se = mean_se(returns)
    return {"n_episodes": len(returns), "return_mean": mean, "return_se": se,
            "score_mean": normalized_score(mean, robot), "score_se": score_se(se, robot)}


def summarize(episodes: Sequence[EpisodeResult], robot: Robot = DEFAULT_ROBOT) -> dict:
    """Return / normalised score mean ± s.e., full-length fraction and per-seed values."""
    return {
        **summarize_returns([e.episode_return for e in episodes], robot),
        "full_length_fraction": float(np.mean([e.full_length for e in episodes])),
        "length_mean": float(np.mean([e.length for e in episodes])),
        "per_seed_return": {str(e.seed): e.episode_return for e in episodes},
    }


def write_json(path: str | Path, data: Mapping) -> Path:
    """Write ``data`` atomically (a crash never leaves a half-written results file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=True))
    tmp.replace(path)
    return path


def read_json(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (None: matplotlib is not installed)."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, ax, path: str | Path) -> Path:
    """Grid, tight layout, write ``path`` and close the figure."""
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    pyplot().close(fig)
    return Path(path)


def plot_returns(variants: Mapping[str, Sequence[float]], path: str | Path,
                 dataset_mean: float | None = None, title: str = "closed loop",
                 robot: Robot = DEFAULT_ROBOT) -> Path:
    """Box + jittered strip plot of per-seed returns per variant, with the behaviour dataset's
    mean episode return as a dashed line and the D4RL normalised score on the right axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(variants)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(names) + 2), 4.2))
    try:
        data = [np.asarray(variants[n], dtype=np.float64) for n in names]
        if names:
            ax.boxplot(data, positions=range(len(names)), widths=0.5, showfliers=False)
            rng = np.random.default_rng(0)
            for i, values in enumerate(data):
                ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=14, alpha=0.7,
                           zorder=3)
            ax.set_xticks(range(len(names)), names)
        if dataset_mean is not None and math.isfinite(dataset_mean):
            ax.axhline(dataset_mean, color="grey", ls="--", lw=1,
                       label=f"dataset mean ({dataset_mean:.0f})")
            ax.legend(loc="best", fontsize=8)
        ax.set_ylabel("episode return")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        secondary = ax.secondary_yaxis(
            "right", functions=(lambda r: normalized_score(r, robot),
                                lambda s: return_for_score(s, robot)))
        secondary.set_ylabel("D4RL normalised score")
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path


def format_table(results: Mapping[str, Mapping], dataset: Mapping | None = None) -> str:
    """Plain-text table: variant, return mean ± s.e., score, full-length fraction, latency."""
    header = f"{'variant':<12} {'return':>18} {'score':>14} {'full-len':>8} " \
             f"{'call ms (mean/p95)':>20} {'n':>3}"
    lines = [header, "-" * len(header)]
    for name, entry in results.items():
        s = entry["summary"]
        lat = entry.get("latency") or {}
        latency = "-" if lat.get("mean_ms") is None else \
            f"{lat['mean_ms']:.1f}/{lat['p95_ms']:.1f}"
        lines.append(f"{name:<12} {s['return_mean']:>9.1f} ± {s['return_se']:<6.1f} "
                     f"{s['score_mean']:>6.1f} ± {s['score_se']:<5.1f} "
                     f"{s['full_length_fraction']:>8.2f} {latency:>20} {s['n_episodes']:>3}")
    if dataset:
        lines.append(f"{'dataset':<12} {dataset['return_mean']:>9.1f} ± "
                     f"{dataset['return_se']:<6.1f} {dataset['score_mean']:>6.1f} ± "
                     f"{dataset['score_se']:<5.1f} {'':>8} {'':>20} {dataset['n_episodes']:>3}")
    return "\n".join(lines)
