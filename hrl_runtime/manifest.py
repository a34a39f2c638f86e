"""The on-disk package format: read and validate ``skill.json`` and its safetensors weight files.

A package is a directory holding ``skill.json`` (the manifest) and ``*.safetensors`` weight
files. Everything here verifies before anything is built: the manifest's fields, the SHA-256 of
every weight file, and the name, shape and dtype of every tensor. Nothing is ever unpickled.
:mod:`hrl_runtime.registry` finds, loads and saves packages on top of these checks.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open

from hrl_runtime.errors import PackageError
from hrl_runtime.skill import COMPONENTS
from hrl_runtime.spaces import box_from_json

MANIFEST = "skill.json"
FORMAT_VERSION = 1
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
VERSION_PATTERN = re.compile(r"^\d+(\.\d+){0,3}$")
TENSOR_DTYPES = {"float32", "float64", "int64", "int32", "uint8", "bool"}
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save archives hold a pickle
_REGENERATE = "re-export the package with SkillRegistry.save"


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _require(condition: bool, path: Path, field: str, problem: str, fix: str = "") -> None:
    if not condition:
        raise PackageError(path, problem, field=field, fix=fix)


def read_manifest(directory: Path) -> dict[str, Any]:
    """Reads and validates ``skill.json`` in ``directory`` (weights are not touched).

    Raises:
        PackageError: naming the file and the field at fault.
    """
    path = Path(directory) / MANIFEST
    manifest = _read_json(Path(directory), path)
    role = _check_identity(path, manifest)
    _check_spaces(path, manifest, role)
    weights = manifest.get("weights")
    _require(isinstance(weights, dict), path, "weights", "missing or not an object")
    for filename, entry in weights.items():
        _check_weight_entry(path, filename, entry)
    _check_components(path, manifest.get("components", {}), weights)
    for key in ("config", "training", "metrics"):
        _require(isinstance(manifest.get(key, {}), dict), path, key, "must be an object")
    return manifest


def _read_json(directory: Path, path: Path) -> dict[str, Any]:
    """The manifest file parsed as a JSON object."""
    if not directory.is_dir():
        raise PackageError(directory, "is not a directory", fix="pass a package directory")
    if not path.is_file():
        raise PackageError(path, "manifest is missing", fix=f"every package needs {MANIFEST}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PackageError(path, f"is not valid JSON ({error})", fix=_REGENERATE) from None
    _require(isinstance(manifest, dict), path, "<root>", "must be a JSON object", _REGENERATE)
    return manifest


def _check_identity(path: Path, manifest: dict[str, Any]) -> str:
    """Checks format_version, name, version, kind and role; returns the role."""
    _require(
        manifest.get("format_version") == FORMAT_VERSION,
        path,
        "format_version",
        f"expected {FORMAT_VERSION}, got {manifest.get('format_version')!r}",
        _REGENERATE,
    )
    for key, pattern in (("name", NAME_PATTERN), ("version", VERSION_PATTERN)):
        value = manifest.get(key)
        _require(
            isinstance(value, str) and bool(pattern.match(value)),
            path,
            key,
            f"invalid {key} {value!r} (expected to match {pattern.pattern})",
        )
    _require(isinstance(manifest.get("kind"), str), path, "kind", "missing or not a string")
    role = manifest.get("role", "skill")
    _require(role in ("skill", "policy"), path, "role", f"must be skill or policy, got {role!r}")
    return role


def _check_spaces(path: Path, manifest: dict[str, Any], role: str) -> None:
    """Checks the spaces (all three for a skill) and, for a skill, hold_steps."""
    spaces = manifest.get("spaces")
    _require(isinstance(spaces, dict), path, "spaces", "missing or not an object")
    for name, spec in spaces.items():
        try:
            box_from_json(spec, f"spaces.{name}")
        except ValueError as error:
            raise PackageError(path, str(error), field=f"spaces.{name}") from None
    if role == "skill":
        for name in ("observation", "command", "action"):
            _require(name in spaces, path, f"spaces.{name}", "missing (skills declare all three)")
        hold = manifest.get("hold_steps")
        _require(
            isinstance(hold, int) and not isinstance(hold, bool) and hold >= 1,
            path,
            "hold_steps",
            f"must be an integer >= 1, got {hold!r}",
        )


def _check_weight_entry(path: Path, filename: str, entry: Any) -> None:
    """Checks one ``weights`` entry: a plain file name, its SHA-256 and its tensor specs."""
    field = f"weights.{filename}"
    _require(
        filename.endswith(".safetensors") and Path(filename).name == filename,
        path,
        field,
        "weight files must be plain *.safetensors file names in the package directory",
    )
    _require(isinstance(entry, dict), path, field, "must be an object")
    digest = entry.get("sha256")
    _require(
        isinstance(digest, str) and bool(re.fullmatch(r"[0-9a-f]{64}", digest)),
        path,
        f"{field}.sha256",
        f"must be 64 lowercase hex digits, got {digest!r}",
    )
    tensors = entry.get("tensors")
    _require(isinstance(tensors, dict), path, f"{field}.tensors", "missing or not an object")
    for tensor_name, spec in tensors.items():
        _require(
            isinstance(spec, dict)
            and isinstance(spec.get("shape"), list)
            and all(isinstance(n, int) and n >= 0 for n in spec["shape"])
            and spec.get("dtype") in TENSOR_DTYPES,
            path,
            f"{field}.tensors.{tensor_name}",
            f"needs shape (list of ints) and dtype in {sorted(TENSOR_DTYPES)}, got {spec!r}",
        )


def _check_components(path: Path, components: Any, weights: dict[str, Any]) -> None:
    """Checks that each component is known and names a listed weight file (or None)."""
    _require(isinstance(components, dict), path, "components", "must be an object")
    stems = {Path(name).stem for name in weights}
    for name, stem in components.items():
        _require(
            name in (*COMPONENTS, "policy"),
            path,
            f"components.{name}",
            f"unknown component; expected one of {['policy', *COMPONENTS]}",
        )
        _require(
            stem is None or stem in stems,
            path,
            f"components.{name}",
            f"names weight file {stem!r}.safetensors which is not listed under weights",
        )


def check_not_pickle(path: Path) -> None:
    """Refuses pickles and ``torch.save`` archives by their header, without opening them.

    A safetensors file starts with its header length (u64, little endian) and then ``{``; that
    layout is accepted first, since a length such as 640 (``80 02 ...``) looks like a pickle's
    protocol marker.

    Args:
        path: The weight file.

    Raises:
        PackageError: The file starts like a pickle or a zip archive.
    """
    with open(path, "rb") as handle:
        head = handle.read(9)
    size = path.stat().st_size
    if len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= size - 8:
        return
    if head[:2] in _PICKLE_MAGIC or head[:4] == _ZIP_MAGIC:
        raise PackageError(
            path,
            "is a Python pickle (or a torch.save archive), not safetensors; it was not opened "
            "because hrl-runtime never unpickles",
            fix="export the weights with safetensors (SkillRegistry.save)",
        )


def read_weights(directory: Path, manifest: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """Verifies and reads every weight file the manifest lists.

    Returns:
        tensors by file stem.

    Raises:
        PackageError: a missing file, a pickle, a hash mismatch, an unreadable file, or tensors
            whose names, shapes or dtypes differ from the manifest.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    for filename, entry in manifest["weights"].items():
        path = Path(directory) / filename
        field = f"weights.{filename}"
        if not path.is_file():
            raise PackageError(
                Path(directory) / MANIFEST, f"lists {filename} which does not exist", field=field
            )
        check_not_pickle(path)
        actual = sha256_of(path)
        if actual != entry["sha256"]:
            raise PackageError(
                path,
                f"SHA-256 mismatch: manifest has {entry['sha256'][:16]}..., file has "
                f"{actual[:16]}...; the file was modified or corrupted",
                field=f"{field}.sha256",
                fix="restore the original file or re-export the package",
            )
        try:
            with safe_open(str(path), framework="numpy") as handle:
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        except (SafetensorError, OSError, ValueError) as error:
            raise PackageError(path, f"is not a readable safetensors file ({error})") from None
        expected = entry["tensors"]
        missing = sorted(set(expected) - set(tensors))
        extra = sorted(set(tensors) - set(expected))
        if missing or extra:
            raise PackageError(
                path,
                f"tensors differ from the manifest: missing {missing}, unexpected {extra}",
                field=f"{field}.tensors",
            )
        for key, spec in expected.items():
            array = tensors[key]
            if list(array.shape) != spec["shape"] or array.dtype.name != spec["dtype"]:
                raise PackageError(
                    path,
                    f"tensor {key!r} is {array.dtype.name}{list(array.shape)}, the manifest says "
                    f"{spec['dtype']}{spec['shape']}",
                    field=f"{field}.tensors.{key}",
                )
        out[path.stem] = tensors
    return out
