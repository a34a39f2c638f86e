"""A preallocated ring-buffer replay memory of named float32 fields."""

from __future__ import annotations

import numpy as np
import torch


class ReplayBuffer:
    """Stores transitions as named arrays; samples uniformly.

    Args:
        capacity: the most transitions kept (oldest overwritten first).
        fields: field name -> per-transition shape, e.g. ``{"obs": (4,), "rewards": ()}``.
    """

    def __init__(self, capacity: int, fields: dict[str, tuple[int, ...]]):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.data = {
            name: np.zeros((capacity, *shape), np.float32) for name, shape in fields.items()
        }
        self.size = 0
        self.cursor = 0

    def __len__(self) -> int:
        return self.size

    def add(self, **batch: np.ndarray) -> None:
        """Appends ``B`` transitions: every field as ``(B, *shape)``."""
        if set(batch) != set(self.data):
            raise ValueError(f"expected fields {sorted(self.data)}, got {sorted(batch)}")
        count = len(next(iter(batch.values())))
        index = (self.cursor + np.arange(count)) % self.capacity
        for name, values in batch.items():
            self.data[name][index] = values
        self.cursor = int((self.cursor + count) % self.capacity)
        self.size = min(self.size + count, self.capacity)

    def recent(self, count: int) -> dict[str, np.ndarray]:
        """The last ``min(count, len(self))`` transitions added, oldest first (views are not
        returned: the arrays are copies)."""
        count = min(count, self.size)
        index = (self.cursor - count + np.arange(count)) % self.capacity
        return {name: values[index] for name, values in self.data.items()}

    def clear(self) -> None:
        self.size = self.cursor = 0

    def indices(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        """Uniform indices into the stored transitions: ``(batch_size,)``."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return rng.integers(0, self.size, size=batch_size)

    def get(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        """The transitions at ``index`` as float32 tensors."""
        return {name: torch.from_numpy(values[index]) for name, values in self.data.items()}

    def sample(self, rng: np.random.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        """A uniform minibatch of ``batch_size`` transitions."""
        return self.get(self.indices(rng, batch_size))

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """Arrays and counters for a checkpoint."""
        return {f"replay/{k}": v[: self.size] for k, v in self.data.items()}, {
            "size": self.size,
            "cursor": self.cursor,
        }

    def restore(self, arrays: dict[str, np.ndarray], counters: dict[str, int]) -> None:
        for name in self.data:
            stored = arrays[f"replay/{name}"]
            self.data[name][: len(stored)] = stored
        self.size, self.cursor = int(counters["size"]), int(counters["cursor"])
