"""Offline trajectory datasets: many episodes recorded at the policy rate, in one HDF5 file.

Format ``hrl-runtime/trajectories``, version 1. Each recorded step is one action held for
``action_repeat`` control steps of the env; an episode of ``L`` policy steps stores ``L + 1``
observations (the first is the reset observation) and ``L`` actions. Episodes are concatenated.

Root attributes:

- ``format`` (str): ``"hrl-runtime/trajectories"``.
- ``format_version`` (int): ``1``.
- ``env_id`` (str): the id the data was collected on (``envs.make_env`` id).
- ``action_repeat`` (int): control steps each recorded action was held.
- ``seed`` (int): the collection seed.
- ``collector`` (str): JSON object, the collector's config.
- ``created_by`` (str): the command or function that wrote the file.

Datasets:

- ``observations``: ``(N_obs, do)`` float32, ``N_obs = sum(L + 1)``.
- ``actions``: ``(N_act, da)`` float32, ``N_act = sum(L)``.
- ``episode_lengths``: ``(E,)`` int64, ``L`` per episode in policy steps, each ``>= 1``.
- ``goals`` (optional): ``(E, 2)`` float32, the x-y goal each episode went to, metres.

Every float must be finite. Files are read and written with h5py only; no pickle anywhere.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

logger = logging.getLogger(__name__)

FORMAT = "hrl-runtime/trajectories"
"""Value of the ``format`` root attribute."""
FORMAT_VERSION = 1
"""Value of the ``format_version`` root attribute this code reads and writes."""

_REQUIRED_ATTRS: tuple[str, ...] = (
    "format",
    "format_version",
    "env_id",
    "action_repeat",
    "seed",
    "collector",
    "created_by",
)
# name: (dtype, rank); "goals" is optional.
_DATASETS: dict[str, tuple[np.dtype, int]] = {
    "observations": (np.dtype(np.float32), 2),
    "actions": (np.dtype(np.float32), 2),
    "episode_lengths": (np.dtype(np.int64), 1),
    "goals": (np.dtype(np.float32), 2),
}
_PICKLE_PROTOCOL_2_PLUS = b"\x80"


class DatasetError(ValueError):
    """A trajectory dataset is missing, unreadable, malformed, or not the one that was asked for."""


@dataclass(frozen=True, eq=False)
class TrajectoryDataset:
    """Episodes recorded at the policy rate, concatenated (see the module docstring for layout).

    The arrays are cast to the canonical dtypes, checked for consistency and made read-only on
    construction.

    Raises:
        DatasetError: If the arrays disagree with each other or hold non-finite values.
    """

    observations: np.ndarray
    """``(N_obs, do)`` float32 observations, ``L + 1`` per episode."""
    actions: np.ndarray
    """``(N_act, da)`` float32 actions, ``L`` per episode, each held ``action_repeat`` steps."""
    episode_lengths: np.ndarray
    """``(E,)`` int64 episode lengths ``L`` in policy steps."""
    env_id: str
    """Environment id the data was collected on (an ``envs.make_env`` id)."""
    action_repeat: int
    """Control steps each recorded action was held."""
    seed: int
    """Seed the data was collected with."""
    goals: np.ndarray | None = None
    """``(E, 2)`` float32 x-y goal each episode went to, metres; None if not goal-directed."""
    collector: dict[str, Any] = field(default_factory=dict)
    """The collector's config (stored as a JSON string)."""
    created_by: str = ""
    """The command or function that made the data."""
    _action_offsets: np.ndarray = field(init=False, repr=False)
    """``(E + 1,)`` index of each episode's first action, then ``N_act``."""

    def __post_init__(self) -> None:
        arrays = {
            "observations": np.array(self.observations, dtype=np.float32),
            "actions": np.array(self.actions, dtype=np.float32),
            "episode_lengths": np.array(self.episode_lengths, dtype=np.int64),
        }
        if self.goals is not None:
            arrays["goals"] = np.array(self.goals, dtype=np.float32)
        _check_arrays(arrays, source="TrajectoryDataset")
        if int(self.action_repeat) < 1:
            raise DatasetError(
                f"TrajectoryDataset: action_repeat must be >= 1, got {self.action_repeat}"
            )
        for name, value in arrays.items():
            value.flags.writeable = False
            object.__setattr__(self, name, value)
        offsets = np.concatenate([[0], np.cumsum(arrays["episode_lengths"])])
        object.__setattr__(self, "_action_offsets", offsets)
        object.__setattr__(self, "action_repeat", int(self.action_repeat))
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "collector", dict(self.collector))

    # ------------------------------------------------------------------------------- access

    @property
    def num_episodes(self) -> int:
        """Number of episodes ``E``."""
        return len(self.episode_lengths)

    @property
    def num_steps(self) -> int:
        """Number of recorded actions ``N_act`` (policy steps over all episodes)."""
        return len(self.actions)

    @property
    def obs_dim(self) -> int:
        """Observation dimension ``do``."""
        return self.observations.shape[1]

    @property
    def action_dim(self) -> int:
        """Action dimension ``da``."""
        return self.actions.shape[1]

    def episode(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """One episode.

        Args:
            index: Episode index in ``[0, E)`` (negative counts from the end).

        Returns:
            ``(observations (L + 1, do), actions (L, da))``, read-only views.

        Raises:
            IndexError: If there is no such episode.
        """
        if not -self.num_episodes <= index < self.num_episodes:
            raise IndexError(
                f"episode {index} does not exist; the dataset has {self.num_episodes} episodes"
            )
        index %= self.num_episodes
        start, stop = self._action_offsets[index], self._action_offsets[index + 1]
        # Episode e's observations start e entries later than its actions (one extra each).
        return self.observations[start + index : stop + index + 1], self.actions[start:stop]

    def action_sequences(self, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every window of ``horizon`` consecutive actions inside one episode (for skill VAEs).

        An episode of length ``L`` gives ``max(0, L - H + 1)`` windows, starting at steps
        ``0 .. L - H``; windows never cross episode boundaries.

        Args:
            horizon: Window length ``H >= 1``, in policy steps.

        Returns:
            ``(obs_start (M, do), actions (M, H, da), obs_seq (M, H + 1, do))``: the observation
            before each window, the window's actions, and the observations from the window's
            start to just after its last action (``obs_seq[:, 0] == obs_start``).

        Raises:
            ValueError: If ``horizon < 1``.
        """
        if horizon < 1:
            raise ValueError(f"action_sequences: horizon must be >= 1, got {horizon}")
        lengths = self.episode_lengths
        counts = np.maximum(lengths - horizon + 1, 0)
        episode_of_window = np.repeat(np.arange(self.num_episodes), counts)
        # Step of each window inside its episode: 0 .. counts[e] - 1.
        window_starts = np.concatenate([[0], np.cumsum(counts)])[:-1]
        step = np.arange(counts.sum()) - np.repeat(window_starts, counts)
        first_action = self._action_offsets[episode_of_window] + step
        first_obs = first_action + episode_of_window
        offsets = np.arange(horizon)
        actions = self.actions[first_action[:, None] + offsets]
        obs_seq = self.observations[first_obs[:, None] + np.arange(horizon + 1)]
        return self.observations[first_obs], actions, obs_seq

    def transitions(self) -> dict[str, np.ndarray]:
        """Every recorded step as a transition.

        Returns:
            ``{"obs": (N_act, do), "actions": (N_act, da), "next_obs": (N_act, do),
            "episode_index": (N_act,) int64}``.
        """
        episode_index = np.repeat(
            np.arange(self.num_episodes, dtype=np.int64), self.episode_lengths
        )
        obs_index = np.arange(self.num_steps) + episode_index
        return {
            "obs": self.observations[obs_index],
            "actions": np.array(self.actions),
            "next_obs": self.observations[obs_index + 1],
            "episode_index": episode_index,
        }

    # -------------------------------------------------------------------------------- disk

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes the dataset to an HDF5 file, atomically (a temporary file, then a rename).

        Args:
            path: Destination, conventionally ``*.h5``; parent directories are created.

        Returns:
            The path written.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            with h5py.File(temporary, "w") as file:
                file.attrs["format"] = FORMAT
                file.attrs["format_version"] = FORMAT_VERSION
                file.attrs["env_id"] = self.env_id
                file.attrs["action_repeat"] = self.action_repeat
                file.attrs["seed"] = self.seed
                file.attrs["collector"] = json.dumps(self.collector, sort_keys=True)
                file.attrs["created_by"] = self.created_by
                file.create_dataset("observations", data=self.observations)
                file.create_dataset("actions", data=self.actions)
                file.create_dataset("episode_lengths", data=self.episode_lengths)
                if self.goals is not None:
                    file.create_dataset("goals", data=self.goals)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        logger.info("wrote %d episodes (%d steps) to %s", self.num_episodes, self.num_steps, path)
        return path

    def __repr__(self) -> str:
        return (
            f"TrajectoryDataset(env_id={self.env_id!r}, episodes={self.num_episodes}, "
            f"steps={self.num_steps}, obs_dim={self.obs_dim}, action_dim={self.action_dim}, "
            f"action_repeat={self.action_repeat}, goals={self.goals is not None})"
        )


def load_dataset(
    path: str | os.PathLike[str],
    *,
    env_id: str | None = None,
    obs_dim: int | None = None,
    action_dim: int | None = None,
) -> TrajectoryDataset:
    """Reads and validates a trajectory dataset written by :meth:`TrajectoryDataset.save`.

    Args:
        path: The HDF5 file.
        env_id: If given, the env the data must have been collected on.
        obs_dim: If given, the observation dimension ``do`` the caller expects.
        action_dim: If given, the action dimension ``da`` the caller expects.

    Returns:
        The dataset, fully in memory.

    Raises:
        DatasetError: If the file is missing, not HDF5, truncated or corrupt, not in this format
            or version, missing a dataset or attribute, has a wrong dtype or rank, inconsistent
            lengths, non-finite values, or does not match ``env_id``/``obs_dim``/``action_dim``.
            The message names the file and the problem.
    """
    path = Path(path)
    where = f"dataset {str(path)!r}"
    if not path.exists():
        raise DatasetError(
            f"{where}: no such file; check the path, or collect one with "
            f"`hrl collect --env {env_id or '<env id>'} ...`."
        )
    if not path.is_file():
        raise DatasetError(f"{where}: is not a regular file (a directory?); pass an .h5 file.")
    if not h5py.is_hdf5(path):
        with path.open("rb") as stream:
            head = stream.read(2)
        hint = (
            " It looks like a Python pickle, which is never loaded (unsafe); re-save the data "
            "with TrajectoryDataset.save."
            if head[:1] == _PICKLE_PROTOCOL_2_PLUS
            else ""
        )
        raise DatasetError(
            f"{where}: is not an HDF5 file (the HDF5 signature is missing).{hint} Trajectory "
            f"datasets are HDF5 files in the {FORMAT!r} format."
        )
    try:
        with h5py.File(path, "r") as file:
            attrs, arrays = _read(file, where)
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as error:  # h5py's corrupt-file errors
        raise DatasetError(
            f"{where}: is truncated or corrupt and cannot be read (h5py: {error}). The write was "
            "probably interrupted or the copy is incomplete; copy it again or re-collect it."
        ) from error
    _check_arrays(arrays, source=where)
    dataset = TrajectoryDataset(
        observations=arrays["observations"],
        actions=arrays["actions"],
        episode_lengths=arrays["episode_lengths"],
        goals=arrays.get("goals"),
        **attrs,
    )
    _check_expected(dataset, where, env_id=env_id, obs_dim=obs_dim, action_dim=action_dim)
    return dataset


# ------------------------------------------------------------------------------- validation


def _read(file: h5py.File, where: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    missing = [name for name in _REQUIRED_ATTRS if name not in file.attrs]
    if "format" in missing or file.attrs.get("format") != FORMAT:
        found = "no 'format' attribute" if "format" in missing else repr(file.attrs["format"])
        raise DatasetError(
            f"{where}: is an HDF5 file but not an hrl-runtime trajectory dataset (format "
            f"attribute: {found}, expected {FORMAT!r})."
        )
    version = file.attrs.get("format_version")
    if version is None or not np.issubdtype(np.asarray(version).dtype, np.integer):
        raise DatasetError(
            f"{where}: attribute 'format_version' must be an integer, got {version!r}."
        )
    if int(version) != FORMAT_VERSION:
        raise DatasetError(
            f"{where}: has format_version {int(version)} but this code reads version "
            f"{FORMAT_VERSION}; re-collect it with this version of hrl-runtime."
        )
    if missing:
        raise DatasetError(
            f"{where}: missing root attribute(s) {missing}; a {FORMAT} v{FORMAT_VERSION} file "
            f"needs {list(_REQUIRED_ATTRS)}."
        )
    attrs = {
        "env_id": _string_attr(file, "env_id", where),
        "action_repeat": _int_attr(file, "action_repeat", where),
        "seed": _int_attr(file, "seed", where),
        "created_by": _string_attr(file, "created_by", where),
    }
    collector_text = _string_attr(file, "collector", where)
    try:
        collector = json.loads(collector_text)
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"{where}: attribute 'collector' is not valid JSON ({error})."
        ) from error
    if not isinstance(collector, dict):
        raise DatasetError(
            f"{where}: attribute 'collector' must be a JSON object, got {type(collector).__name__}."
        )
    attrs["collector"] = collector
    if attrs["action_repeat"] < 1:
        raise DatasetError(f"{where}: action_repeat must be >= 1, got {attrs['action_repeat']}.")

    arrays: dict[str, np.ndarray] = {}
    for name, (dtype, rank) in _DATASETS.items():
        if name not in file:
            if name == "goals":
                continue
            raise DatasetError(
                f"{where}: missing dataset {name!r}; a {FORMAT} file needs 'observations', "
                "'actions' and 'episode_lengths'."
            )
        node = file[name]
        if not isinstance(node, h5py.Dataset):
            raise DatasetError(f"{where}: {name!r} is a {type(node).__name__}, not a dataset.")
        if node.dtype != dtype or node.ndim != rank:
            raise DatasetError(
                f"{where}: dataset {name!r} is {node.dtype} with shape {node.shape}, expected "
                f"{dtype} of rank {rank}."
            )
        arrays[name] = node[()]
    return attrs, arrays


def _string_attr(file: h5py.File, name: str, where: str) -> str:
    value = file.attrs[name]
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        raise DatasetError(f"{where}: attribute {name!r} must be a string, got {value!r}.")
    return value


def _int_attr(file: h5py.File, name: str, where: str) -> int:
    value = np.asarray(file.attrs[name])
    if value.shape != () or not np.issubdtype(value.dtype, np.integer):
        raise DatasetError(f"{where}: attribute {name!r} must be an integer, got {value!r}.")
    return int(value)


def _check_arrays(arrays: dict[str, np.ndarray], source: str) -> None:
    for name, (_, rank) in _DATASETS.items():
        if name in arrays and arrays[name].ndim != rank:
            raise DatasetError(
                f"{source}: {name} must have rank {rank}, got shape {arrays[name].shape}."
            )
    observations, actions = arrays["observations"], arrays["actions"]
    lengths = arrays["episode_lengths"]
    if len(lengths) == 0:
        raise DatasetError(f"{source}: holds no episodes (episode_lengths is empty).")
    if np.any(lengths < 1):
        bad = np.flatnonzero(lengths < 1)[:5].tolist()
        raise DatasetError(
            f"{source}: episode_lengths must all be >= 1; episodes {bad} have "
            f"{lengths[bad].tolist()}."
        )
    total = int(lengths.sum())
    if total != len(actions):
        raise DatasetError(
            f"{source}: sum(episode_lengths) = {total} but there are {len(actions)} actions; "
            "the content is truncated or the arrays do not belong together."
        )
    expected_obs = total + len(lengths)
    if len(observations) != expected_obs:
        raise DatasetError(
            f"{source}: {len(lengths)} episodes of total length {total} need "
            f"sum(L + 1) = {expected_obs} observations but there are {len(observations)}; the "
            "content is truncated or the arrays do not belong together."
        )
    goals = arrays.get("goals")
    if goals is not None and goals.shape != (len(lengths), 2):
        raise DatasetError(
            f"{source}: goals must have shape (E, 2) = ({len(lengths)}, 2), got {goals.shape}."
        )
    for name in ("observations", "actions", "goals"):
        value = arrays.get(name)
        if value is not None and not np.isfinite(value).all():
            rows = np.flatnonzero(~np.isfinite(value).all(axis=1))
            raise DatasetError(
                f"{source}: {name} holds non-finite values (NaN or inf) in {len(rows)} row(s), "
                f"first at row {int(rows[0])}; drop those episodes or re-collect."
            )


def _check_expected(
    dataset: TrajectoryDataset,
    where: str,
    *,
    env_id: str | None,
    obs_dim: int | None,
    action_dim: int | None,
) -> None:
    wanted_env = env_id or dataset.env_id
    fix = f"collect a new one with `hrl collect --env {wanted_env} ...`"
    if env_id is not None and dataset.env_id != env_id:
        raise DatasetError(
            f"{where}: dataset was collected on {dataset.env_id} but {env_id} was requested; {fix}."
        )
    if obs_dim is not None and dataset.obs_dim != obs_dim:
        raise DatasetError(
            f"{where}: dataset has observations of dimension {dataset.obs_dim} (collected on "
            f"{dataset.env_id}) but {obs_dim} was requested; {fix}."
        )
    if action_dim is not None and dataset.action_dim != action_dim:
        raise DatasetError(
            f"{where}: dataset has actions of dimension {dataset.action_dim} (collected on "
            f"{dataset.env_id}) but {action_dim} was requested; {fix}."
        )
