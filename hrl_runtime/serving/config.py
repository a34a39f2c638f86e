"""The configuration of the policy server (:class:`ServerConfig`) and the checks that refuse, before
anything binds or loads, a configuration that would expose the robot."""

from __future__ import annotations

from dataclasses import dataclass

from hrl_runtime.errors import ConfigError
from hrl_runtime.serving import auth


@dataclass(frozen=True)
class ServerConfig:
    """Configuration of :class:`PolicyServer`."""

    host: str = "127.0.0.1"
    """Interface to bind; loopback by default (pass 0.0.0.0 deliberately to expose it)."""
    port: int = 5555
    """TCP port; 0 picks a free one (see :attr:`PolicyServer.address`)."""
    skill: str | None = None
    """Skill used by ``init`` when the request names none."""
    planner: str = "mppi"
    """High level used by ``init`` when the request names none."""
    control_period_s: float = 0.01
    """The client's control period: a reply later than this after the request's receipt counts
    as a deadline miss."""
    planner_threads: int | None = None
    """numba threads of each session's planner thread (None: one fewer than the cores)."""
    planner_nice: int = 0
    """Niceness added to each session's planner thread (and its numba workers; Linux). A positive
    value lets the thread answering requests win the CPU from the planner, but on a machine
    busy with other processes it starves the planner (plans go stale), so it is off by default."""
    switch_interval_s: float = 0.0005
    """GIL switch interval while serving (CPython's default, 5 ms, is half a control period: the
    reply path would wait that long whenever the planner thread holds the GIL)."""
    secret_key_file: str | None = None
    """The server's CURVE ``NAME.key_secret`` (``hrl keys generate``); None: no encryption and no
    authentication, allowed on loopback only (or with ``insecure``)."""
    authorized_keys_dir: str | None = None
    """Directory of the public keys (``*.key``) of the clients to admit; needed with keys."""
    insecure: bool = False
    """Allow binding a non-loopback interface without keys (logged as a warning)."""
    skills: tuple[str, ...] | None = None
    """``NAME[@VERSION]`` refs ``init`` may load, resolved on the search path at start; None
    (loopback only): any package on the search path, by name (never a directory)."""
    client_rate_hz: float = 1000.0
    """Requests a second each client may sustain (10 per tick of a 100 Hz loop)."""
    client_burst: int = 200
    """Requests a client may send at once after a quiet spell."""

    def validate(self) -> None:
        """Refuses, before anything binds or loads, a configuration that would expose the robot.

        Raises:
            ConfigError: non-loopback without keys (and without ``insecure``), keys without
                authorized clients, non-loopback without ``skills``, or bad limits.
        """
        if (self.secret_key_file is None) != (self.authorized_keys_dir is None):
            raise ConfigError(
                "--keys and --authorized go together: the server's NAME.key_secret and the "
                "directory of the clients' public keys"
            )
        problem = auth.exposure_problem(self.host, self.secret_key_file is not None, self.insecure)
        if problem is not None:
            raise ConfigError(problem)
        if self.skills is None and not auth.is_loopback(self.host):
            raise ConfigError(
                f"--host {self.host} is not loopback: name the skills clients may load with "
                "--skills NAME[@VERSION] ... (see `hrl skills list`)"
            )
        if not (0 < self.client_rate_hz < float("inf")) or self.client_burst < 1:
            raise ConfigError(
                f"client limits {self.client_rate_hz} requests/s, burst {self.client_burst}: "
                "use a finite rate > 0 and a burst >= 1"
            )
