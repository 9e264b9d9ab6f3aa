"""Read and write offline datasets in the D4RL HDF5 layout.

The layout is flat arrays of equal length N: ``observations`` [N, obs_dim], ``actions``
[N, act_dim], ``rewards`` [N], ``terminals`` [N], ``timeouts`` [N] and, optionally,
``next_observations`` [N, obs_dim]. Provenance goes into the file's attributes. Files from the
real D4RL (or exported from Minari in the same layout) load with :func:`load_dataset`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")
OPTIONAL_KEYS = ("next_observations",)


class DatasetError(ValueError):
    """A dataset file is missing, malformed or inconsistent; the message says which and why."""


def validate_dataset(data: dict[str, np.ndarray], source: str = "dataset") -> None:
    """Check keys, shapes, lengths and finiteness; raise :class:`DatasetError` on any problem."""
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise DatasetError(f"{source}: missing key(s) {missing}; a D4RL-layout file needs "
                           f"{list(REQUIRED_KEYS)}")
    n = len(data["observations"])
    if n == 0:
        raise DatasetError(f"{source}: 'observations' is empty")
    for key in REQUIRED_KEYS + OPTIONAL_KEYS:
        if key not in data:
            continue
        if len(data[key]) != n:
            raise DatasetError(f"{source}: '{key}' has {len(data[key])} entries but "
                               f"'observations' has {n}; all arrays must have the same length")
    for key in ("observations", "actions") + tuple(k for k in OPTIONAL_KEYS if k in data):
        if np.asarray(data[key]).ndim != 2:
            raise DatasetError(f"{source}: '{key}' must be 2-D [N, dim], got shape "
                               f"{np.asarray(data[key]).shape}")
    for key in ("observations", "actions", "rewards") + tuple(k for k in OPTIONAL_KEYS
                                                               if k in data):
        values = np.asarray(data[key], dtype=np.float64)
        if not np.isfinite(values).all():
            bad = int(np.argwhere(~np.isfinite(values.reshape(n, -1)).all(axis=1))[0, 0])
            raise DatasetError(f"{source}: '{key}' has non-finite values (first at index {bad})")


def write_dataset(path: str | Path, data: dict[str, np.ndarray],
                  attrs: dict[str, Any] | None = None) -> Path:
    """Validate and write ``data`` to ``path`` (gzip-compressed), with provenance ``attrs``."""
    path = Path(path)
    validate_dataset(data, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with h5py.File(tmp, "w") as f:
        for key in REQUIRED_KEYS + OPTIONAL_KEYS:
            if key not in data:
                continue
            arr = np.asarray(data[key])
            if key in ("terminals", "timeouts"):
                arr = arr.astype(bool)
            elif arr.dtype.kind == "f":
                arr = arr.astype(np.float32)
            f.create_dataset(key, data=arr, compression="gzip")
        for key, value in (attrs or {}).items():
            plain = isinstance(value, (int, float, str, bool))
            f.attrs[key] = value if plain else json.dumps(value)
    tmp.replace(path)  # atomic: a half-written file never carries the final name
    return path


def load_dataset(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load a D4RL-layout HDF5 file; returns ``(arrays, attributes)``.

    Raises :class:`DatasetError` naming the file and the problem (missing file, unreadable
    HDF5, missing key, length mismatch, non-finite values).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            data = {k: f[k][()] for k in REQUIRED_KEYS + OPTIONAL_KEYS if k in f}
            attrs = dict(f.attrs)
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable HDF5 file ({exc})") from exc
    validate_dataset(data, str(path))
    data["terminals"] = data["terminals"].astype(bool)
    data["timeouts"] = data["timeouts"].astype(bool)
    return data, attrs


def episode_bounds(data: dict[str, np.ndarray],
                   complete_only: bool = False) -> list[tuple[int, int]]:
    """``[(start, end_exclusive), ...]`` for each episode; the last one ends at N.

    ``complete_only``: only episodes that end in a terminal or a timeout, i.e. without a last
    one that recording cut off mid-episode.
    """
    done = np.asarray(data["terminals"]) | np.asarray(data["timeouts"])
    ends = np.flatnonzero(done) + 1
    n = len(data["observations"])
    if (len(ends) == 0 or ends[-1] != n) and not complete_only:
        ends = np.append(ends, n)
    starts = np.concatenate([[0], ends[:-1]])
    return [(int(s), int(e)) for s, e in zip(starts, ends) if e > s]


def episode_returns(data: dict[str, np.ndarray],
                    bounds: list[tuple[int, int]] | None = None) -> np.ndarray:
    """Undiscounted return of each episode of ``bounds`` (default: :func:`episode_bounds`, a
    cut-off last episode included)."""
    rewards = np.asarray(data["rewards"], dtype=np.float64)
    if bounds is None:
        bounds = episode_bounds(data)
    return np.array([rewards[s:e].sum() for s, e in bounds], dtype=np.float64)
