"""Device selection shared by the planner, training and evaluation."""

from __future__ import annotations

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
