"""Property-based fuzzing of packages: start from a real shipped package, mutate its manifest
(random JSON in any field, another kind, deep nesting, huge strings) or swap one of its files for
a link or a FIFO, and load it. The invariant: it loads, or it is refused with one
:class:`~hrl_runtime.errors.HrlError` whose message is one short line; never another exception,
and nothing outside the package is opened."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from read_spy import reads_recorded

from hrl_runtime import SkillRegistry
from hrl_runtime.errors import HrlError
from hrl_runtime.registry import known_kinds, load_package, verify_package

SOURCES = ("scripted-reach", "spirl-maze-far", "dads-pointmass", "am-maze", "spirl-maze")
LINKED = ("scripted-reach", "spirl-maze-far")  # every file of these is listed in the manifest
MAX_MESSAGE = 500
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def nested(depth: int, leaf: Any = 0) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


odd_values = st.one_of(
    json_values,
    st.integers(min_value=20, max_value=100).map(nested),
    st.integers(min_value=300, max_value=200_000).map(lambda n: "x" * n),
    st.integers(min_value=1, max_value=9).map(lambda n: [0] * (10**n // 10**3 + 1)),
)


def field_paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path (a tuple of keys and indices) into a JSON document."""
    if prefix:
        yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from field_paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from field_paths(child, (*prefix, index))


MANIFESTS = {
    name: json.loads((SkillRegistry().resolve(name).path / "skill.json").read_text())
    for name in SOURCES
}
PATHS = {name: sorted(field_paths(m), key=repr) for name, m in MANIFESTS.items()}


@contextmanager
def package_copy(source: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "pkg"
        shutil.copytree(SkillRegistry().resolve(source).path, target)
        yield target


def assert_loads_or_refuses(package: Path) -> None:
    """The invariant, for ``load`` and for ``verify``."""
    for check in (load_package, verify_package):
        with reads_recorded() as opened:
            try:
                check(package)
            except HrlError as error:
                message = str(error)
                assert "\n" not in message and len(message) < MAX_MESSAGE, message[:1000]
        inside = str(package) + os.sep
        # Compiled-code caches (numba's, for the CEM kernel) are the only other files opened.
        assert all(p.startswith(inside) or "__pycache__" in p for p in opened), opened


def set_path(document: Any, path: tuple, value: Any, delete: bool) -> None:
    node = document
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value


@FUZZ
@given(
    field=st.sampled_from([(source, path) for source in SOURCES for path in PATHS[source]]),
    value=odd_values,
    delete=st.booleans(),
)
def test_a_mutated_field_loads_or_is_refused_in_one_line(field, value, delete):
    source, path = field
    manifest = json.loads(json.dumps(MANIFESTS[source]))
    set_path(manifest, path, value, delete)
    with package_copy(source) as package:
        (package / "skill.json").write_text(json.dumps(manifest))
        assert_loads_or_refuses(package)


@FUZZ
@given(
    source=st.sampled_from(SOURCES),
    kind=st.sampled_from(sorted(known_kinds())),
    config=st.one_of(json_values, st.sampled_from([m["config"] for m in MANIFESTS.values()])),
)
def test_any_kind_with_any_config_loads_or_is_refused(source, kind, config):
    manifest = json.loads(json.dumps(MANIFESTS[source]))
    manifest["kind"], manifest["config"] = kind, config
    with package_copy(source) as package:
        (package / "skill.json").write_text(json.dumps(manifest))
        assert_loads_or_refuses(package)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(depth=st.integers(min_value=25, max_value=200_000), key=st.sampled_from(["config", "name"]))
def test_deep_nesting_is_refused_in_one_line(depth, key):
    with package_copy("scripted-reach") as package:
        text = (package / "skill.json").read_text()
        deep = "[" * depth + "]" * depth
        text = text.replace(f'"{key}": ', f'"{key}": {deep}, "was_{key}": ', 1)
        (package / "skill.json").write_text(text)
        assert_loads_or_refuses(package)


OUTSIDE = ("/etc/passwd", "/dev/zero", "/etc/hostname", "..", "fifo")


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    source=st.sampled_from(LINKED),
    file_index=st.integers(min_value=0, max_value=10),
    target=st.sampled_from(OUTSIDE),
)
def test_a_linked_or_special_file_is_refused_without_being_read(source, file_index, target):
    with package_copy(source) as package:
        files = sorted(p.name for p in package.iterdir())
        victim = package / files[file_index % len(files)]
        victim.unlink()
        if target == "fifo":
            os.mkfifo(victim)
        elif target == "..":
            (package.parent / "outside").write_bytes(b"{}")
            os.symlink(package.parent / "outside", victim)
        else:
            os.symlink(target, victim)
        with pytest.raises(HrlError, match=r"symbolic link|FIFO"):
            load_package(package)
        assert_loads_or_refuses(package)
