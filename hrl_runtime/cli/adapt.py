"""``hrl train adapt`` (MAML meta-learned skill dynamics) and ``hrl compare adapt``."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from hrl_runtime import checks
from hrl_runtime.cli.common import (
    GOALS,
    SEED,
    TRAIN_STEPS,
    WithJson,
    add_package_flags,
    check_package_target,
    command_line,
    count_type,
    emit,
    emit_package,
    json_default,
    make_env,
    positive_type,
    show_progress,
)
from hrl_runtime.errors import ConfigError

MAX_BODIES = 100_000
"""Most bodies a meta-training run collects."""
MAX_CONTEXT = 1024
"""Largest M."""


def cmd_train_adapt(args: argparse.Namespace) -> int:
    from skill_library.meta.config import AdaptationConfig, MetaConfig
    from skill_library.planner_settings import parse_mppi_settings

    defaults = MetaConfig()
    adaptation = AdaptationConfig(
        context=args.context,
        inner_steps=args.inner_steps,
        inner_lr=args.inner_lr,
        accumulate=args.accumulate,
        min_context=min(AdaptationConfig().min_context, args.context),
    )
    config = replace(
        defaults,
        skill=args.skill,
        env_id=args.env,
        steps=args.steps,
        bodies=args.bodies,
        first_order=args.first_order,
        adaptation=adaptation,
        mppi=parse_mppi_settings(args.mppi or ""),
        seed=args.seed,
    )
    config.validate()
    out = check_package_target(args)  # --out, --name, --version: before any work
    make_env(config.env_id, max_episode_steps=10).close()  # an unknown id: one line, now
    from skill_library.meta.train import MetaTrainer  # torch: loaded only when training

    trainer = MetaTrainer(config, out, command=command_line(args))
    path = trainer.train(
        resume=args.resume, progress=show_progress(), name=args.name, version=args.version
    )

    def describe(metrics: dict) -> str:
        return (
            f"{metrics['updates']} meta-updates over {metrics['bodies']} bodies, query loss "
            f"{metrics['query_loss_meta']:.3f} before and {metrics['query_loss_adapted']:.3f} "
            f"after adapting, {metrics['wall_seconds_this_session']:.0f} s"
        )

    return emit_package(args, path, describe)


def add_train_commands(algorithms: argparse._SubParsersAction, with_json: WithJson) -> None:
    """``hrl train adapt``."""
    from skill_library.meta.config import AdaptationConfig, MetaConfig

    defaults, adaptation = MetaConfig(), AdaptationConfig()
    adapt = with_json(
        algorithms.add_parser(
            "adapt", help="meta-learn a skill's dynamics (MAML) to adapt online to new bodies"
        )
    )
    adapt.add_argument(
        "--skill",
        default=defaults.skill,
        help=f"DADS skill to repackage (default {defaults.skill})",
    )
    adapt.add_argument(
        "--env", default=defaults.env_id, help=f"environment id (default {defaults.env_id})"
    )
    adapt.add_argument(
        "--steps",
        type=TRAIN_STEPS,
        default=defaults.steps,
        help=f"meta (outer) updates (default {defaults.steps})",
    )
    adapt.add_argument(
        "--bodies",
        type=count_type(MAX_BODIES, low=2),
        default=defaults.bodies,
        help=f"perturbed bodies collected with the skill's policy (default {defaults.bodies})",
    )
    adapt.add_argument(
        "--context",
        type=count_type(MAX_CONTEXT),
        default=adaptation.context,
        help=f"M, transitions adapted on (default {adaptation.context})",
    )
    adapt.add_argument(
        "--inner-steps",
        type=count_type(100),
        default=adaptation.inner_steps,
        help=f"gradient steps per adaptation (default {adaptation.inner_steps})",
    )
    adapt.add_argument(
        "--inner-lr",
        type=positive_type(99.0),
        default=adaptation.inner_lr,
        help=f"inner learning rate alpha (default {adaptation.inner_lr:g})",
    )
    adapt.add_argument(
        "--accumulate",
        action="store_true",
        help="online, start each adaptation from the last adapted parameters instead of the "
        "meta-parameters (written to the manifest; meta-training always adapts from the "
        "meta-parameters)",
    )
    adapt.add_argument(
        "--first-order", action="store_true", help="first-order MAML (no second derivatives)"
    )
    adapt.add_argument(
        "--mppi",
        metavar="NAME=VALUE[,...]",
        help="latent MPPI settings the package recommends (written to the manifest; `hrl "
        "follow --planner mppi` uses them), e.g. temperature=0.02,squared_distance=true",
    )
    adapt.add_argument("--seed", type=SEED, default=defaults.seed)
    add_package_flags(adapt, "dads-pointmass-meta")
    adapt.set_defaults(func=cmd_train_adapt)


MAX_BODIES_COMPARED = 16
"""Most bodies one comparison runs."""


def cmd_compare_adapt(args: argparse.Namespace) -> int:
    from hrl_runtime.experiments.adapt_compare import (
        AdaptCompareConfig,
        base_skill_ref,
        compare_adaptation,
        markdown_table,
        summarize,
        write_table,
    )

    bodies = tuple(b.strip() for b in args.bodies.split(";") if b.strip())
    if not bodies or len(bodies) > MAX_BODIES_COMPARED:
        raise ConfigError(
            f"--bodies gives {len(bodies)} bodies; give 1..{MAX_BODIES_COMPARED} as "
            '"gain=0.4,mirror=x;mass=2"'
        )
    from envs.perturb import Perturbation, PerturbationError

    for body in bodies:  # every body is checked before any run
        try:
            Perturbation.parse(body)
        except PerturbationError as error:
            raise ConfigError(str(error)) from None
    out = checks.output_dir(args.out, "--out", may_exist=True)
    config = AdaptCompareConfig(
        plain_skill=args.plain_skill or base_skill_ref(args.meta_skill),
        meta_skill=args.meta_skill,
        env_id=args.env,
        bodies=bodies,
        goals=args.goals,
        seeds=tuple(args.seeds),
        asynchronous=not args.sync,
    )
    make_env(config.env_id, max_episode_steps=10).close()
    rows = compare_adaptation(config, progress=show_progress())
    table = summarize(rows)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "markdown": str(write_table(table, out / "adapt_compare.md")),
        "csv": str(write_table(table, out / "adapt_compare.csv")),
    }
    payload = {"config": config.__dict__, "table": table, "runs": rows, "files": files}
    (out / "adapt_compare.json").write_text(json.dumps(payload, default=json_default) + "\n")
    emit(args, payload, markdown_table(table) + f"\nwrote {files['markdown']}, {files['csv']}")
    return 0


def add_compare_commands(targets: argparse._SubParsersAction, with_json: WithJson) -> None:
    """``hrl compare adapt``."""
    compare = with_json(
        targets.add_parser(
            "adapt",
            help="plain vs fine-tuned vs meta-learned vs adapted dynamics on unseen bodies",
        )
    )
    compare.add_argument(
        "--plain-skill",
        default=None,
        help="skill with plain dynamics (default: the one the meta skill was trained from)",
    )
    compare.add_argument(
        "--meta-skill", default="dads-pointmass-meta", help="skill from `hrl train adapt`"
    )
    compare.add_argument("--env", default="hrl/PointArena-v0", help="environment id")
    compare.add_argument(
        "--bodies",
        default="gain=0.4,mirror=x;gain=0.4,mirror=y;gain=0.4,mass=2.5",
        help='bodies as --perturb texts joined by ";" (default: three outside the training '
        "distribution)",
    )
    compare.add_argument(
        "--goals", type=GOALS, default=10, help="random goals per body and seed (default 10)"
    )
    compare.add_argument("--seeds", type=SEED, nargs="+", default=[1000], help="seeds")
    compare.add_argument(
        "--sync", action="store_true", help="the synchronous loop (deterministic, not real time)"
    )
    compare.add_argument(
        "--out",
        default="runs/adapt_compare",
        help="directory for adapt_compare.md, .csv and .json (replaced)",
    )
    compare.set_defaults(func=cmd_compare_adapt)
