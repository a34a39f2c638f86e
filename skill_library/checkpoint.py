"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A nested state (dicts, lists, numbers, strings, tensors and numpy arrays, as in torch
``state_dict`` and optimizer ``state_dict`` objects) is split in two: every array leaf goes to
``state.safetensors`` under its path, and the structure with references to those keys goes to
``state.json``. Dict keys keep their type (optimizers index their state by int).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

TENSORS, STRUCTURE = "state.safetensors", "state.json"


def _flatten(value: Any, path: str, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, torch.Tensor):
        arrays[path] = value.detach().cpu().numpy()
        return {"__tensor__": path, "torch": True, "shape": list(value.shape)}
    if isinstance(value, np.ndarray):
        arrays[path] = value
        return {"__tensor__": path, "torch": False, "shape": list(value.shape)}
    if isinstance(value, dict):
        items = [[k, _flatten(v, f"{path}/{k}", arrays)] for k, v in value.items()]
        return {"__dict__": items}
    if isinstance(value, (list, tuple)):
        return {"__list__": [_flatten(v, f"{path}/{i}", arrays) for i, v in enumerate(value)]}
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"checkpoint: cannot store {type(value).__name__} at {path or '/'}")


def _unflatten(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, dict):
        if "__tensor__" in value:
            # safetensors stores 0-d arrays as 1-d: restore the recorded shape.
            array = np.array(arrays[value["__tensor__"]]).reshape(value["shape"])
            return torch.from_numpy(array) if value["torch"] else array
        if "__dict__" in value:
            return {k: _unflatten(v, arrays) for k, v in value["__dict__"]}
        if "__list__" in value:
            return [_unflatten(v, arrays) for v in value["__list__"]]
    return value


def save_checkpoint(directory: Path | str, state: dict[str, Any]) -> Path:
    """Writes ``state`` atomically (a crash leaves the previous checkpoint intact)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    structure = _flatten(state, "", arrays)
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    save_file(arrays, str(directory / f"{TENSORS}.tmp"))
    (directory / f"{STRUCTURE}.tmp").write_text(json.dumps(structure))
    os.replace(directory / f"{TENSORS}.tmp", directory / TENSORS)
    os.replace(directory / f"{STRUCTURE}.tmp", directory / STRUCTURE)
    return directory


def load_checkpoint(directory: Path | str) -> dict[str, Any]:
    """Reads a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: naming the missing file.
    """
    directory = Path(directory)
    for name in (TENSORS, STRUCTURE):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"no checkpoint: {directory / name} is missing")
    arrays = load_file(str(directory / TENSORS))
    return _unflatten(json.loads((directory / STRUCTURE).read_text()), arrays)


def config_json(config: Any) -> dict[str, Any]:
    """A dataclass config as plain JSON values (tuples become lists), as checkpoints store it."""
    from dataclasses import asdict

    return json.loads(json.dumps(asdict(config)))


def load_resumable(
    directory: Path | str,
    config: Any,
    defaults: Any | None = None,
    may_change: tuple[str, ...] = (),
) -> dict[str, Any] | None:
    """The checkpoint in ``directory`` if there is one and it was made with ``config``.

    Args:
        directory: the checkpoint directory.
        config: the run's dataclass config.
        defaults: a default config; fields added after the checkpoint was written then count
            with their default values.
        may_change: fields that may differ from the checkpoint's (a run's budget may grow).

    Returns:
        The state, or None when there is no checkpoint.

    Raises:
        ConfigError: the checkpoint was made with another configuration (naming each field
            that differs, with both values).
    """
    from hrl_runtime.errors import ConfigError

    directory = Path(directory)
    if not (directory / STRUCTURE).exists():
        return None
    state = load_checkpoint(directory)
    stored = state["config"]
    if defaults is not None:
        stored = {**config_json(defaults), **stored}
    current = config_json(config)
    differ = [
        f"{key}: {stored.get(key)!r} in the checkpoint, {current.get(key)!r} now"
        for key in sorted(stored.keys() | current.keys())
        if key not in may_change and stored.get(key) != current.get(key)
    ]
    if differ:
        allowed = f" (only {', '.join(may_change)} may change)" if may_change else ""
        raise ConfigError(
            f"the checkpoint in {directory} was made with a different configuration "
            f"({'; '.join(differ)}); resume with the same options{allowed} or use a new --out"
        )
    return state
