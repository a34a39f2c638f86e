"""Planner settings a skill package recommends: ``config.planner.mppi`` in its manifest.

A skill knows best how a planner should search its command space (how sharply MPPI should
weigh its samples, how many refinements its dynamics reward). ``Skill.planner_settings``
returns these; ``planners.build_goal_follower`` applies them when its caller gives none. The
kinds that carry them (``dads_meta``, ``embedding``) check them with :func:`check_planner`.
"""

from __future__ import annotations

from typing import Any

from hrl_runtime.errors import ConfigError
from hrl_runtime.skill import PackageContents

PLANNER_KEY = "planner"
"""The optional ``config`` entry with recommended high-level settings (``{"mppi": {...}}``)."""

MPPI_SETTINGS: dict[str, tuple[type, float, float]] = {
    "num_samples": (int, 2, 65536),
    "horizon": (int, 1, 200),
    "iterations": (int, 1, 20),
    "temperature": (float, 1e-6, 1e3),
    "noise_scale": (float, 1e-3, 10.0),
    "step_weight": (float, 0.0, 1e3),
    "terminal_weight": (float, 0.0, 1e3),
    "squared_distance": (bool, 0, 1),
}
"""``planners.MPPIConfig`` fields a package may recommend (``config.planner.mppi`` in its
manifest), each with its type and bounds."""


def check_mppi_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` if every entry is a :data:`MPPI_SETTINGS` field of its type within bounds.

    Raises:
        ConfigError: naming the first bad entry and what is accepted.
    """
    for name, value in settings.items():
        if name not in MPPI_SETTINGS:
            raise ConfigError(
                f"MPPI setting {name!r} cannot be recommended by a package; use one of "
                f"{', '.join(MPPI_SETTINGS)}"
            )
        kind, low, high = MPPI_SETTINGS[name]
        ok = isinstance(value, bool) if kind is bool else type(value) in (kind, int)
        if not ok or (kind is not bool and not low <= value <= high):
            raise ConfigError(
                f"MPPI setting {name}={value!r} must be a {kind.__name__}"
                + ("" if kind is bool else f" in [{low:g}, {high:g}]")
            )
    return settings


def parse_mppi_settings(text: str) -> dict[str, Any]:
    """``NAME=VALUE[,NAME=VALUE...]`` of :data:`MPPI_SETTINGS` (booleans ``true``/``false``).

    Raises:
        ConfigError: naming the malformed entry.
    """
    settings: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = (x.strip() for x in part.partition("="))
        kind = MPPI_SETTINGS.get(name, (None,))[0]
        if not sep or kind is None:
            raise ConfigError(
                f"--mppi entry {part[:40]!r} is not NAME=VALUE with NAME one of "
                f"{', '.join(MPPI_SETTINGS)} (e.g. --mppi temperature=0.02)"
            )
        try:
            if kind is bool:
                settings[name] = {"true": True, "false": False}[value.lower()]
            else:
                settings[name] = kind(value)
        except (KeyError, ValueError):
            expected = "true or false" if kind is bool else f"a {kind.__name__}"
            raise ConfigError(f"--mppi {name}={value[:40]!r} is not {expected}") from None
    return check_mppi_settings(settings)


def check_planner(package: PackageContents) -> None:
    """The optional ``config.planner`` entry: ``{"mppi": {MPPI_SETTINGS field: value}}``.

    Raises:
        PackageError: naming the ``config.planner`` key at fault.
    """
    if PLANNER_KEY not in package.config:
        return
    fields = package.config_fields().section(PLANNER_KEY)
    fields.keys(("mppi",))
    mppi = package.config[PLANNER_KEY]["mppi"]
    if not isinstance(mppi, dict):
        raise fields.error("mppi", "must be an object of MPPI settings")
    try:
        check_mppi_settings(mppi)
    except ConfigError as error:
        raise fields.error("mppi", str(error)) from None


def recommended_mppi(package: PackageContents) -> dict[str, Any]:
    """The package's recommended MPPI settings (``{}`` when it has none); checked first by
    :func:`check_planner`."""
    return dict(package.config.get(PLANNER_KEY, {}).get("mppi", {}))


class RecommendsPlanner:
    """Mixin of the skill kinds whose packages may recommend latent MPPI settings: holds them
    (checked) and answers ``Skill.planner_settings``."""

    mppi: dict[str, Any]

    def _recommend(self, mppi: dict[str, Any] | None) -> None:
        """Keeps ``mppi`` (:data:`MPPI_SETTINGS` fields) as the recommended settings.

        Raises:
            ConfigError: naming the first bad entry.
        """
        self.mppi = check_mppi_settings(dict(mppi or {}))

    def planner_settings(self, planner: str) -> dict[str, Any]:
        """The manifest's recommended settings for ``planner`` (only ``mppi`` has any)."""
        return dict(self.mppi) if planner == "mppi" else {}


def planner_config(mppi: dict[str, Any]) -> dict[str, Any]:
    """The ``config`` entry a package writes for ``mppi`` (none when it is empty)."""
    return {PLANNER_KEY: {"mppi": dict(mppi)}} if mppi else {}
