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
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs
from safetensors.numpy import save_file

from hrl_runtime.checks import shorten
from hrl_runtime.errors import HrlError, IncompatibleError, PackageError, UnknownSkillError
from hrl_runtime.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    NAME_PATTERN,
    VERSION_PATTERN,
    parse_manifest,
    read_manifest,
    read_weights,
    sha256_of,
    validate_manifest,
)
from hrl_runtime.skill import PackageContents, Packaged, Skill
from hrl_runtime.spaces import box_from_json, box_to_json

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hrl_runtime.skills"

_KINDS: dict[str, type[Packaged]] = {}
_BROKEN: dict[str, str] = {}
_REPORTED: set[str] = set()


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
    """All kinds: registered in-process plus those advertised by entry points.

    A broken entry point (its module fails to import, or its class's ``kind`` differs from the
    entry's name) is isolated to the kind it declares: the other kinds load, and the reason is
    kept for the packages of that kind (:func:`broken_kinds`).
    """
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in _KINDS or entry.name in _BROKEN:
            continue
        reason = _register_entry_point(entry)
        if reason:
            _BROKEN[entry.name] = reason
            logger.warning("package kind %r is unavailable: %s", entry.name, reason)
    return dict(_KINDS)


def broken_kinds() -> dict[str, str]:
    """Kind -> why its entry point could not be used (see :func:`known_kinds`)."""
    known_kinds()
    return dict(_BROKEN)


def _register_entry_point(entry: EntryPoint) -> str:
    """Registers one entry point's class; returns why it could not be, or ``""``."""
    where = f"entry point {shorten(entry.value, 80)} in group {ENTRY_POINT_GROUP}"
    try:
        cls = entry.load()
    except Exception as error:  # third-party code may raise anything on import; kept, reported
        return f"{where} failed to load ({type(error).__name__}: {shorten(str(error), 120)})"
    declared = getattr(cls, "kind", None)
    if not (isinstance(cls, type) and issubclass(cls, Packaged)):
        return f"{where} names {shorten(cls, 80)}, which is not a Packaged class"
    if declared != entry.name:
        return (
            f"{where} is named {shorten(entry.name, 60)} but its class declares kind "
            f"{shorten(declared, 60)}; make the entry point's name equal the class's kind"
        )
    try:
        register_kind(cls)
    except ValueError as error:
        return str(error)
    return ""


def kind_class(manifest: dict[str, Any], path: Path) -> type[Packaged]:
    """The class of a manifest's ``kind``.

    Raises:
        PackageError: the kind is unknown, or its entry point is broken (with the reason).
    """
    kinds, kind = known_kinds(), manifest["kind"]
    if kind in _KINDS:
        return kinds[kind]
    if kind in _BROKEN:
        raise PackageError(
            path,
            f"kind {kind!r} is unavailable: {_BROKEN[kind]}",
            field="kind",
            fix="fix or reinstall the package that provides it",
        )
    raise PackageError(
        path,
        f"unknown kind {shorten(kind, 100)} (known: {', '.join(sorted(kinds))})",
        field="kind",
        fix=f"install the package that provides it (entry-point group {ENTRY_POINT_GROUP})",
    )


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


@dataclass(frozen=True)
class InvalidPackage:
    """A directory on the search path that holds a manifest but is not a valid package."""

    path: Path
    source: str
    name: str
    """The name its manifest gives, when it reads as a string, else the directory's name."""
    error: PackageError

    def __str__(self) -> str:
        return str(self.error)


def _report_skipped(invalid: list[InvalidPackage]) -> None:
    """Logs each invalid package that a lookup passed over, once per process."""
    for bad in invalid:
        if str(bad.path) not in _REPORTED:
            _REPORTED.add(str(bad.path))
            logger.warning("skipping invalid package: %s", bad.error)


def is_explicit_path(ref: str | Path) -> bool:
    """True when ``ref`` names a directory rather than a package on the search path."""
    if isinstance(ref, Path):
        return True
    separators = [os.sep, "/", *([os.altsep] if os.altsep else [])]
    return any(sep in ref for sep in separators) or ref.startswith((".", "~"))


def _package_directories(root: Path) -> list[Path]:
    """The directories of ``root`` that hold a ``skill.json`` (or a link by that name)."""
    try:
        children = sorted(root.iterdir()) if root.is_dir() else []
    except OSError as error:
        logger.warning("cannot list %s on the skill search path: %s", root, error)
        return []
    return [p for p in children if p.is_dir() and os.path.lexists(p / MANIFEST)]


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

    def entries(self) -> tuple[list[PackageEntry], list[InvalidPackage]]:
        """Every package on the search path, and every directory that is not a valid package.

        A directory is a package when it holds ``skill.json`` (a link there counts, and is
        refused); roots are scanned one level deep. Each invalid package is returned with its
        reason, so the valid ones are still served.
        """
        found: list[PackageEntry] = []
        invalid: list[InvalidPackage] = []
        for source, root in self.roots:
            for directory in _package_directories(root):
                try:
                    manifest = parse_manifest(directory)
                except PackageError as error:
                    invalid.append(InvalidPackage(directory, source, directory.name, error))
                    continue
                raw_name = manifest.get("name")
                hint = raw_name if isinstance(raw_name, str) else directory.name
                try:
                    validate_manifest(directory / MANIFEST, manifest)
                except PackageError as error:
                    invalid.append(InvalidPackage(directory, source, hint, error))
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
        return found, invalid

    def list(self) -> list[PackageEntry]:
        """Valid packages, sorted by name then version (invalid ones are logged once)."""
        found, invalid = self.entries()
        _report_skipped(invalid)
        return sorted(found, key=lambda e: (e.name, version_key(e.version)))

    def resolve(self, ref: str) -> PackageEntry:
        """Finds ``name`` (highest version) or ``name@version`` on the search path.

        Raises:
            PackageError: the only package of that name is invalid (with its reason), or the
                same name@version is in two places.
            UnknownSkillError: nothing matches.
        """
        name, _, version = ref.partition("@")
        found, invalid = self.entries()
        matches = [e for e in found if e.name == name and (not version or e.version == version)]
        if not matches:
            for bad in invalid:
                if name in (bad.name, bad.path.name):
                    raise bad.error
            known = sorted({e.ref for e in found})
            raise UnknownSkillError(
                f"no package {shorten(ref, 120)} on the search path (known: "
                f"{', '.join(known) or 'none'}); check the name with `hrl skills list`, or add "
                "the directory that holds the package's directory to $HRL_SKILLS_PATH"
            )
        _report_skipped(invalid)
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
        """Loads ``name``, ``name@version`` or a package directory, verifying it first.

        A bare name is looked up on the search path only, never in the current directory; a
        directory is meant when ``ref`` is a :class:`~pathlib.Path` or a string holding a path
        separator or starting with ``.`` or ``~`` (``./my-skill``, ``~/skills/x``).
        """
        if is_explicit_path(ref):
            return load_package(Path(ref).expanduser())
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


def check_package(directory: Path) -> tuple[type[Packaged], PackageContents]:
    """Everything ``load`` checks, without building anything: the manifest's schema, the kind,
    the weight files (links, hashes, names, shapes, dtypes, finite values), then the kind's
    :meth:`~hrl_runtime.skill.Packaged.check_package` (its config against the spaces and shapes).

    Returns:
        The kind's class and the verified contents, tensors included.

    Raises:
        PackageError: the first problem found.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    cls = kind_class(manifest, directory / MANIFEST)
    spaces = {key: box_from_json(spec, f"spaces.{key}") for key, spec in manifest["spaces"].items()}
    tensors = read_weights(directory, manifest)
    contents = PackageContents(str(directory), manifest, spaces, tensors)
    _guarded(cls, "check", lambda: cls.check_package(contents), contents)
    return cls, contents


def load_package(directory: Path) -> Packaged:
    """Verifies (:func:`check_package`) and loads the package in ``directory``.

    Raises:
        PackageError: anything that does not verify, or a package its kind cannot build.
    """
    cls, contents = check_package(directory)
    obj = _guarded(cls, "build", lambda: cls.from_package(contents), contents)
    if isinstance(obj, Skill):
        obj.name, obj.version = contents.manifest["name"], contents.manifest["version"]
    return obj


def _guarded(cls: type[Packaged], action: str, call: Any, contents: PackageContents) -> Any:
    """Runs a kind's hook; an error that is not an :class:`HrlError` becomes a PackageError.

    A kind whose ``check_package`` misses a case would otherwise fail deep inside a network
    constructor with a KeyError, TypeError or size mismatch that names no file.
    """
    try:
        return call()
    except HrlError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as error:
        raise PackageError(
            contents.manifest_path,
            f"kind {cls.kind!r} could not {action} this package's config "
            f"({type(error).__name__}: {shorten(str(error), 160)})",
            field="config",
            fix=f"re-export the package, or make {cls.__qualname__}.check_package refuse it",
        ) from error


def verify_package(directory: Path) -> dict[str, Any]:
    """Runs every check ``load`` runs (:func:`check_package`); returns a JSON-ready report.

    Raises:
        PackageError: the first problem found.
    """
    _, contents = check_package(Path(directory))
    manifest = contents.manifest
    return {
        "path": str(directory),
        "name": manifest["name"],
        "version": manifest["version"],
        "kind": manifest["kind"],
        "kind_known": True,
        "files": {
            f"{stem}.safetensors": {
                "tensors": len(t),
                "parameters": int(sum(a.size for a in t.values())),
            }
            for stem, t in contents.tensors.items()
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
