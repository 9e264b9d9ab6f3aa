"""Training the diffusion model and the value function on offline data (D4RL layout)."""

from diffuser_ros.training.sequences import SequenceDataset, discounted_returns

__all__ = ["SequenceDataset", "discounted_returns"]
