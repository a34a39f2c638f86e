"""CLI commands for Actionable Models: ``hrl train am`` and ``hrl compare am``."""

from __future__ import annotations

import argparse
from dataclasses import replace

from hrl_runtime import checks
from hrl_runtime.cli.common import (
    SEED,
    STEPS,
    TRAIN_STEPS,
    WithJson,
    add_package_flags,
    check_package_target,
    command_line,
    count_type,
    emit,
    emit_package,
    load_dataset,
    show_progress,
)
from hrl_runtime.cli.sweep import add_backend_flags, backend_config, trials_session
from hrl_runtime.errors import ConfigError
from hrl_runtime.experiments.am_config import EvalConfig
from skill_library.actionable.config import ActionableConfig


def cmd_train_am(args: argparse.Namespace) -> int:
    out = check_package_target(args)  # --out, --name, --version: before any training
    dataset = load_dataset(args.dataset)
    from skill_library.actionable.train import train_actionable  # torch: only when training

    config = replace(
        ActionableConfig(),
        steps=args.steps,
        seed=args.seed,
        chaining=not args.no_chaining,
        negatives=not args.no_negatives,
    )
    path = train_actionable(
        dataset,
        config,
        out,
        name=args.name,
        version=args.version,
        command=command_line(args),
        resume=args.resume,
        progress=show_progress(),
    )
    return emit_package(
        args,
        path,
        lambda m: (
            f"{m['steps']} steps in {m['wall_seconds_this_session']} s, TD loss "
            f"{m['td_loss']:.4f}, mean Q of data actions {m['q_data']:.3f}"
        ),
    )


def cmd_compare_am(args: argparse.Namespace) -> int:
    from hrl_runtime.experiments.am_eval import run_variants, train_variants

    if (args.dataset is None) == (args.variant is None):
        raise ConfigError(
            "give --dataset FILE (train the three variants, then evaluate them) or "
            "--variant LABEL=SKILL ... (evaluate packages that exist), not both"
        )
    labels, metadata = None, None
    out = checks.output_dir(args.out, "--out", may_exist=True)  # before any run
    backend = backend_config(args)
    variants: dict[str, list[str]] = {}
    if args.dataset is not None:
        load_dataset(args.dataset)  # refuse a bad file before any run starts
        labels = [f"training seed {seed}" for seed in args.train_seeds]
        metadata = {"training": {"dataset": args.dataset, "steps": args.steps,
                                 "seeds": args.train_seeds}}  # fmt: skip
    else:
        for item in args.variant:
            label, sep, ref = item.partition("=")
            if not sep or not label or not ref:
                raise ConfigError(f"--variant must be LABEL=SKILL, got {item!r}")
            variants.setdefault(label, []).append(ref)
    config = EvalConfig(
        env_id=args.env,
        goals_per_seed=args.goals,
        min_cells=args.min_cells,
        max_steps=args.max_steps,
        planners=tuple(args.planners),
    )
    with trials_session(backend):  # Ray started (or joined) once for training and evaluation
        if args.dataset is not None:
            variants = train_variants(
                args.dataset,
                args.steps,
                args.train_seeds,
                out / "packages",
                progress=show_progress(),
                backend=backend,
            )
        report = run_variants(
            variants,
            args.seeds,
            config,
            out,
            progress=show_progress(),
            package_labels=labels,
            metadata=metadata,
            backend=backend,
        )
    emit(args, report, report["markdown"] + f"\nwrote {report['csv']}")
    return 0


def add_train_commands(algorithms: argparse._SubParsersAction, with_json: WithJson) -> None:
    """``hrl train am``."""
    defaults = ActionableConfig()
    am = with_json(
        algorithms.add_parser("am", help="Actionable Models goal-reaching skill from offline data")
    )
    am.add_argument("--dataset", required=True, help="HDF5 file from `hrl collect`")
    add_package_flags(am, "am-skill")
    am.add_argument("--steps", type=TRAIN_STEPS, default=defaults.steps, help="gradient steps")
    am.add_argument("--seed", type=SEED, default=defaults.seed)
    am.add_argument("--no-chaining", action="store_true", help="hindsight goals only")
    am.add_argument("--no-negatives", action="store_true", help="no conservative negatives")
    am.set_defaults(func=cmd_train_am)


def add_commands(compare_targets: argparse._SubParsersAction, with_json: WithJson) -> None:
    """``hrl compare am``: far goals, several skills (variants) and planners, several seeds."""
    evaluation = EvalConfig()
    am = with_json(compare_targets.add_parser("am", help="Actionable Models variants on far goals"))
    am.add_argument(
        "--dataset",
        help="train the variants chaining, no-chaining and no-negatives on this HDF5 file, "
        "once per --train-seeds, then evaluate them",
    )
    am.add_argument(
        "--steps",
        type=TRAIN_STEPS,
        default=ActionableConfig().steps,
        help="gradient steps per training run",
    )
    am.add_argument("--train-seeds", type=SEED, nargs="+", default=[0, 1, 2])
    add_backend_flags(am, "training and evaluation runs side by side on this machine (default: "
                      "every core)")  # fmt: skip
    am.add_argument(
        "--variant",
        action="append",
        help="instead of --dataset: LABEL=SKILL (name or directory) to evaluate; repeat for "
        "each variant, and repeat a label for several packages of it",
    )
    am.add_argument("--env", default=evaluation.env_id, help="environment id")
    am.add_argument(
        "--seeds", type=SEED, nargs="+", default=[1000, 1001, 1002], help="evaluation seeds"
    )
    am.add_argument(
        "--goals",
        type=count_type(checks.MAX_GOALS),
        default=evaluation.goals_per_seed,
        help="far goals per seed",
    )
    am.add_argument(
        "--min-cells",
        type=count_type(10_000, low=0),
        default=evaluation.min_cells,
        help="BFS distance of a far goal",
    )
    am.add_argument(
        "--max-steps",
        type=STEPS,
        default=evaluation.max_steps,
        help="control steps per goal (20 s)",
    )
    am.add_argument(
        "--planners", nargs="+", default=list(evaluation.planners), help="high levels to compare"
    )
    am.add_argument("--out", default="runs/am-compare", help="CSV and JSON go here")
    am.set_defaults(func=cmd_compare_am)
