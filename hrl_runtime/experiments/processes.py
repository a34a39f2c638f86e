"""Runs side by side, each in its own process with one-thread pools (the comparisons use it).

torch, OpenBLAS and numba thread pools in one process slow each other down; a process per run,
pinned to one thread, lets ``jobs`` runs share the cores without contention.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

PINNED_THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""Environment of every run."""


def run_json_processes(
    commands: list[list[str]], names: list[str], jobs: int = 2, progress: bool = True
) -> list[dict[str, Any]]:
    """Runs every command (``jobs`` at a time); each prints one JSON object on stdout.

    Args:
        commands: argument lists, e.g. ``[sys.executable, "-m", ...]``.
        names: what each run is, for errors.
        jobs: runs side by side.
        progress: show a progress bar.

    Returns:
        The parsed objects, in the order of ``commands``.

    Raises:
        RuntimeError: a run failed (its name and the end of its error output are included).
    """
    from tqdm import tqdm

    env = dict(os.environ, **PINNED_THREADS)

    def spawn(run: tuple[list[str], str]) -> dict[str, Any]:
        command, name = run
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{name} failed:\n{result.stderr[-2000:]}")
        return json.loads(result.stdout)

    runs = list(zip(commands, names, strict=True))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(
            tqdm(pool.map(spawn, runs), total=len(runs), disable=not progress, file=sys.stderr)
        )
