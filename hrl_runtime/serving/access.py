"""What ``init`` may load: the skill allow-list of the policy server (``hrl serve --skills``).

A client names a skill; it never hands the server a directory. With an allow-list, every entry
(``NAME`` or ``NAME@VERSION``) is resolved through the registry's search path once, when the
server starts, and ``init`` loads only those package directories: ``NAME`` means the highest
listed version of NAME, ``NAME@VERSION`` that version. Without one (the loopback development
default) ``init`` may load any package on the search path by name. A directory path, or a name or
version outside the list, is refused with the error code ``forbidden``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hrl_runtime import checks
from hrl_runtime.errors import ConfigError, HrlError
from hrl_runtime.registry import PackageEntry, SkillRegistry, is_explicit_path, version_key
from hrl_runtime.serving.requests import RequestError

logger = logging.getLogger(__name__)


class SkillAllowList:
    """Maps the skill a client names to what the server loads, or refuses it.

    Args:
        entries: ``NAME[@VERSION]`` strings (``hrl serve --skills``), or None for any package on
            the search path (by name only).
        default: the operator's default skill (``hrl serve --skill``), loaded when a request names
            none; with an allow-list it must be in it (None: the list's first entry).
        registry: where names are resolved (default: the standard search path).

    Raises:
        ConfigError: an entry is a path or names no package on the search path, or the default
            is outside the list.
    """

    def __init__(
        self,
        entries: tuple[str, ...] | None,
        default: str | None = None,
        registry: SkillRegistry | None = None,
    ):
        self.pinned: dict[str, list[PackageEntry]] | None = None
        self.default = default if default is not None or not entries else entries[0]
        if entries is None:
            return
        registry = registry or SkillRegistry()
        self.pinned = {}
        for entry in entries:
            if is_explicit_path(entry):
                raise ConfigError(
                    f"--skills {checks.shorten(entry, 120)} is a path; name packages on the "
                    "search path (put their parent directory on $HRL_SKILLS_PATH)"
                )
            try:
                package = registry.resolve(entry)
            except HrlError as error:  # unknown, invalid or duplicate: one line each
                raise ConfigError(f"--skills {checks.shorten(entry, 120)}: {error}") from None
            self.pinned.setdefault(package.name, []).append(package)
        for packages in self.pinned.values():
            packages.sort(key=lambda p: version_key(p.version))
        logger.info("init may load: %s", ", ".join(self.refs()))
        if default is not None:
            try:
                self.resolve(default)  # as if a client named it
            except RequestError:
                raise ConfigError(
                    f"--skill {checks.shorten(default, 120)} is not in --skills "
                    f"({', '.join(self.refs())}); add it to --skills"
                ) from None

    def refs(self) -> list[str]:
        """The allowed ``NAME@VERSION`` refs, or ``["any package on the search path"]``."""
        if self.pinned is None:
            return ["any package on the search path, by name"]
        return [p.ref for packages in self.pinned.values() for p in packages]

    def resolve(self, ref: str | None) -> str | Path:
        """What to load for the skill a request named (None: the operator's default): the ref
        itself (no allow-list) or the package directory pinned at start.

        Raises:
            RequestError: ``forbidden`` for a path, or a name or version outside the list;
                ``bad_field`` when the request names none and the server has no default.
        """
        if ref is None:
            if self.default is None:
                raise RequestError(
                    "bad_field", "field 'skill' is required (the server has no --skill)"
                )
            if self.pinned is None:
                return self.default  # the operator's own choice, possibly a directory
            ref = self.default
        elif is_explicit_path(ref):
            raise RequestError(
                "forbidden",
                f"field 'skill' {checks.shorten(ref, 80)} is a path; the server loads packages "
                f"by name only: {', '.join(self.refs())}",
            )
        if self.pinned is None:
            return ref
        name, _, version = ref.partition("@")
        packages = self.pinned.get(name, [])
        chosen = [p for p in packages if not version or p.version == version]
        if not chosen:
            raise RequestError(
                "forbidden",
                f"field 'skill' {checks.shorten(ref, 80)} is not allowed on this server; "
                f"allowed: {', '.join(self.refs())} (the operator sets them with --skills)",
            )
        return chosen[-1].path
