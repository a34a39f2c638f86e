"""Error types that name what is wrong and how to fix it.

Every error the runtime raises for bad input derives from :class:`HrlError`; the CLI turns them
into a one-line message and exit status 2.
"""

from __future__ import annotations


class HrlError(Exception):
    """Base class for errors caused by input the user can fix."""


class ConfigError(HrlError, ValueError):
    """An argument, option or file content is invalid."""


class PackageError(HrlError):
    """A skill or policy package on disk is missing, malformed or does not verify.

    Args:
        path: the file (or directory) that is wrong.
        field: the manifest field or tensor name at fault, if any.
        problem: what is wrong, including expected and actual values.
        fix: how to fix it.
    """

    def __init__(self, path: object, problem: str, *, field: str | None = None, fix: str = ""):
        self.path = str(path)
        self.field = field
        self.problem = problem
        self.fix = fix
        where = f"{self.path}" + (f" [{field}]" if field else "")
        message = f"{where}: {problem}"
        if fix:
            message += f"; {fix}"
        super().__init__(message)


class UnknownSkillError(HrlError, KeyError):
    """No package with the requested name (and version) is on the search path."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class IncompatibleError(HrlError):
    """A skill, a high level and an environment do not fit together."""
