"""Error types that name what is wrong and how to fix it.

Every error the runtime raises for bad input derives from :class:`HrlError`; the CLI turns them
into a one-line message and exit status 2.
"""

from __future__ import annotations

MAX_PART = 260
"""Characters of a path, field or problem kept in a :class:`PackageError`'s one-line message."""


def one_line(text: object, limit: int = MAX_PART) -> str:
    """``text`` on one line, cut to ``limit`` characters (with the length it had)."""
    flat = " ".join(str(text).splitlines())
    return flat if len(flat) <= limit else f"{flat[: limit - 30]}... ({len(flat)} characters)"


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
        self.path = one_line(path)
        self.field = None if field is None else one_line(field, 100)
        self.problem = one_line(problem)
        self.fix = one_line(fix, 200)
        where = self.path + (f" [{self.field}]" if self.field else "")
        message = f"{where}: {self.problem}"
        if self.fix:
            message += f"; {self.fix}"
        super().__init__(message)


class UnknownSkillError(HrlError, KeyError):
    """No package with the requested name (and version) is on the search path."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class IncompatibleError(HrlError):
    """A skill, a high level and an environment do not fit together."""
