"""Where trials run: processes on this machine (``local``) or the tasks of a Ray cluster (``ray``).

Both backends take a list of :class:`~hrl_runtime.experiments.trials.Trial` and yield
``(trial, result)`` as each finishes, so a caller can stream results to disk; both run a trial
through :func:`~hrl_runtime.experiments.trials.run_trial`, which pins its process's thread pools
to the trial's CPUs, and retry a trial whose process fails or dies. Ray is an optional extra
(``pip install 'hrl-runtime[ray]'``): the local backend needs nothing beyond the runtime.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hrl_runtime.errors import ConfigError
from hrl_runtime.experiments.processes import LocalBackend
from hrl_runtime.experiments.trials import Trial, TrialsFailed, run_trial

logger = logging.getLogger(__name__)

BACKENDS = ("local", "ray")
"""The names ``--backend`` accepts."""


class Backend(Protocol):
    """What runs trials: :class:`~hrl_runtime.experiments.processes.LocalBackend` or
    :class:`RayBackend`."""

    name: str

    def run(self, trials: list[Trial]) -> Iterator[tuple[Trial, dict[str, Any]]]:
        """Yields ``(trial, result)`` as each trial finishes; raises
        :class:`~hrl_runtime.experiments.trials.TrialsFailed` at the end if any failed on every
        attempt."""
        ...

    def close(self) -> None:
        """Releases what the backend started (a local Ray instance)."""
        ...


@dataclass(frozen=True)
class BackendConfig:
    """Which backend runs the trials, and how (the ``--backend`` flags)."""

    backend: str = "local"
    """``local`` (processes on this machine) or ``ray``."""
    address: str | None = None
    """Ray only: an existing cluster (``auto``, or ``HOST:PORT`` of ``ray start --head``); None
    starts a Ray instance on this machine for the run."""
    cpus_per_trial: int = 1
    """CPUs each trial holds; its thread pools are pinned to as many threads."""
    jobs: int | None = None
    """Trials side by side on this machine (local backend, and the local Ray instance's CPUs:
    ``jobs * cpus_per_trial``); None: all the cores. A cluster schedules by its own CPUs."""
    retries: int = 1
    """Attempts after the first for a trial that fails or whose worker dies."""


class RayBackend:
    """Runs trials as Ray tasks, on a cluster or on a Ray instance it starts on this machine.

    A trial whose worker process dies (killed, out of memory, its node lost) or that raises is
    resubmitted by Ray up to ``retries`` times. An instance this backend started is shut down by
    :meth:`close`; one that was already running (``ray.init`` by the caller) is left alone.

    Args:
        address: an existing cluster, or None for a local instance.
        cpus_per_trial: CPUs each task requests (and its pools' threads).
        retries: attempts after the first.
        num_cpus: CPUs of a local instance (None: all the cores).

    Raises:
        ConfigError: Ray is not installed, or the cluster at ``address`` cannot be reached.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        cpus_per_trial: int = 1,
        retries: int = 1,
        num_cpus: int | None = None,
    ):
        if address is not None:
            use_cluster_token()  # read when Ray loads
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "--backend ray needs Ray, which is not installed; install it with "
                "pip install 'hrl-runtime[ray]', or use --backend local"
            ) from None
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
            if address is None:
                options |= {"num_cpus": num_cpus, "include_dashboard": False}
            try:
                _init_ray(ray, address, options)
            except Exception as error:  # Ray fails to start or connect in many ways; one line
                reason = " ".join(str(error).split())[:300]
                if address is None:
                    raise ConfigError(
                        f"a local Ray instance did not start ({reason}); on a busy machine try "
                        "again, or use --backend local"
                    ) from None
                raise ConfigError(
                    f"--address {address}: no Ray cluster could be reached ({reason}); start "
                    "one with `ray start --head` and pass the address it prints; a cluster with "
                    "token authentication needs its token here too (~/.ray/auth_token, or "
                    "RAY_AUTH_TOKEN)"
                ) from None
        self.cpus_per_trial = cpus_per_trial
        self._remote = ray.remote(run_trial).options(
            num_cpus=cpus_per_trial,
            max_retries=retries,
            retry_exceptions=True,
        )

    def run(self, trials: list[Trial]) -> Iterator[tuple[Trial, dict[str, Any]]]:
        """Submits every trial, then yields ``(trial, result)`` as each finishes.

        Raises:
            TrialsFailed: after every other trial finished, naming those whose attempts all
                failed.
        """
        ray = self._ray
        pending = {
            self._remote.remote(t.function, t.kwargs, self.cpus_per_trial): t for t in trials
        }
        failures: dict[str, str] = {}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                trial = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as error:
                    failures[trial.label()] = " ".join(str(error).split())[-2000:]
                    logger.warning("%s failed on every attempt: %s", trial.label(), error)
                    continue
                yield trial, result
        if failures:
            raise TrialsFailed(failures)

    def close(self) -> None:
        """Shuts down the Ray instance this backend started."""
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()


START_ATTEMPTS = 2
"""Attempts to start a local Ray instance: its raylet has 30 s to register, which a machine
busy with other work can miss once."""


def _init_ray(ray: Any, address: str | None, options: dict[str, Any]) -> None:
    """``ray.init``; a local instance that did not start is started again once."""
    attempts = START_ATTEMPTS if address is None else 1
    for attempt in range(1, attempts + 1):
        try:
            ray.init(address=address, **options)
            return
        except Exception as error:  # see RayBackend: any failure of ray.init
            ray.shutdown()  # what did start is stopped before the next attempt
            if attempt == attempts:
                raise
            logger.warning("Ray did not start (%s); trying again", error)


def use_cluster_token() -> None:
    """Sends the cluster token to an explicit ``--address``. ``ray start --head`` enables token
    authentication by default (Ray >= 2.59) and writes the token to ``~/.ray/auth_token``, but a
    driver given an explicit address sends no token unless ``RAY_AUTH_MODE=token``; with a token
    at hand (that file, ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``) and no mode chosen, the
    mode is set to ``token``."""
    if os.environ.get("RAY_AUTH_MODE"):
        return
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
    if os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file():
        os.environ["RAY_AUTH_MODE"] = "token"
        logger.info("sending the Ray cluster token (RAY_AUTH_MODE=token)")


def make_backend(config: BackendConfig) -> Backend:
    """The backend ``config`` names.

    Raises:
        ConfigError: an unknown backend, ``address`` without Ray, or Ray unavailable.
    """
    if config.backend not in BACKENDS:
        raise ConfigError(f"--backend {config.backend!r} is unknown; use local or ray")
    if config.backend == "local":
        if config.address is not None:
            raise ConfigError("--address names a Ray cluster; pass --backend ray with it")
        return LocalBackend(config.jobs, config.cpus_per_trial, config.retries)
    num_cpus = None if config.jobs is None else config.jobs * config.cpus_per_trial
    return RayBackend(config.address, config.cpus_per_trial, config.retries, num_cpus)


@contextlib.contextmanager
def session(config: BackendConfig) -> Iterator[None]:
    """Keeps the backend's resources for several runs (a command that trains, then evaluates):
    with Ray, the instance is started (or the cluster joined) once, here, instead of per run.

    Raises:
        ConfigError: as :func:`make_backend`.
    """
    backend = make_backend(config)
    try:
        yield
    finally:
        backend.close()


def run_all(trials: list[Trial], config: BackendConfig, progress: bool = False) -> list[dict]:
    """Runs ``trials`` on the backend ``config`` names; their results in the order of ``trials``.

    Raises:
        TrialsFailed: some trials failed on every attempt.
    """
    import sys

    from tqdm import tqdm

    backend = make_backend(config)
    results: dict[str, dict[str, Any]] = {}
    try:
        with tqdm(total=len(trials), disable=not progress, file=sys.stderr, unit="run") as bar:
            for trial, result in backend.run(trials):
                results[trial.key] = result
                bar.update()
    finally:
        backend.close()
    return [results[trial.key] for trial in trials]
