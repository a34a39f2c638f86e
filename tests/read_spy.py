"""Records which files a piece of code opens (through ``open`` and ``os.open``), for the tests
that assert nothing outside a package is read."""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def reads_recorded() -> Iterator[list[str]]:
    opened: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file, *args, **kwargs):
        if isinstance(file, str | Path):
            opened.append(os.path.abspath(file))
        return real_open(file, *args, **kwargs)

    def spy_os_open(path, *args, **kwargs):
        opened.append(os.path.abspath(path))
        return real_os_open(path, *args, **kwargs)

    builtins.open, os.open = spy_open, spy_os_open
    try:
        yield opened
    finally:
        builtins.open, os.open = real_open, real_os_open
