"""Zero-order hold of a policy's action between the policy's own ticks.

Learned skills act at a policy rate (e.g. 10 Hz) below the control loop's (100 Hz): each action
is held for ``repeat`` control steps, exactly as during training. A new command takes effect at
once and restarts the hold.
"""

from __future__ import annotations

import numpy as np


class ActionHold:
    """Decides when a skill must compute a new action, and keeps the held one.

    Args:
        action_shape: shape of the actions ``(da,)``.
        command_dim: dc.
        repeat: control steps each action is held.
    """

    def __init__(self, action_shape: tuple[int, ...], command_dim: int, repeat: int):
        self.repeat = int(repeat)
        self.action = np.zeros(action_shape, np.float32)
        self._command = np.full(command_dim, np.nan, np.float32)
        self._tick = 0

    def reset(self) -> None:
        self._tick = 0
        self._command[:] = np.nan

    def due(self, command: np.ndarray) -> bool:
        """True when a new action is needed for this control step (then call :meth:`hold`)."""
        if not np.array_equal(command, self._command):
            self._command[:] = command
            self._tick = 0
        due = self._tick % self.repeat == 0
        self._tick += 1
        return due

    @property
    def policy_step(self) -> int:
        """Policy steps since the command started (0 during the first hold)."""
        return (self._tick - 1) // self.repeat

    def hold(self, action: np.ndarray) -> None:
        self.action[:] = action

    def current(self) -> np.ndarray:
        """A copy of the held action ``(da,)``."""
        return self.action.copy()
