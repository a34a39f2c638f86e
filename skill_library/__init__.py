"""How skills are learned and what they are made of; pretrained skills ship in ``pretrained/``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports each exported name from its submodule on first use.

    The algorithm packages export their configs (plain dataclasses) beside torch modules; with
    lazy exports, reading a config (the ``hrl`` parser's defaults) does not import torch.

    Args:
        package: the package's ``__name__``.
        exports: exported name -> the submodule (relative to ``package``) that defines it.

    Returns:
        The function to assign to the package's ``__getattr__``.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
