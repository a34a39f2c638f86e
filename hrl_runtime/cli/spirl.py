"""CLI commands for SPiRL: ``hrl train spirl-skills``, ``hrl train spirl``, ``hrl eval`` and
``hrl compare spirl``."""

from __future__ import annotations

import argparse

from hrl_runtime import checks
from hrl_runtime.cli.common import (
    EPISODES,
    SEED,
    TRAIN_STEPS,
    WithJson,
    add_loop_flags,
    add_package_flags,
    check_package_target,
    command_line,
    count_type,
    emit,
    emit_package,
    load_dataset,
    make_env,
    show_progress,
)
from hrl_runtime.cli.sweep import add_backend_flags, backend_config, trials_session
from hrl_runtime.registry import load_skill
from hrl_runtime.skill import check_compatible
from skill_library.spirl.config import (
    MAX_HORIZON,
    MAX_LATENT_DIM,
    SkillModelConfig,
    SkillTrainingConfig,
    SPiRLConfig,
)

BETA = checks.argparse_type(checks.real, low=0.0, high=1e6, fix="give a finite weight >= 0")


def cmd_train_spirl_skills(args: argparse.Namespace) -> int:
    config = SkillTrainingConfig(
        model=SkillModelConfig(
            horizon=args.horizon, latent_dim=args.latent_dim, closed_loop=not args.open_loop
        ),
        beta=args.beta,
        updates=args.updates,
        seed=args.seed,
    )
    config.validate()
    out = check_package_target(args)  # --out, --name, --version: before any training
    dataset = load_dataset(args.dataset)
    from skill_library.spirl.train import train_skill_model  # torch: only when training

    path = train_skill_model(
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
            f"validation reconstruction {m['val_reconstruction']:.4f}, prior loss "
            f"{m['val_prior_loss']:.3f}"
        ),
    )


def cmd_train_spirl(args: argparse.Namespace) -> int:
    config = SPiRLConfig(env_steps=args.steps, method=args.method, seed=args.seed)
    config.validate()
    out = check_package_target(args)  # --out, --name, --version: before any training
    skill = load_skill(args.skill)
    env = make_env(args.env)
    try:  # a skill made for another environment is refused before training
        check_compatible(skill, env, args.env)
    finally:
        env.close()
    from skill_library.spirl.downstream import SPiRLTrainer  # torch: only when training

    trainer = SPiRLTrainer(skill, args.env, config)
    curve = trainer.train(progress=show_progress())
    path = trainer.package(out, name=args.name, command=command_line(args), version=args.version)
    emit(
        args,
        {"package": str(path), "final": curve[-1]},
        f"wrote {path}; final evaluation: success {curve[-1]['success_rate']:.0%}",
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from hrl_runtime.experiments.policy_eval import evaluate_policy

    report = evaluate_policy(
        args.policy,
        args.env,
        args.episodes,
        args.seed,
        args.skill,
        asynchronous=not args.sync,
        threads=args.threads,
    )
    emit(
        args,
        report,
        f"{report['policy']} on {report['env']}: success {report['success_rate']:.0%} over "
        f"{report['episodes']} episodes, mean return {report['mean_return']:.3f}",
    )
    return 0


def cmd_compare_spirl(args: argparse.Namespace) -> int:
    from hrl_runtime.experiments.spirl_compare import run_comparison

    out = checks.output_dir(args.out, "--out", may_exist=True)  # before any run
    load_skill(args.skill)  # refuse a missing or broken skill before spawning runs
    backend = backend_config(args)
    with trials_session(backend):
        report = run_comparison(
            args.skill, args.env, args.steps, args.seeds, out, progress=show_progress(),
            backend=backend,
        )  # fmt: skip
    lines = [f"{'method':12} {'final success per seed':28} mean"]
    for method, row in report["methods"].items():
        per_seed = ", ".join(f"{v:.2f}" for v in row["final_success_rate_per_seed"])
        lines.append(f"{method:12} {per_seed:28} {row['final_success_rate_mean']:.2f}")
    lines.append(f"wrote {report['csv']} and {report['plot']}")
    emit(args, report, "\n".join(lines))
    return 0


def add_train_commands(algorithms: argparse._SubParsersAction, with_json: WithJson) -> None:
    """``hrl train spirl-skills`` and ``hrl train spirl``."""
    defaults = SkillTrainingConfig()
    skills = with_json(algorithms.add_parser("spirl-skills", help="SPiRL skills and prior"))
    skills.add_argument("--dataset", required=True, help="HDF5 file from `hrl collect`")
    add_package_flags(skills, "spirl-skills")
    skills.add_argument(
        "--horizon",
        type=count_type(MAX_HORIZON),
        default=defaults.model.horizon,
        help=f"H, actions per skill (1..{MAX_HORIZON})",
    )
    skills.add_argument(
        "--latent-dim",
        type=count_type(MAX_LATENT_DIM),
        default=defaults.model.latent_dim,
        help=f"dz (1..{MAX_LATENT_DIM})",
    )
    skills.add_argument("--beta", type=BETA, default=defaults.beta, help="KL weight (>= 0)")
    skills.add_argument(
        "--updates", type=TRAIN_STEPS, default=defaults.updates, help="gradient steps"
    )
    skills.add_argument("--open-loop", action="store_true", help="decoder p(a_1..a_H | z)")
    skills.add_argument("--seed", type=SEED, default=defaults.seed)
    skills.set_defaults(func=cmd_train_spirl_skills)

    spirl = with_json(algorithms.add_parser("spirl", help="SPiRL high-level policy"))
    spirl.add_argument("--skill", required=True, help="skill with a prior")
    spirl.add_argument("--env", required=True, help="downstream task")
    downstream = SPiRLConfig()
    spirl.add_argument(
        "--steps", type=TRAIN_STEPS, default=downstream.env_steps, help="control-step budget"
    )
    add_package_flags(spirl, "spirl-policy", resume=False)
    spirl.add_argument(
        "--method",
        choices=("spirl", "skill_sac"),
        default=downstream.method,
        help="with or without prior",
    )
    spirl.add_argument("--seed", type=SEED, default=downstream.seed)
    spirl.set_defaults(func=cmd_train_spirl)


def add_commands(
    commands: argparse._SubParsersAction,
    compare_targets: argparse._SubParsersAction,
    with_json: WithJson,
) -> None:
    """``hrl eval`` and ``hrl compare spirl``."""
    evaluate = with_json(commands.add_parser("eval", help="evaluate a high-level policy"))
    evaluate.add_argument("--policy", required=True, help="policy package NAME[@VERSION]")
    evaluate.add_argument("--env", required=True)
    evaluate.add_argument("--episodes", type=EPISODES, default=20)
    evaluate.add_argument("--seed", type=SEED, default=0)
    evaluate.add_argument("--skill", help="override the skill the policy names")
    add_loop_flags(evaluate)
    evaluate.set_defaults(func=cmd_eval)

    spirl = with_json(
        compare_targets.add_parser("spirl", help="SPiRL vs skill-space SAC vs flat SAC")
    )
    spirl.add_argument("--skill", default="spirl-maze", help="skill with a prior")
    spirl.add_argument("--env", default="hrl/PointMazeFar-v0")
    spirl.add_argument(
        "--steps", type=TRAIN_STEPS, default=SPiRLConfig().env_steps, help="control steps per run"
    )
    spirl.add_argument("--seeds", type=SEED, nargs="+", default=[0, 1, 2])
    add_backend_flags(spirl, "runs side by side on this machine (default: every core)")
    spirl.add_argument("--out", default="runs/spirl-compare")
    spirl.set_defaults(func=cmd_compare_spirl)
