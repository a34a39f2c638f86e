"""One training session: progress bar, TensorBoard scalars, checkpoints, wall clock, packaging.

A trainer makes a :class:`TrainingRun`, restores its state from :meth:`TrainingRun.resume`
(None, or the checkpoint made with the same config), runs its loop inside
:meth:`TrainingRun.session` calling :meth:`~TrainingRun.log`, :meth:`~TrainingRun.advance` and
:meth:`~TrainingRun.save`, saves once more, and writes its package with
:meth:`~TrainingRun.package`. Checkpoints hold the trainer's state plus ``config`` and
``history``; only the budget field of the config may differ when a run resumes (it may be
extended).
"""

from __future__ import annotations

import logging
import math
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from hrl_runtime.errors import ConfigError
from hrl_runtime.registry import SkillRegistry
from hrl_runtime.skill import Packaged
from hrl_runtime.threads import ThreadPools
from skill_library.checkpoint import config_json, load_resumable, save_checkpoint

logger = logging.getLogger(__name__)


class TrainingRun:
    """What a training session does besides the learning itself.

    Args:
        config: the run's frozen dataclass config; it has a ``seed`` field and a budget field.
            Checkpoints and the package manifest record it.
        out_dir: the package directory: checkpoints go to ``out_dir/checkpoint``, TensorBoard
            scalars to ``out_dir/tensorboard``. None: neither (a run that is only measured).
        tag: TensorBoard scalars are named ``<tag>/<metric>``.
        budget: the config field with the run's length (the progress bar's total), in ``unit``;
            the one field a resumed run may change.
        unit: what the budget counts (updates, policy steps, control steps).
        command: the command line that started the run, for the manifest; by default this
            process's arguments.
        progress: show a progress bar.
        label: the progress bar's label.
        version: the version of the package :meth:`package` writes.
    """

    def __init__(
        self,
        config: Any,
        out_dir: Path | str | None,
        *,
        tag: str,
        budget: str,
        unit: str = "step",
        command: str = "",
        progress: bool = True,
        label: str | None = None,
        threads: int = 1,
        version: str = "1.0.0",
    ):
        self.config = config
        self.version = version
        """The package version :meth:`package` writes."""
        self.threads = threads
        """torch intra-op threads during a session (BLAS runs with one); the host's come back."""
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.checkpoint_dir = None if out_dir is None else self.out_dir / "checkpoint"
        self.tag, self.budget, self.unit, self.label = tag, budget, unit, label
        self.command = command
        self.progress = progress
        self.history: list[dict[str, float]] = []
        """The metrics passed to :meth:`log`, oldest first (kept in checkpoints)."""
        self._bar: tqdm | None = None
        self._writer: Any = None  # a SummaryWriter inside a session with an out_dir
        self._started: float | None = None
        self._seconds = 0.0

    @property
    def seconds(self) -> float:
        """Wall-clock seconds of the current session so far, or of the last one."""
        if self._started is None:
            return self._seconds
        return time.perf_counter() - self._started

    def resume(self) -> dict[str, Any] | None:
        """The checkpoint's state (its history restored into :attr:`history`), or None.

        Raises:
            ConfigError: the checkpoint was made with a configuration that differs in more
                than the budget field.
        """
        state = load_resumable(
            self.checkpoint_dir, self.config, type(self.config)(), may_change=(self.budget,)
        )
        if state is None:
            logger.warning("no checkpoint in %s; starting from scratch", self.checkpoint_dir)
            return None
        self.history = list(state["history"])
        logger.info("resuming from %s", self.checkpoint_dir)
        return state

    @contextmanager
    def session(self, done: int = 0, log_step: int | None = None) -> Iterator[TrainingRun]:
        """Opens the progress bar and the TensorBoard writer and times the block.

        Args:
            done: budget already spent (by a resumed run): where the bar starts.
            log_step: the TensorBoard step of the checkpoint resumed from (default ``done``):
                scalars a crashed session logged after it are purged.

        The session runs with the thread pools the run configures (:attr:`threads` torch
        threads, one BLAS thread), whatever the host process had; they are restored after.
        """
        if self.out_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.out_dir.mkdir(parents=True, exist_ok=True)
            purge = done if log_step is None else log_step
            self._writer = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=purge)
        self._bar = tqdm(
            total=getattr(self.config, self.budget),
            initial=done,
            disable=not self.progress,
            unit=self.unit,
            desc=self.label,
        )
        pools = ThreadPools(blas=1, torch=self.threads).__enter__()
        self._started = time.perf_counter()
        try:
            yield self
        finally:
            self._seconds, self._started = time.perf_counter() - self._started, None
            pools.__exit__(None, None, None)
            self._bar.close()
            if self._writer is not None:
                self._writer.close()

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Appends ``metrics`` to :attr:`history` and writes its finite values to TensorBoard
        at ``step`` (a ``step`` entry, the x-axis itself, is not written)."""
        self.history.append(metrics)
        for key, value in metrics.items():
            if self._writer is not None and key != "step" and math.isfinite(value):
                self._writer.add_scalar(f"{self.tag}/{key}", value, step)

    def advance(self, count: int, **postfix: str) -> None:
        """Moves the progress bar ``count`` units on; ``postfix`` replaces the values shown."""
        if postfix:
            self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(count)

    def save(self, state: dict[str, Any]) -> Path:
        """Writes a checkpoint: the trainer's ``state`` with the config and the history."""
        checkpoint = {"config": config_json(self.config), **state, "history": self.history}
        return save_checkpoint(self.checkpoint_dir, checkpoint)

    def package(self, obj: Packaged, **manifest: Any) -> Path:
        """:func:`save_package` into ``out_dir``, with this run's command, config and version."""
        manifest.setdefault("version", self.version)
        return save_package(obj, self.out_dir, command=self.command, config=self.config, **manifest)


def save_package(
    obj: Packaged,
    directory: Path | str,
    *,
    name: str,
    description: str,
    config: Any,
    metrics: dict[str, Any],
    command: str = "",
    training: dict[str, Any] | None = None,
    version: str = "1.0.0",
) -> Path:
    """Writes a trained skill or policy package, replacing one already in ``directory``.

    Args:
        obj: the skill or policy.
        directory: the package directory (its parent joins the registry's search path, so a
            name already taken elsewhere is refused).
        name, description, metrics, version: the manifest's.
        config: the dataclass config that trained it; the manifest's ``training`` records it
            and its ``seed``.
        command: the command line that trained it, for the manifest's ``training`` (by default
            this process's arguments).
        training: more entries of the manifest's ``training`` (the dataset, the environment).

    Raises:
        ConfigError: a weight is NaN or infinite (nothing is written: a diverged run is not
            packaged).
        PackageError: an invalid name or version, or the same name@version elsewhere.
    """
    refuse_non_finite(obj, name)
    directory = Path(directory)
    command = command or shlex.join(sys.argv)
    record = {"command": command, "seed": config.seed, "config": config_json(config)}
    return SkillRegistry([directory.parent]).save(
        obj,
        directory,
        name=name,
        version=version,
        description=description,
        training={**record, **(training or {})},
        metrics=metrics,
        overwrite=True,
    )


def refuse_non_finite(obj: Packaged, name: str) -> None:
    """Refuses to package weights that hold NaN or infinities.

    Raises:
        ConfigError: naming the file and tensor, and what to change.
    """
    for stem, tensors in obj.package_tensors().items():
        for key, array in tensors.items():
            array = np.asarray(array)
            if array.dtype.kind in "fc" and not np.isfinite(array).all():
                bad = int(np.size(array) - np.isfinite(array).sum())
                raise ConfigError(
                    f"training {name!r} produced {bad} non-finite weights in "
                    f"{stem}.safetensors [{key}]; nothing was packaged: lower the learning rate "
                    "or the loss weights (for example --beta) and train again"
                )
