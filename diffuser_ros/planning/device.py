"""Device selection shared by the planner, training and evaluation."""

from __future__ import annotations

import os

import torch

VALID_DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda:N``/``cpu`` are taken as given.

    Raises ``ValueError`` for an unknown name or when CUDA is asked for but absent.
    """
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device '{device}' requested but CUDA is not available here; "
                             "use 'auto' or 'cpu'")
        return torch.device(name)
    raise ValueError(f"unknown device '{device}'; expected one of {VALID_DEVICES} or 'cuda:N'")


def default_cpu_threads() -> int:
    """CPU threads for planning that leave one core to the simulator, DDS and the executor.

    On a 2-core machine, planning on both cores while the simulator and DDS also run made each
    plan about 3x slower than planning on one.
    """
    return max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) - 1))


def set_cpu_threads(n_threads: int) -> int:
    """``torch.set_num_threads(n_threads)``; 0 = :func:`default_cpu_threads`. Returns the count."""
    if n_threads < 0:
        raise ValueError(f"torch_threads must be >= 0 (0 = auto), got {n_threads}")
    n_threads = n_threads or default_cpu_threads()
    torch.set_num_threads(n_threads)
    return n_threads
