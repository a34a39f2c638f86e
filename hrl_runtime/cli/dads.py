"""``hrl train dads``: DADS skill discovery from the command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
from dataclasses import replace
from typing import Any

from hrl_runtime.cli.common import (
    SEED,
    TRAIN_STEPS,
    WithJson,
    add_package_flags,
    add_trainer_env_flags,
    check_package_target,
    command_line,
    count_type,
    emit_package,
    make_env,
    show_progress,
    trainer_env_values,
)
from hrl_runtime.errors import ConfigError
from skill_library.dads.config import DEFAULT_PRESET_BY_ENV, PRESETS, DADSConfig, preset

logger = logging.getLogger(__name__)

MAX_LATENT_DIM = 64
"""Largest DADS skill dimension dz the command line accepts (skills are sampled uniformly)."""


def base_config(args: argparse.Namespace) -> DADSConfig:
    """``--preset``, else the preset ``--env`` selects (Ant-v5: ``ant``), else the defaults;
    then every option given on the command line replaces the preset's value."""
    name = args.preset or DEFAULT_PRESET_BY_ENV.get(args.env)
    config = preset(name) if name else DADSConfig()
    if args.env is not None and args.env != config.env_id and name is not None:
        raise ConfigError(
            f"--preset {name} trains on {config.env_id}, not --env {args.env}; drop one of them"
        )
    given = {
        "env_id": args.env,
        "latent_dim": args.latent_dim,
        "steps": args.steps,
        **trainer_env_values(args),
    }
    config = replace(config, seed=args.seed, **{k: v for k, v in given.items() if v is not None})
    if args.off_policy:
        config = replace(config, off_policy=True)
    if args.all_dims:
        config = replace(config, dynamics_dims=None, hide_dynamics_dims=False)
    for assignment in args.set or ():
        config = apply_setting(config, assignment)
    if config.env_workers >= config.num_envs:
        config = replace(config, env_workers=config.num_envs - 1)
    return config


def apply_setting(config: Any, assignment: str) -> Any:
    """``--set FIELD=VALUE``: ``config`` with one field replaced (``sac.FIELD`` and
    ``networks.FIELD`` reach the nested settings). VALUE is JSON (``0.04``, ``true``,
    ``[64, 64]``, ``null``) or a bare string; it must have the field's type.

    Raises:
        ConfigError: no ``=``, an unknown field, or a value of the wrong type.
    """
    name, sep, text = assignment.partition("=")
    if not sep or not name:
        raise ConfigError(f"--set {assignment!r}: expected FIELD=VALUE, e.g. --set num_envs=16")
    head, dot, rest = name.partition(".")
    fields = {f.name for f in dataclasses.fields(config)}
    if head not in fields:
        raise ConfigError(
            f"--set {name}: {type(config).__name__} has no field {head!r}; "
            f"choose one of {sorted(fields)}"
        )
    current = getattr(config, head)
    if dot:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"--set {name}: {head!r} has no fields of its own")
        return replace(config, **{head: apply_setting(current, f"{rest}={text}")})
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    return replace(config, **{head: _typed(name, value, current)})


def _typed(name: str, value: Any, current: Any) -> Any:
    """``value`` as the type of the field's ``current`` value (ints widen to floats, lists
    become tuples); ConfigError when it does not fit."""
    if isinstance(value, list):
        value = tuple(value)
    if dataclasses.is_dataclass(current):
        raise ConfigError(f"--set {name}: set its fields one by one ({name}.FIELD=VALUE)")
    if current is None or value is None:
        return value
    if isinstance(current, bool) or isinstance(value, bool):
        ok = isinstance(current, bool) and isinstance(value, bool)
    elif isinstance(current, float) and isinstance(value, int):
        value, ok = float(value), True
    else:
        ok = isinstance(value, type(current))
    if not ok:
        raise ConfigError(
            f"--set {name}={json.dumps(value)}: expected a {type(current).__name__} "
            f"like {json.dumps(current)}"
        )
    return value


def whole_iterations(config: DADSConfig) -> int:
    """The policy steps a run of ``config.steps`` trains: DADS collects whole iterations of
    ``num_envs x episode_length`` policy steps, so the count is rounded up to one."""
    per_iteration = config.num_envs * config.episode_length
    return math.ceil(config.steps / per_iteration) * per_iteration


def cmd_train_dads(args: argparse.Namespace) -> int:
    config = base_config(args)
    config.validate()
    out = check_package_target(args)  # --out, --name, --version: before any training
    make_env(config.env_id, max_episode_steps=10).close()  # refuse unknown ids before training
    planned = whole_iterations(config)
    if planned != config.steps:
        logger.warning(
            "--steps %d is rounded up to %d: DADS trains whole iterations of %d policy steps "
            "(--num-envs %d x episodes of %d steps)",
            config.steps,
            planned,
            config.num_envs * config.episode_length,
            config.num_envs,
            config.episode_length,
        )
    from skill_library.dads.train import DADSTrainer  # torch: loaded only when training

    trainer = DADSTrainer(config, out, command=command_line(args))
    path = trainer.train(
        resume=args.resume, progress=show_progress(), name=args.name, version=args.version
    )

    def describe(metrics: dict) -> str:
        steps = f"{metrics['steps']} steps"
        if metrics["steps"] != config.steps:
            steps += f" ({config.steps} requested, rounded up to whole iterations)"
        return (
            f"{steps}, dynamics log-likelihood {metrics['dynamics_log_likelihood']:.3f}, "
            f"intrinsic reward {metrics['intrinsic_reward']:.3f}, skill distinctness "
            f"{metrics['skill_distinctness']:.1f}"
        )

    return emit_package(
        args,
        path,
        describe,
        plot=str(path / "skills.png"),
        steps_requested=config.steps,
    )


def add_train_commands(algorithms: argparse._SubParsersAction, with_json: WithJson) -> None:
    """``hrl train dads``."""
    defaults = DADSConfig()
    dads = with_json(algorithms.add_parser("dads", help="DADS skill discovery"))
    dads.add_argument(
        "--env", default=None, help=f"environment id (default {defaults.env_id}, or the preset's)"
    )
    dads.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="start from a named configuration (Ant-v5 selects 'ant' by itself); the options "
        "below replace its values",
    )
    dads.add_argument(
        "--latent-dim",
        type=count_type(MAX_LATENT_DIM),
        default=None,
        help=f"skill dimension dz (1..{MAX_LATENT_DIM}; default {defaults.latent_dim})",
    )
    per_iteration = defaults.num_envs * defaults.episode_length
    dads.add_argument(
        "--steps",
        type=TRAIN_STEPS,
        default=None,
        help=f"policy steps in total (default {defaults.steps}; the preset's with --preset), "
        "rounded up to whole iterations of --num-envs x episode steps "
        f"({per_iteration} by default); the report gives both",
    )
    add_package_flags(dads, "dads-skills")
    dads.add_argument("--seed", type=SEED, default=defaults.seed)
    add_trainer_env_flags(dads, f"{defaults.num_envs}, or the preset's")
    dads.add_argument("--off-policy", action="store_true", help="off-DADS replay")
    dads.add_argument("--all-dims", action="store_true", help="dynamics over every obs entry")
    dads.add_argument(
        "--set",
        action="append",
        metavar="FIELD=VALUE",
        help="replace one DADSConfig field (skill_library/dads/config.py), after the preset and "
        "the options above; sac.FIELD and networks.FIELD reach the nested settings; VALUE is "
        "JSON. Repeatable, e.g. --set sac_updates_per_step=0.04 --set sac.learn_alpha=true",
    )
    dads.set_defaults(func=cmd_train_dads)
