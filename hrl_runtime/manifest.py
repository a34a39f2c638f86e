"""The on-disk package format: read and validate ``skill.json`` and its safetensors weight files.

A package is a directory holding ``skill.json`` (the manifest) and ``*.safetensors`` weight
files. Everything here verifies before anything is built: the manifest against its schema (types,
sizes, nesting depth, lengths), the SHA-256 of every weight file, and the name, shape, dtype and
finiteness of every tensor. Nothing is ever unpickled.

A package is trusted no further than its own regular files: a manifest or weight file that is a
symbolic link (to another package, ``/etc/passwd``, ``/dev/zero`` ...) or not a regular file (a
FIFO, a device) is refused by its ``lstat`` before it is opened, and opened with ``O_NOFOLLOW``;
each file is read once, and what was hashed is what is parsed.
:mod:`hrl_runtime.registry` finds, loads and saves packages on top of these checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors

from hrl_runtime.checks import shorten
from hrl_runtime.errors import ConfigError, PackageError
from hrl_runtime.package_schema import MANIFEST, MAX_DEPTH, Fields, field_name, nesting_depth
from hrl_runtime.skill import COMPONENTS
from hrl_runtime.spaces import box_from_json

__all__ = ["MANIFEST", "read_manifest", "read_weights", "sha256_of"]

FORMAT_VERSION = 1
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
VERSION_PATTERN = re.compile(r"^\d{1,9}(\.\d{1,9}){0,3}$")
TENSOR_DTYPES = {"float32", "float64", "int64", "int32", "uint8", "bool"}
MAX_MANIFEST_BYTES = 1 << 20
"""Largest ``skill.json`` read (the shipped ones are under 8 KB)."""
MAX_WEIGHT_BYTES = 1 << 31
"""Largest weight file read (2 GiB)."""
MAX_FILES = 64
"""Most weight files (and spaces) a manifest may list."""
MAX_TENSORS = 4096
"""Most tensors one weight file may hold."""
MAX_TEXT = 10_000
"""Longest free text (``description``) a manifest may hold."""
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save archives hold a pickle
_REGENERATE = "re-export the package with SkillRegistry.save"
_FILE_TYPES = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_package_file(path: Path, limit: int, listed_in: Path, field: str | None = None) -> bytes:
    """The bytes of a regular file inside a package, never following a link out of it.

    Args:
        path: The file.
        limit: Most bytes accepted.
        listed_in: The file that names ``path`` (for the "does not exist" error).
        field: The manifest field naming it, if any.

    Raises:
        PackageError: ``path`` is missing, a symbolic link, not a regular file, larger than
            ``limit``, or unreadable.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise PackageError(
            listed_in, f"lists {path.name} which does not exist", field=field
        ) from None
    except OSError as error:
        raise PackageError(path, f"cannot be read ({error.strerror})", field=field) from None
    if stat.S_ISLNK(info.st_mode):
        raise PackageError(
            path,
            "is a symbolic link; a package holds only regular files and the registry never "
            "follows a link out of it",
            field=field,
            fix="copy the file into the package in place of the link",
        )
    if not stat.S_ISREG(info.st_mode):
        kind = _FILE_TYPES.get(stat.S_IFMT(info.st_mode), "not a regular file")
        raise PackageError(
            path, f"is {kind}, not a regular file", field=field, fix="put the file itself there"
        )
    if info.st_size > limit:
        raise PackageError(
            path, f"is {info.st_size} bytes, more than the {limit} accepted", field=field
        )
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as error:  # replaced by a link or removed since the lstat
        raise PackageError(path, f"cannot be opened ({error.strerror})", field=field) from None
    with os.fdopen(descriptor, "rb") as handle:
        if os.fstat(handle.fileno()).st_ino != info.st_ino:
            raise PackageError(path, "changed while it was read", field=field)
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise PackageError(path, f"grew past the {limit} bytes accepted", field=field)
    return data


def read_manifest(directory: Path) -> dict[str, Any]:
    """Reads and validates ``skill.json`` in ``directory`` (weights are not touched).

    Raises:
        PackageError: naming the file and the field at fault.
    """
    manifest = parse_manifest(Path(directory))
    validate_manifest(Path(directory) / MANIFEST, manifest)
    return manifest


def parse_manifest(directory: Path) -> dict[str, Any]:
    """The manifest file parsed as a JSON object, bounded in size and nesting (not validated).

    Raises:
        PackageError: no directory, no regular manifest file, too large, too deep, not JSON.
    """
    path = directory / MANIFEST
    if not directory.is_dir():
        raise PackageError(directory, "is not a directory", fix="pass a package directory")
    if not os.path.lexists(path):
        raise PackageError(path, "manifest is missing", fix=f"every package needs {MANIFEST}")
    data = read_package_file(path, MAX_MANIFEST_BYTES, path)
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PackageError(path, f"is not valid JSON ({error})", fix=_REGENERATE) from None
    except RecursionError:
        manifest = None
    if manifest is None or nesting_depth(manifest) > MAX_DEPTH:
        raise PackageError(
            path, f"nests objects and lists more than {MAX_DEPTH} deep", fix=_REGENERATE
        )
    if not isinstance(manifest, dict):
        raise PackageError(path, "must be a JSON object", field="<root>", fix=_REGENERATE)
    return manifest


def validate_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Checks a parsed manifest against the package schema.

    Raises:
        PackageError: naming the field at fault.
    """
    root = Fields(path, manifest, fix=_REGENERATE)
    role = _check_identity(root)
    _check_spaces(root, role)
    weights = root.section("weights").data
    if len(weights) > MAX_FILES:
        raise root.error("weights", f"lists {len(weights)} files, more than {MAX_FILES}")
    for filename, entry in weights.items():
        _check_weight_entry(path, filename, entry)
    _check_components(root, weights)
    for key in ("config", "training", "metrics"):
        if key in manifest:
            root.section(key)


def _check_identity(root: Fields) -> str:
    """Checks format_version, name, version, kind, role and description; returns the role."""
    version = root.value("format_version", None)
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise root.error("format_version", f"expected {FORMAT_VERSION}, got {shorten(version)}")
    for key, pattern in (("name", NAME_PATTERN), ("version", VERSION_PATTERN)):
        value = root.value(key, None)
        if not (isinstance(value, str) and pattern.match(value)):
            raise root.error(
                key, f"invalid {key} {shorten(value)} (expected to match {pattern.pattern})"
            )
    root.text("kind", max_length=100)
    root.text("description", max_length=MAX_TEXT, default="")
    return root.text("role", max_length=10, default="skill", choices=("skill", "policy"))


def _check_spaces(root: Fields, role: str) -> None:
    """Checks the spaces (all three for a skill) and, for a skill, hold_steps."""
    spaces = root.section("spaces")
    if len(spaces.data) > MAX_FILES:
        raise root.error("spaces", f"lists {len(spaces.data)} spaces, more than {MAX_FILES}")
    for name, spec in spaces.data.items():
        try:
            box_from_json(spec, field_name("spaces", name))
        except ConfigError as error:  # "<field> <problem>": the field goes in brackets
            field, _, problem = str(error).partition(" ")
            raise PackageError(root.path, problem, field=field.rstrip(":"), fix=root.fix) from None
    if role == "skill":
        for name in ("observation", "command", "action"):
            if name not in spaces.data:
                raise spaces.error(name, "missing (skills declare all three)")
        root.integer("hold_steps", 1, 1_000_000)


def _check_weight_entry(path: Path, filename: str, entry: Any) -> None:
    """Checks one ``weights`` entry: a plain file name, its SHA-256 and its tensor specs."""
    field = field_name("weights", filename)
    if not (
        len(filename) <= 128
        and filename.endswith(".safetensors")
        and Path(filename).name == filename
        and filename not in (".safetensors", "..safetensors")
    ):
        raise PackageError(
            path,
            "weight files must be plain *.safetensors file names (at most 128 characters) in "
            "the package directory",
            field=field,
            fix=_REGENERATE,
        )
    weights = Fields(path, entry, field, _REGENERATE)
    digest = weights.value("sha256", None)
    if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
        raise weights.error("sha256", f"must be 64 lowercase hex digits, got {shorten(digest)}")
    tensors = weights.section("tensors")
    if len(tensors.data) > MAX_TENSORS:
        raise weights.error(
            "tensors", f"lists {len(tensors.data)} tensors, more than {MAX_TENSORS}"
        )
    for name in tensors.data:
        spec = tensors.section(name)
        spec.keys(("shape", "dtype"))
        spec.integers("shape", 0, 2**31 - 1, max_length=8)
        spec.text("dtype", choices=TENSOR_DTYPES)


def _check_components(root: Fields, weights: dict[str, Any]) -> None:
    """Checks that each component is known and names a listed weight file (or null)."""
    components = root.section("components") if "components" in root.data else None
    stems = {Path(name).stem for name in weights}
    known = ["policy", *COMPONENTS]
    for name, stem in (components.data if components else {}).items():
        if name not in known:
            raise components.error(name, f"unknown component; expected one of {known}")
        if stem is not None and (not isinstance(stem, str) or stem not in stems):
            raise components.error(
                name,
                f"must be null or the stem of a file listed under weights ({sorted(stems)}), "
                f"got {shorten(stem)}",
            )


def _pickle_refusal(head: bytes, size: int, path: Path) -> PackageError | None:
    """The refusal of a file that starts like a pickle or a zip archive, else None.

    A safetensors file starts with its header length (u64, little endian) and then ``{``; that
    layout is accepted first, since a length such as 640 (``80 02 ...``) looks like a pickle's
    protocol marker.
    """
    if len(head) >= 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= size - 8:
        return None
    if head[:2] in _PICKLE_MAGIC or head[:4] == _ZIP_MAGIC:
        return PackageError(
            path,
            "is a Python pickle (or a torch.save archive), not safetensors; it was not opened "
            "because hrl-runtime never unpickles",
            fix="export the weights with safetensors (SkillRegistry.save)",
        )
    return None


def check_not_pickle(path: Path) -> None:
    """Refuses pickles and ``torch.save`` archives by their header, without unpickling them.

    Args:
        path: The weight file.

    Raises:
        PackageError: The file starts like a pickle or a zip archive.
    """
    with open(path, "rb") as handle:
        head = handle.read(9)
    refusal = _pickle_refusal(head, path.stat().st_size, path)
    if refusal is not None:
        raise refusal


def read_weights(directory: Path, manifest: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """Verifies and reads every weight file the manifest lists.

    Returns:
        tensors by file stem.

    Raises:
        PackageError: a missing file, a link or non-regular file, a pickle, a hash mismatch, an
            unreadable file, tensors whose names, shapes or dtypes differ from the manifest, or
            non-finite values.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    for filename, entry in manifest["weights"].items():
        path = Path(directory) / filename
        field = f"weights.{filename}"
        data = read_package_file(path, MAX_WEIGHT_BYTES, Path(directory) / MANIFEST, field)
        refusal = _pickle_refusal(data[:9], len(data), path)
        if refusal is not None:
            raise refusal
        actual = hashlib.sha256(data).hexdigest()
        if actual != entry["sha256"]:
            raise PackageError(
                path,
                f"SHA-256 mismatch: manifest has {entry['sha256'][:16]}..., file has "
                f"{actual[:16]}...; the file was modified or corrupted",
                field=f"{field}.sha256",
                fix="restore the original file or re-export the package",
            )
        try:
            tensors = load_safetensors(data)
        except (SafetensorError, OSError, ValueError) as error:
            raise PackageError(path, f"is not a readable safetensors file ({error})") from None
        _check_tensors(path, field, entry["tensors"], tensors)
        out[path.stem] = tensors
    return out


def _check_tensors(
    path: Path, field: str, expected: dict[str, Any], tensors: dict[str, np.ndarray]
) -> None:
    """Refuses tensors whose names, shapes or dtypes differ from ``expected``, or non-finite."""
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise PackageError(
            path,
            f"tensors differ from the manifest: missing {shorten(missing)}, "
            f"unexpected {shorten(extra)}",
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
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            raise PackageError(
                path,
                f"tensor {key!r} holds {bad} NaN or infinite values of {array.size}",
                field=f"{field}.tensors.{key}",
                fix="retrain or re-export the package from finite weights",
            )
