"""Process settings that keep a control thread on time while a loop runs."""

from __future__ import annotations

import gc
import logging
import os
import sys
from typing import Any

logger = logging.getLogger(__name__)


class RealtimeSettings:
    """Process settings for a run: real-time priority for the control thread (when the OS allows
    it), a frozen, quiet garbage collector and a short GIL switch interval; restored on exit.

    Args:
        config: reads ``control_rt_priority``, ``switch_interval_s``, ``gc_freeze`` and
            ``gc_disable`` (an :class:`~hrl_runtime.async_loop.AsyncLoopConfig`).
    """

    def __init__(self, config: Any):
        self.config = config

    def __enter__(self) -> None:
        self._policy = None
        priority = self.config.control_rt_priority
        if priority is not None and hasattr(os, "sched_setscheduler"):
            try:  # pid 0: the calling (control) thread only
                self._policy = (os.sched_getscheduler(0), os.sched_getparam(0))
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            except OSError as error:
                self._policy = None
                logger.warning("SCHED_FIFO for the control thread refused (%s)", error)
        self._interval = sys.getswitchinterval()
        self._gc_was_enabled = gc.isenabled()
        if self.config.switch_interval_s is not None:
            sys.setswitchinterval(self.config.switch_interval_s)
        if self.config.gc_freeze:
            gc.collect()
            gc.freeze()
        if self.config.gc_disable:
            gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self._policy is not None:
            os.sched_setscheduler(0, self._policy[0], self._policy[1])
        sys.setswitchinterval(self._interval)
        if self.config.gc_freeze:
            gc.unfreeze()
        if self._gc_was_enabled:
            gc.enable()
