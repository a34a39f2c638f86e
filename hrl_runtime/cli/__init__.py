"""The ``hrl`` command line: one module per command group, assembled here.

Every command that reports results takes ``--json`` and then prints exactly one JSON object on
stdout. Input errors print one line on stderr and exit with status 2: the parser's own
(:class:`~hrl_runtime.cli.common.OneLineParser`, every numeric option typed with a bounded check
of :mod:`hrl_runtime.checks`) and every :class:`~hrl_runtime.errors.HrlError` a command raises.
Output paths are checked before any work starts.
"""

from __future__ import annotations

import argparse
import logging
import sys

from hrl_runtime.cli import (
    adapt,
    am,
    bench,
    dads,
    data,
    embedding,
    follow,
    gcsac,
    keys,
    runtime,
    skills,
    spirl,
    sweep,
)
from hrl_runtime.cli.common import MAX_ERROR_CHARS, OneLineParser, compare_targets, with_json
from hrl_runtime.errors import HrlError


def build_parser() -> argparse.ArgumentParser:
    """The ``hrl`` parser with every command group's sub-commands."""
    parser = OneLineParser(
        prog="hrl", description="hrl-runtime: hierarchical planning and control for robot learning"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    skills.add_commands(commands, with_json)
    follow.add_commands(commands, with_json)

    train = commands.add_parser("train", help="train skills")
    algorithms = train.add_subparsers(dest="algorithm", required=True, metavar="ALGORITHM")
    dads.add_train_commands(algorithms, with_json)
    spirl.add_train_commands(algorithms, with_json)
    am.add_train_commands(algorithms, with_json)
    adapt.add_train_commands(algorithms, with_json)
    embedding.add_train_commands(algorithms, with_json)
    gcsac.add_train_commands(algorithms, with_json)

    data.add_commands(commands, with_json)
    targets = compare_targets(commands)
    spirl.add_commands(commands, targets, with_json)
    am.add_commands(targets, with_json)
    adapt.add_compare_commands(targets, with_json)
    gcsac.add_compare_commands(targets, with_json)
    bench.add_commands(commands, with_json)
    runtime.add_commands(commands, with_json)
    keys.add_commands(commands, with_json)
    sweep.add_commands(commands, with_json)
    return parser


VALUES_MAY_START_WITH_MINUS = ("--goals",)
"""Options whose value may start with a minus sign (``--goals "-2,3;4,5"``), which argparse would
otherwise take for an option."""


def join_negative_values(argv: list[str]) -> list[str]:
    """Writes ``--goals -2,3`` as ``--goals=-2,3`` so argparse reads it as the option's value."""
    joined: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token in VALUES_MAY_START_WITH_MINUS:
            value = next(tokens, None)
            if value and len(value) > 1 and value[0] == "-" and value[1] in "0123456789.":
                joined.append(f"{token}={value}")
                continue
            joined.append(token)
            if value is not None:
                joined.append(value)
            continue
        joined.append(token)
    return joined


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hrl`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(join_negative_values(argv))
    except SystemExit as exit_:  # a one-line parse error (status 2), or --help (status 0)
        return exit_.code if isinstance(exit_.code, int) else 2
    args.argv = argv
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except HrlError as error:
        print(f"hrl: error: {one_line(str(error))}", file=sys.stderr)
        return 2


def one_line(message: str) -> str:
    """``message`` on one line (newlines escaped) of at most ``MAX_ERROR_CHARS`` characters."""
    line = message.replace("\r", "\\r").replace("\n", "\\n")
    if len(line) > MAX_ERROR_CHARS:
        line = f"{line[: MAX_ERROR_CHARS - 30]}... ({len(line)} characters)"
    return line
