"""The local backend: every trial in a process of its own on this machine, ``jobs`` at a time.

torch, OpenBLAS and numba thread pools in one process slow each other down; a process per trial,
its pools pinned to the trial's CPUs, lets trials share the cores without contention. Each
process runs ``python -m hrl_runtime.experiments.processes`` (:func:`main`): it reads the trial
as JSON on stdin and prints its result as one JSON object on stdout. A process that fails or is
killed is started again, up to ``retries`` times.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from hrl_runtime.experiments.trials import Trial, TrialsFailed, pinned_threads, run_trial

logger = logging.getLogger(__name__)

WORKER_MODULE = "hrl_runtime.experiments.processes"
"""The module every trial process runs (``python -m``); its command line names it."""


class LocalBackend:
    """Runs trials in processes on this machine.

    Args:
        jobs: trials side by side (default: the cores divided by ``cpus_per_trial``).
        cpus_per_trial: threads of each trial's pools.
        retries: attempts after the first for a trial whose process fails.
    """

    name = "local"

    def __init__(self, jobs: int | None = None, cpus_per_trial: int = 1, retries: int = 1):
        self.cpus_per_trial = cpus_per_trial
        self.jobs = jobs or max(1, (os.cpu_count() or 1) // cpus_per_trial)
        self.retries = retries
        self._env = dict(os.environ, **pinned_threads(cpus_per_trial))

    def run(self, trials: list[Trial]) -> Iterator[tuple[Trial, dict[str, Any]]]:
        """Runs ``trials``, yielding ``(trial, result)`` as each finishes (in any order).

        Raises:
            TrialsFailed: after every other trial finished, naming those that failed on every
                attempt with the end of their error output.
        """
        failures: dict[str, str] = {}
        with ThreadPoolExecutor(max_workers=max(1, self.jobs)) as pool:
            running: dict[Future, Trial] = {pool.submit(self._attempts, t): t for t in trials}
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    trial = running.pop(future)
                    result, error = future.result()
                    if error is None:
                        yield trial, result
                    else:
                        failures[trial.label()] = error
        if failures:
            raise TrialsFailed(failures)

    def close(self) -> None:
        """Nothing outlives :meth:`run` here (the protocol of the Ray backend)."""

    def _attempts(self, trial: Trial) -> tuple[dict[str, Any] | None, str | None]:
        """Runs ``trial`` until it succeeds or its retries are spent: ``(result, None)`` or
        ``(None, the last error)``."""
        request = json.dumps(
            {"function": trial.function, "kwargs": trial.kwargs, "cpus": self.cpus_per_trial}
        )
        error = ""
        for attempt in range(self.retries + 1):
            process = subprocess.run(
                [sys.executable, "-m", WORKER_MODULE],
                input=request,
                env=self._env,
                capture_output=True,
                text=True,
                check=False,
            )
            if process.returncode == 0:
                try:
                    return json.loads(process.stdout), None
                except json.JSONDecodeError:
                    error = f"printed no JSON object: {process.stdout[-300:]!r}"
            else:
                error = f"exit status {process.returncode}: {process.stderr[-2000:].strip()}"
            logger.warning("%s attempt %d: %s", trial.label(), attempt + 1, error.splitlines()[0])
        return None, error


def main() -> None:
    """One trial: ``{"function", "kwargs", "cpus"}`` on stdin, its result on stdout (anything
    the trial prints goes to stderr, so stdout holds exactly the one JSON object)."""
    request = json.loads(sys.stdin.read())
    with contextlib.redirect_stdout(sys.stderr):
        result = run_trial(request["function"], request["kwargs"], request.get("cpus", 1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
