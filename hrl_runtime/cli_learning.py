"""CLI commands for offline data and SPiRL: ``hrl collect``, ``hrl train spirl-skills``,
``hrl train spirl``, ``hrl eval`` and ``hrl compare spirl`` (registered by :mod:`hrl_runtime.cli`).
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hrl_runtime.errors import ConfigError, IncompatibleError

WithJson = Callable[[argparse.ArgumentParser], argparse.ArgumentParser]


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    from hrl_runtime.cli import _emit as emit

    emit(args, payload, text)


def _load_dataset(path: str, env_id: str | None = None):
    import envs

    try:
        return envs.load_dataset(path, env_id=env_id)
    except envs.DatasetError as error:
        raise ConfigError(str(error)) from None


def cmd_collect(args: argparse.Namespace) -> int:
    import envs

    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    try:
        config = envs.CollectConfig(
            env_id=args.env,
            episodes=args.episodes,
            seed=args.seed,
            max_goal_distance_cells=args.max_goal_cells,
        )
        dataset = envs.collect_dataset(
            config, progress=not args.json, created_by="hrl " + shlex.join(args.argv)
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    path = dataset.save(args.out)
    payload = {
        "path": str(path),
        "episodes": dataset.num_episodes,
        "steps": dataset.num_steps,
        "env": args.env,
        "bytes": Path(path).stat().st_size,
    }
    _emit(
        args, payload, f"wrote {path}: {dataset.num_episodes} episodes, {dataset.num_steps} steps"
    )
    return 0


def cmd_train_spirl_skills(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from skill_library.spirl.networks import SkillModelConfig
    from skill_library.spirl.train import SkillTrainingConfig, train_skill_model

    dataset = _load_dataset(args.dataset)
    config = SkillTrainingConfig(
        model=SkillModelConfig(
            horizon=args.horizon, latent_dim=args.latent_dim, closed_loop=not args.open_loop
        ),
        updates=args.updates,
        seed=args.seed,
    )
    config = replace(config, beta=args.beta)
    path = train_skill_model(
        dataset,
        config,
        Path(args.out),
        name=args.name,
        command="hrl " + shlex.join(args.argv),
        resume=args.resume,
        progress=not args.json,
    )
    metrics = json.loads((path / "skill.json").read_text())["metrics"]
    _emit(
        args,
        {"package": str(path), "metrics": metrics},
        f"wrote {path} (validation reconstruction {metrics['val_reconstruction']:.4f}, "
        f"prior loss {metrics['val_prior_loss']:.3f})",
    )
    return 0


def _load_skill(ref: str):
    from hrl_runtime.cli import _load_skill as load

    return load(ref)


def cmd_train_spirl(args: argparse.Namespace) -> int:
    from hrl_runtime.registry import SkillRegistry
    from planners.spirl import SPiRLConfig, SPiRLTrainer

    skill = _load_skill(args.skill)
    config = SPiRLConfig(env_steps=args.steps, method=args.method, seed=args.seed)
    trainer = SPiRLTrainer(skill, args.env, config)
    curve = trainer.train(progress=not args.json)
    policy = trainer.make_policy()
    path = SkillRegistry([Path(args.out).parent]).save(
        policy,
        Path(args.out),
        name=args.name,
        description=f"{args.method} high-level policy over {policy.skill_ref} on {args.env}",
        training={
            "command": "hrl " + shlex.join(args.argv),
            "seed": args.seed,
            "env": args.env,
            "config": trainer.config_json(),
        },
        metrics={"final": curve[-1], "curve": curve, "wall_seconds": round(trainer.seconds, 1)},
        overwrite=True,
    )
    _emit(
        args,
        {"package": str(path), "final": curve[-1]},
        f"wrote {path}; final evaluation: success {curve[-1]['success_rate']:.0%}",
    )
    return 0


def evaluate_policy(
    policy_ref: str, env_id: str, episodes: int, seed: int, skill_ref: str | None = None
) -> dict[str, Any]:
    """Runs a packaged high-level policy with its skill in the ControlLoop."""
    import envs
    from hrl_runtime.agent import HierarchicalAgent
    from hrl_runtime.loop import ControlLoop, LoopConfig, latency_summary_ms
    from hrl_runtime.registry import SkillRegistry
    from planners.spirl import SPiRLPolicy, check_policy_fits

    registry = SkillRegistry()
    policy = registry.load(policy_ref)
    if not isinstance(policy, SPiRLPolicy):
        raise IncompatibleError(f"{policy_ref!r} is not a high-level policy package")
    skill = _load_skill(skill_ref or policy.skill_ref)
    check_policy_fits(policy, skill)
    try:
        env = envs.make_env(env_id)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if env.observation_space.shape != skill.observation_space.shape:
        raise IncompatibleError(
            f"{env_id} gives observations of shape {env.observation_space.shape} but skill "
            f"{policy.skill_ref} reads {skill.observation_space.shape}"
        )
    loop = ControlLoop(LoopConfig(control_period_s=float(env.unwrapped.dt)))
    limit = env.spec.max_episode_steps or 3000
    results, latencies = [], []
    for episode in range(episodes):
        agent = HierarchicalAgent(policy, skill, replan_every=skill.hold_steps)
        run = loop.run(agent, env, max_steps=limit, seed=seed + episode)
        results.append(
            {
                "success": run.stop_reason == "terminated" and not run.faults,
                "return": float(run.rewards.sum()),
                "steps": run.steps,
                "faults": len(run.faults),
            }
        )
        latencies.append(run.control_latency_s)
    return {
        "policy": policy_ref,
        "skill": policy.skill_ref,
        "env": env_id,
        "seed": seed,
        "episodes": episodes,
        "success_rate": float(np.mean([r["success"] for r in results])),
        "mean_return": float(np.mean([r["return"] for r in results])),
        "mean_steps": float(np.mean([r["steps"] for r in results])),
        "faults": int(sum(r["faults"] for r in results)),
        "control_latency_ms": latency_summary_ms(np.concatenate(latencies)),
        "per_episode": results,
    }


def cmd_eval(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    report = evaluate_policy(args.policy, args.env, args.episodes, args.seed, args.skill)
    _emit(
        args,
        report,
        f"{report['policy']} on {report['env']}: success {report['success_rate']:.0%} over "
        f"{report['episodes']} episodes, mean return {report['mean_return']:.3f}",
    )
    return 0


def cmd_compare_spirl(args: argparse.Namespace) -> int:
    from planners.spirl_compare import run_comparison

    if args.steps < 1 or not args.seeds:
        raise ConfigError("--steps must be >= 1 and --seeds needs at least one seed")
    _load_skill(args.skill)  # refuse a missing or broken skill before spawning runs
    report = run_comparison(
        args.skill, args.env, args.steps, args.seeds, Path(args.out), jobs=args.jobs,
        progress=not args.json,
    )  # fmt: skip
    lines = [f"{'method':12} {'final success per seed':28} mean"]
    for method, row in report["methods"].items():
        per_seed = ", ".join(f"{v:.2f}" for v in row["final_success_rate_per_seed"])
        lines.append(f"{method:12} {per_seed:28} {row['final_success_rate_mean']:.2f}")
    lines.append(f"wrote {report['csv']} and {report['plot']}")
    _emit(args, report, "\n".join(lines))
    return 0


def add_train_commands(algorithms: argparse._SubParsersAction, with_json: WithJson) -> None:
    """``hrl train spirl-skills`` and ``hrl train spirl``."""
    skills = with_json(algorithms.add_parser("spirl-skills", help="SPiRL skills and prior"))
    skills.add_argument("--dataset", required=True, help="HDF5 file from `hrl collect`")
    skills.add_argument("--out", required=True, help="package directory")
    skills.add_argument("--name", default="spirl-skills", help="package name")
    skills.add_argument("--horizon", type=int, default=10, help="H, actions per skill")
    skills.add_argument("--latent-dim", type=int, default=10, help="dz")
    skills.add_argument("--beta", type=float, default=5e-4, help="KL weight")
    skills.add_argument("--updates", type=int, default=6000, help="gradient steps")
    skills.add_argument("--open-loop", action="store_true", help="decoder p(a_1..a_H | z)")
    skills.add_argument("--seed", type=int, default=0)
    skills.add_argument("--resume", action="store_true")
    skills.set_defaults(func=cmd_train_spirl_skills)

    spirl = with_json(algorithms.add_parser("spirl", help="SPiRL high-level policy"))
    spirl.add_argument("--skill", required=True, help="skill with a prior")
    spirl.add_argument("--env", required=True, help="downstream task")
    spirl.add_argument("--steps", type=int, default=300_000, help="control-step budget")
    spirl.add_argument("--out", required=True, help="policy package directory")
    spirl.add_argument("--name", default="spirl-policy", help="package name")
    spirl.add_argument(
        "--method", choices=("spirl", "skill_sac"), default="spirl", help="with or without prior"
    )
    spirl.add_argument("--seed", type=int, default=0)
    spirl.set_defaults(func=cmd_train_spirl)


def add_commands(commands: argparse._SubParsersAction, with_json: WithJson) -> None:
    """``hrl collect`` and ``hrl eval``."""
    collect = with_json(commands.add_parser("collect", help="record scripted offline data"))
    collect.add_argument("--env", default="hrl/PointMaze-v0")
    collect.add_argument("--episodes", type=int, required=True)
    collect.add_argument("--out", required=True, help="HDF5 file to write")
    collect.add_argument("--seed", type=int, default=0)
    collect.add_argument(
        "--max-goal-cells", type=int, help="goals within this many cells of the start"
    )
    collect.set_defaults(func=cmd_collect)

    evaluate = with_json(commands.add_parser("eval", help="evaluate a high-level policy"))
    evaluate.add_argument("--policy", required=True, help="policy package NAME[@VERSION]")
    evaluate.add_argument("--env", required=True)
    evaluate.add_argument("--episodes", type=int, default=20)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--skill", help="override the skill the policy names")
    evaluate.set_defaults(func=cmd_eval)

    compare = commands.add_parser("compare", help="comparisons that write curves")
    targets = compare.add_subparsers(dest="target", required=True, metavar="TARGET")
    spirl = with_json(targets.add_parser("spirl", help="SPiRL vs skill-space SAC vs flat SAC"))
    spirl.add_argument("--skill", default="spirl-maze", help="skill with a prior")
    spirl.add_argument("--env", default="hrl/PointMazeFar-v0")
    spirl.add_argument("--steps", type=int, default=300_000, help="control steps per run")
    spirl.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    spirl.add_argument("--jobs", type=int, default=2, help="runs side by side")
    spirl.add_argument("--out", default="runs/spirl-compare")
    spirl.set_defaults(func=cmd_compare_spirl)
