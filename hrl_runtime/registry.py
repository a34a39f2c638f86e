"""The skill registry: save, find, verify and load skill (and policy) packages.

A package is a directory holding ``skill.json`` (the manifest) and ``*.safetensors`` weight
files. Loading verifies everything before any object is built: the manifest's fields, the SHA-256
of every weight file, and the name, shape and dtype of every tensor. Nothing is ever unpickled.

Packages are found by ``name`` or ``name@version`` on a search path: the skills shipped with the
project, then each directory of ``$HRL_SKILLS_PATH``, then the user data directory. Package kinds
map to classes through :func:`register_kind` and the entry-point group ``hrl_runtime.skills``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
import os
import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from hrl_runtime.errors import IncompatibleError, PackageError, UnknownSkillError
from hrl_runtime.skill import COMPONENTS, PackageContents, Packaged, Skill
from hrl_runtime.spaces import box_from_json, box_to_json

logger = logging.getLogger(__name__)

MANIFEST = "skill.json"
FORMAT_VERSION = 1
ENTRY_POINT_GROUP = "hrl_runtime.skills"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
VERSION_PATTERN = re.compile(r"^\d+(\.\d+){0,3}$")
TENSOR_DTYPES = {"float32", "float64", "int64", "int32", "uint8", "bool"}
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save archives hold a pickle

_KINDS: dict[str, type[Packaged]] = {}


def register_kind(cls: type[Packaged]) -> type[Packaged]:
    """Registers a package kind (usable as a class decorator).

    Raises:
        ValueError: when another class already owns the kind.
    """
    existing = _KINDS.get(cls.kind)
    if existing is not None and existing is not cls:
        raise ValueError(
            f"package kind {cls.kind!r} is already registered by "
            f"{existing.__module__}.{existing.__qualname__}; choose another kind name"
        )
    _KINDS[cls.kind] = cls
    return cls


def known_kinds() -> dict[str, type[Packaged]]:
    """All kinds: registered in-process plus those advertised by entry points."""
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in _KINDS:
            continue
        cls = entry.load()
        if getattr(cls, "kind", None) != entry.name:
            raise ValueError(
                f"entry point {entry.value!r} in group {ENTRY_POINT_GROUP} is named "
                f"{entry.name!r} but its class declares kind {getattr(cls, 'kind', None)!r}"
            )
        register_kind(cls)
    return dict(_KINDS)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def version_key(version: str) -> tuple[int, ...]:
    """Sort key for dotted versions: ``"1.10" > "1.9"``."""
    return tuple(int(part) for part in version.split("."))


@dataclass(frozen=True)
class PackageEntry:
    """A package found on the search path."""

    name: str
    version: str
    kind: str
    role: str
    path: Path
    source: str
    manifest: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def default_search_path() -> list[tuple[str, Path]]:
    """(source label, directory) pairs in search order: shipped, $HRL_SKILLS_PATH, user data."""
    roots: list[tuple[str, Path]] = []
    try:
        shipped = importlib.resources.files("skill_library").joinpath("pretrained")
        roots.append(("shipped", Path(str(shipped))))
    except ModuleNotFoundError:
        logger.debug("skill_library is not installed; no shipped skills")
    for part in os.environ.get("HRL_SKILLS_PATH", "").split(os.pathsep):
        if part.strip():
            roots.append(("HRL_SKILLS_PATH", Path(part).expanduser()))
    roots.append(("user", Path(platformdirs.user_data_dir("hrl-runtime")) / "skills"))
    return roots


def _require(condition: bool, path: Path, field: str, problem: str, fix: str = "") -> None:
    if not condition:
        raise PackageError(path, problem, field=field, fix=fix)


def read_manifest(directory: Path) -> dict[str, Any]:
    """Reads and validates ``skill.json`` in ``directory`` (weights are not touched).

    Raises:
        PackageError: naming the file and the field at fault.
    """
    path = Path(directory) / MANIFEST
    regenerate = "re-export the package with SkillRegistry.save"
    if not Path(directory).is_dir():
        raise PackageError(directory, "is not a directory", fix="pass a package directory")
    if not path.is_file():
        raise PackageError(path, "manifest is missing", fix=f"every package needs {MANIFEST}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PackageError(path, f"is not valid JSON ({error})", fix=regenerate) from None
    _require(isinstance(manifest, dict), path, "<root>", "must be a JSON object", regenerate)
    _require(
        manifest.get("format_version") == FORMAT_VERSION,
        path,
        "format_version",
        f"expected {FORMAT_VERSION}, got {manifest.get('format_version')!r}",
        regenerate,
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
    weights = manifest.get("weights")
    _require(isinstance(weights, dict), path, "weights", "missing or not an object")
    for filename, entry in weights.items():
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
            tfield = f"{field}.tensors.{tensor_name}"
            _require(
                isinstance(spec, dict)
                and isinstance(spec.get("shape"), list)
                and all(isinstance(n, int) and n >= 0 for n in spec["shape"])
                and spec.get("dtype") in TENSOR_DTYPES,
                path,
                tfield,
                f"needs shape (list of ints) and dtype in {sorted(TENSOR_DTYPES)}, got {spec!r}",
            )
    components = manifest.get("components", {})
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
    for key in ("config", "training", "metrics"):
        _require(isinstance(manifest.get(key, {}), dict), path, key, "must be an object")
    return manifest


def _check_not_pickle(path: Path) -> None:
    """Refuses pickles and ``torch.save`` archives by their header, without opening them.

    A safetensors file starts with its header length (u64, little endian) and then ``{``; that
    layout is accepted first, since a length such as 640 (``80 02 ...``) looks like a pickle's
    protocol marker.
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
        _check_not_pickle(path)
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


class SkillRegistry:
    """Finds, verifies, loads and saves packages.

    Args:
        search_path: directories to search in order; defaults to :func:`default_search_path`.
    """

    def __init__(self, search_path: list[Path | str] | None = None):
        if search_path is None:
            self.roots = default_search_path()
        else:
            self.roots = [("custom", Path(p)) for p in search_path]

    def entries(self) -> tuple[list[PackageEntry], list[PackageError]]:
        """Every package on the search path, and the errors of the directories that did not read.

        A directory is a package when it holds ``skill.json``; roots are scanned one level deep.
        """
        found: list[PackageEntry] = []
        errors: list[PackageError] = []
        for source, root in self.roots:
            if not root.is_dir():
                continue
            for directory in sorted(p for p in root.iterdir() if (p / MANIFEST).exists()):
                try:
                    manifest = read_manifest(directory)
                except PackageError as error:
                    errors.append(error)
                    continue
                found.append(
                    PackageEntry(
                        name=manifest["name"],
                        version=manifest["version"],
                        kind=manifest["kind"],
                        role=manifest.get("role", "skill"),
                        path=directory,
                        source=source,
                        manifest=manifest,
                    )
                )
        return found, errors

    def list(self) -> list[PackageEntry]:
        """Packages that read, sorted by name then version."""
        found, errors = self.entries()
        for error in errors:
            logger.warning("skipping unreadable package: %s", error)
        return sorted(found, key=lambda e: (e.name, version_key(e.version)))

    def resolve(self, ref: str) -> PackageEntry:
        """Finds ``name`` (highest version) or ``name@version``.

        Raises:
            UnknownSkillError: nothing matches.
            PackageError: the same name@version is in two places.
        """
        name, _, version = ref.partition("@")
        found, _ = self.entries()
        matches = [e for e in found if e.name == name and (not version or e.version == version)]
        if not matches:
            known = sorted({e.ref for e in found})
            raise UnknownSkillError(
                f"no package {ref!r} on the search path (known: {', '.join(known) or 'none'}); "
                "check the name with `hrl skills list`, or add its directory to $HRL_SKILLS_PATH"
            )
        best = max(version_key(e.version) for e in matches)
        chosen = [e for e in matches if version_key(e.version) == best]
        if len(chosen) > 1:
            places = " and ".join(str(e.path) for e in chosen)
            raise PackageError(
                chosen[1].path / MANIFEST,
                f"duplicate package {chosen[0].ref}: found in {places}",
                field="version",
                fix="remove one copy or give one a new version",
            )
        return chosen[0]

    def load(self, ref: str | Path) -> Packaged:
        """Loads ``name``, ``name@version`` or a package directory, verifying it first."""
        if isinstance(ref, Path) or os.sep in str(ref) or Path(ref, MANIFEST).exists():
            return load_package(Path(ref))
        return load_package(self.resolve(str(ref)).path)

    def save(
        self,
        obj: Packaged,
        directory: Path | str,
        *,
        name: str,
        version: str = "1.0.0",
        description: str = "",
        training: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Writes ``obj`` as a package into ``directory`` and returns it.

        Raises:
            PackageError: invalid name/version, an existing package there (without
                ``overwrite``), or the same name@version elsewhere on the search path.
        """
        directory = Path(directory)
        if not NAME_PATTERN.match(name):
            raise PackageError(directory, f"invalid name {name!r}", field="name")
        if not VERSION_PATTERN.match(version):
            raise PackageError(directory, f"invalid version {version!r}", field="version")
        if (directory / MANIFEST).exists() and not overwrite:
            raise PackageError(
                directory / MANIFEST, "a package already exists here", fix="pass overwrite=True"
            )
        found, _ = self.entries()
        for entry in found:
            same_place = entry.path.resolve() == directory.resolve()
            if entry.name == name and entry.version == version and not same_place:
                raise PackageError(
                    entry.path / MANIFEST,
                    f"duplicate package {name}@{version} already exists here",
                    field="version",
                    fix="bump the version or remove the existing package",
                )
        directory.mkdir(parents=True, exist_ok=True)
        weights: dict[str, Any] = {}
        for stem, tensors in obj.package_tensors().items():
            arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
            filename = f"{stem}.safetensors"
            save_file(arrays, str(directory / filename))
            weights[filename] = {
                "sha256": sha256_of(directory / filename),
                "tensors": {
                    k: {"shape": list(v.shape), "dtype": v.dtype.name} for k, v in arrays.items()
                },
            }
        manifest: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "name": name,
            "version": version,
            "kind": obj.kind,
            "role": obj.role,
            "description": description,
            "spaces": {key: box_to_json(space) for key, space in obj.package_spaces().items()},
            **obj.package_extra(),
            "components": obj.package_components(),
            "weights": weights,
            "config": obj.package_config(),
            "training": training or {},
            "metrics": metrics or {},
        }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        read_manifest(directory)  # what we write must read back
        return directory


def load_package(directory: Path) -> Packaged:
    """Verifies and loads the package in ``directory``.

    Raises:
        PackageError: anything that does not verify (see :func:`read_manifest`,
            :func:`read_weights`) or an unknown kind.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    kinds = known_kinds()
    cls = kinds.get(manifest["kind"])
    if cls is None:
        raise PackageError(
            directory / MANIFEST,
            f"unknown kind {manifest['kind']!r} (known: {', '.join(sorted(kinds))})",
            field="kind",
            fix=f"install the package that provides it (entry-point group {ENTRY_POINT_GROUP})",
        )
    spaces = {key: box_from_json(spec, f"spaces.{key}") for key, spec in manifest["spaces"].items()}
    tensors = read_weights(directory, manifest)
    contents = PackageContents(
        path=str(directory), manifest=manifest, spaces=spaces, tensors=tensors
    )
    obj = cls.from_package(contents)
    if isinstance(obj, Skill):
        obj.name, obj.version = manifest["name"], manifest["version"]
    return obj


def verify_package(directory: Path) -> dict[str, Any]:
    """Checks a package without building it; returns a JSON-ready report.

    Raises:
        PackageError: the first problem found.
    """
    manifest = read_manifest(Path(directory))
    tensors = read_weights(Path(directory), manifest)
    return {
        "path": str(directory),
        "name": manifest["name"],
        "version": manifest["version"],
        "kind": manifest["kind"],
        "kind_known": manifest["kind"] in known_kinds(),
        "files": {
            f"{stem}.safetensors": {
                "tensors": len(t),
                "parameters": int(sum(a.size for a in t.values())),
            }
            for stem, t in tensors.items()
        },
        "ok": True,
    }


def load_skill(ref: str | Path, registry: SkillRegistry | None = None) -> Skill:
    """Loads a package that must be a :class:`~hrl_runtime.skill.Skill` (not a policy).

    Args:
        ref: ``name``, ``name@version`` or a package directory.
        registry: where to look (default: the standard search path).

    Raises:
        IncompatibleError: the package is not a skill.
    """
    skill = (registry or SkillRegistry()).load(ref)
    if not isinstance(skill, Skill):
        raise IncompatibleError(f"{str(ref)!r} is a {type(skill).__name__}, not a skill")
    return skill
