"""CLI commands of the real-time runtime (registered into ``hrl`` by :mod:`hrl_runtime.cli`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_commands(
    commands: argparse._SubParsersAction,
    with_json: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
) -> None:
    """Adds the runtime's subcommands to the ``hrl`` parser (none yet)."""
