"""``hrl keys generate DIR [--name NAME] [--force]``: a CURVE key pair for the policy server or one
of its clients (:mod:`hrl_runtime.serving.auth`)."""

from __future__ import annotations

import argparse

from hrl_runtime.cli.common import WithJson, add_force_flag, emit


def cmd_keys_generate(args: argparse.Namespace) -> int:
    from hrl_runtime.serving.auth import generate_keys

    public, secret = generate_keys(args.directory, args.name, force=args.force)
    payload = {"public": str(public), "secret": str(secret)}
    text = (
        f"wrote {public} (public: hand it out) and {secret} (secret, mode 0600: keep it here)\n"
        f"a server uses --keys {secret}; a client's {public.name} goes in the server's "
        "--authorized directory, the server's in the client's --server-key"
    )
    emit(args, payload, text)
    return 0


def add_commands(commands: argparse._SubParsersAction, with_json: WithJson) -> None:
    """``hrl keys generate``."""
    keys = commands.add_parser("keys", help="CURVE keys for `hrl serve` and its clients")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    generate = with_json(actions.add_parser("generate", help="write a key pair to DIR"))
    generate.add_argument("directory", help="where to write NAME.key and NAME.key_secret")
    generate.add_argument(
        "--name", default="server", help="the files' stem (default: server), e.g. arm-client"
    )
    add_force_flag(generate, "an existing key pair of that name")
    generate.set_defaults(func=cmd_keys_generate)
