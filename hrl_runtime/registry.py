"""The skill registry: save, find, verify and load skill (and policy) packages.

A package is a directory holding ``skill.json`` (the manifest) and ``*.safetensors`` weight
files. Loading verifies everything before any object is built: the manifest's fields, the SHA-256
of every weight file, and the name, shape and dtype of every tensor (the checks live in
:mod:`hrl_runtime.manifest`, and :func:`read_manifest`, :func:`read_weights` and
:func:`sha256_of` are importable from here too). Nothing is ever unpickled.

Packages are found by ``name`` or ``name@version`` on a search path: the skills shipped with the
project, then each directory of ``$HRL_SKILLS_PATH``, then the user data directory. Package kinds
map to classes through :func:`register_kind` and the entry-point group ``hrl_runtime.skills``.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs
from safetensors.numpy import save_file

from hrl_runtime.errors import IncompatibleError, PackageError, UnknownSkillError
from hrl_runtime.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    NAME_PATTERN,
    VERSION_PATTERN,
    read_manifest,
    read_weights,
    sha256_of,
)
from hrl_runtime.skill import PackageContents, Packaged, Skill
from hrl_runtime.spaces import box_from_json, box_to_json

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hrl_runtime.skills"

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
