"""The ``hrl`` command line.

Every command that reports results takes ``--json`` and then prints exactly one JSON object on
stdout. Input errors print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from hrl_runtime.errors import ConfigError, HrlError, IncompatibleError
from hrl_runtime.registry import SkillRegistry, verify_package
from hrl_runtime.skill import Skill

logger = logging.getLogger("hrl_runtime.cli")


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(payload, default=_json_default))
    else:
        print(text)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# --- skills -------------------------------------------------------------------------------------
def _entry_json(entry) -> dict[str, Any]:
    manifest = entry.manifest
    return {
        "name": entry.name,
        "version": entry.version,
        "kind": entry.kind,
        "role": entry.role,
        "source": entry.source,
        "path": str(entry.path),
        "hold_steps": manifest.get("hold_steps"),
        "components": {k: v is not None for k, v in manifest.get("components", {}).items()},
        "description": manifest.get("description", ""),
    }


def cmd_skills_list(args: argparse.Namespace) -> int:
    registry = SkillRegistry()
    found, errors = registry.entries()
    entries = sorted(found, key=lambda e: (e.name, e.version))
    rows = [_entry_json(e) for e in entries]
    lines = [f"{'name@version':28} {'kind':16} {'source':16} components"]
    for row in rows:
        offered = ",".join(k for k, present in row["components"].items() if present) or "-"
        lines.append(
            f"{row['name'] + '@' + row['version']:28} {row['kind']:16} {row['source']:16} {offered}"
        )
    lines += [f"unreadable: {error}" for error in errors]
    _emit(args, {"skills": rows, "errors": [str(e) for e in errors]}, "\n".join(lines))
    return 0


def cmd_skills_show(args: argparse.Namespace) -> int:
    entry = SkillRegistry().resolve(args.name)
    payload = {**_entry_json(entry), "manifest": entry.manifest}
    text = json.dumps(entry.manifest, indent=2)
    _emit(args, payload, f"{entry.ref} from {entry.path}\n{text}")
    return 0


def cmd_skills_verify(args: argparse.Namespace) -> int:
    report = verify_package(Path(args.path))
    files = ", ".join(f"{k} ({v['parameters']} parameters)" for k, v in report["files"].items())
    _emit(args, report, f"OK {report['name']}@{report['version']} ({report['kind']}): {files}")
    return 0


# --- follow -------------------------------------------------------------------------------------
DEFAULT_STEPS_PER_GOAL = 1000
"""Steps per goal for environments that declare no episode length."""


def _make_env(env_id: str, max_episode_steps: int, render_mode: str | None = None):
    import envs

    try:
        return envs.make_env(env_id, max_episode_steps=max_episode_steps, render_mode=render_mode)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _load_skill(ref: str) -> Skill:
    skill = SkillRegistry().load(ref)
    if not isinstance(skill, Skill):
        raise IncompatibleError(f"{ref!r} is a {type(skill).__name__}, not a skill")
    return skill


def _run_follow(
    *,
    skill_ref: str,
    env_id: str,
    planner: str,
    goals: np.ndarray | None,
    random_goals: int | None,
    seed: int,
    steps_per_goal: int | None,
    radius: float,
    realtime: bool,
    record_plans_every: int = 0,
    video: str | None = None,
):
    import envs
    from hrl_runtime.follow import FollowConfig, follow_goals, validate_goals
    from planners import SequenceConfig, build_goal_follower

    if steps_per_goal is None:
        steps_per_goal = envs.episode_steps(env_id) or DEFAULT_STEPS_PER_GOAL
    if steps_per_goal < 1:
        raise ConfigError(f"--max-steps must be >= 1, got {steps_per_goal}")
    if radius <= 0:
        raise ConfigError(f"--radius must be > 0, got {radius}")
    skill = _load_skill(skill_ref)
    n_goals = len(goals) if goals is not None else int(random_goals or 0)
    if n_goals < 1:
        raise ConfigError("--random-goals must be >= 1")
    render_mode = "rgb_array" if video else None
    env = _make_env(env_id, steps_per_goal * n_goals + 1, render_mode)
    xy = envs.xy_indices(env)
    if xy is None:
        raise IncompatibleError(
            f"{env_id} does not expose an x-y position, which goal following needs; "
            f"choose one of {', '.join(envs.env_ids())} that does"
        )
    space = envs.goal_space(env)
    if goals is None:
        if space is None:
            raise ConfigError(f"{env_id} has no goal space to sample from; pass --goals")
        goals = space.sample(np.random.default_rng(seed), n_goals)
    validate_goals(goals, space, env_id)
    config = FollowConfig(
        success_radius=radius, steps_per_goal=steps_per_goal, realtime=realtime, seed=seed
    )
    high_level = build_goal_follower(
        planner, skill, goals, xy, SequenceConfig(radius, steps_per_goal), seed=seed
    )
    frames: list[np.ndarray] = []
    frame_every = max(1, round(0.04 / float(env.unwrapped.dt))) if video else 0  # 25 fps
    if video:
        _check_rendering(env, video)
    report = follow_goals(
        skill,
        high_level,
        env,
        env_id=env_id,
        planner=planner,
        goals=goals,
        xy_indices=xy,
        config=config,
        control_period_s=float(env.unwrapped.dt),
        record_plans_every=record_plans_every,
        frame_every=frame_every,
        frames=frames,
    )
    if video:
        _write_video(frames, video, fps=25)
    return report, env


def _check_rendering(env, video: str) -> None:
    suffix = Path(video).suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise ConfigError(f"--video must end in .mp4 or .gif, got {video!r}")
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ConfigError(
                "writing .mp4 needs imageio-ffmpeg (pip install imageio-ffmpeg); or write a .gif"
            ) from None
    env.reset(seed=0)
    try:
        frame = env.render()
    except Exception as error:  # GL back ends fail in many ways; report, do not crash
        raise ConfigError(
            f"offscreen rendering is unavailable ({type(error).__name__}: {error}); install "
            "libosmesa6 and set MUJOCO_GL=osmesa PYOPENGL_PLATFORM=osmesa, or drop --video"
        ) from None
    if frame is None:
        raise ConfigError("the environment rendered no frame; drop --video")


def _write_video(frames: list[np.ndarray], path: str, fps: int) -> None:
    import imageio.v2 as imageio

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if path.lower().endswith(".gif"):
        imageio.mimsave(path, frames, duration=1.0 / fps, loop=0)
    else:
        imageio.mimsave(path, frames, fps=fps)


def _report_text(payload: dict[str, Any]) -> str:
    lines = [f"{'#':>3} {'goal':>16} {'reached':>8} {'distance':>9} {'steps':>6} {'norm.dist':>9}"]
    for index, goal in enumerate(payload["goals"]):
        distance = goal["final_distance"]
        normalized = goal["normalized_distance"]
        lines.append(
            f"{index + 1:>3} {goal['goal'][0]:>7.2f},{goal['goal'][1]:>7.2f}  "
            f"{'yes' if goal['reached'] else 'no':>8} "
            f"{distance if distance is not None else float('nan'):>9.3f} {goal['steps']:>6} "
            f"{normalized if normalized is not None else float('nan'):>9.3f}"
        )
    control, planner = payload["control_latency_ms"], payload["planner_latency_ms"]

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines += [
        f"success rate {payload['success_rate']:.0%} over {len(payload['goals'])} goals, "
        f"{payload['steps']} steps at {payload['control_period_ms']:g} ms",
        f"control latency ms  p50 {ms(control['p50'])}  p99 {ms(control['p99'])}  "
        f"max {ms(control['max'])}",
        f"planner latency ms  p50 {ms(planner['p50'])}  p99 {ms(planner['p99'])}  "
        f"max {ms(planner['max'])}",
        f"deadline misses {payload['deadline_misses']}, faults {payload['faults']}",
    ]
    return "\n".join(lines)


def _layout_of(env) -> Any:
    return getattr(env.unwrapped, "layout", None)


def cmd_follow(args: argparse.Namespace) -> int:
    from hrl_runtime.follow import parse_goals, plot_follow

    if (args.goals is None) == (args.random_goals is None):
        raise ConfigError('give exactly one of --goals "x,y;..." or --random-goals N')
    goals = parse_goals(args.goals) if args.goals is not None else None
    report, env = _run_follow(
        skill_ref=args.skill,
        env_id=args.env,
        planner=args.planner,
        goals=goals,
        random_goals=args.random_goals,
        seed=args.seed,
        steps_per_goal=args.max_steps,
        radius=args.radius,
        realtime=args.realtime,
        record_plans_every=4 if args.plot else 0,
        video=args.video,
    )
    payload = report.to_json()
    if args.plot:
        payload["plot"] = str(plot_follow(report, args.plot, _layout_of(env), args.radius))
    _emit(args, payload, _report_text(payload))
    return 0


# A tour of the open arena: far apart, in every direction, ending back near the start.
DEMO_GOALS = "3.5,3.5;-3.5,3.0;-4.0,-3.5;3.0,-4.0;4.0,0.5;-0.5,0.5"


def cmd_demo(args: argparse.Namespace) -> int:
    import envs
    from hrl_runtime.follow import parse_goals, plot_follow

    if args.scenario == "dads":
        # Zero-shot goal following: DADS skills learned without reward, composed by latent MPPI.
        env_id, skill_ref, planner = "hrl/PointArena-v0", "dads-pointmass", "mppi"
        goals = parse_goals(DEMO_GOALS)
    else:
        # The scripted reach skill touring the maze's goal cells along corridor waypoints.
        env_id, skill_ref, planner = "hrl/PointMaze-v0", "scripted-reach", "sequence"
        layout = envs.MazeLayout.load("maze")
        waypoints, position = [], layout.start_xy
        for cell in layout.goal_cells:
            target = layout.xy_of(cell)
            waypoints.extend(layout.shortest_path(position, target))
            position = target
        goals = np.asarray(waypoints)
    report, env = _run_follow(
        skill_ref=skill_ref,
        env_id=env_id,
        planner=planner,
        goals=goals,
        random_goals=None,
        seed=args.seed,
        steps_per_goal=1000,
        radius=0.5,
        realtime=False,
        record_plans_every=4,
        video=args.video,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = report.to_json()
    payload["plot"] = str(plot_follow(report, out / "demo.png", _layout_of(env), 0.5))
    if args.video:
        payload["video"] = args.video
    (out / "demo.json").write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    _emit(args, payload, _report_text(payload) + f"\nwrote {payload['plot']}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.target == "loop":
        from hrl_runtime.cli_runtime import cmd_bench_loop

        return cmd_bench_loop(args)
    from planners.benchmark import run_benchmark, table_lines

    if args.runs < 1 or args.repeats < 10:
        raise ConfigError("--runs must be >= 1 and --repeats >= 10")
    report = run_benchmark(
        runs=args.runs,
        repeats=args.repeats,
        threads=args.threads,
        sweep=not args.no_sweep,
        out_dir=Path(args.out),
        progress=not args.json,
    )
    text = "\n".join(table_lines(report)) + f"\nwrote {report['plot']} and {report['table']}"
    _emit(args, report, text)
    return 0


def cmd_train_dads(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from skill_library.dads import DADSConfig, DADSTrainer

    config = replace(
        DADSConfig(),
        env_id=args.env,
        latent_dim=args.latent_dim,
        steps=args.steps,
        seed=args.seed,
        num_envs=args.num_envs,
        off_policy=args.off_policy,
    )
    if args.all_dims:
        config = replace(config, dynamics_dims=None, hide_dynamics_dims=False)
    _make_env(args.env, max_episode_steps=10).close()  # refuse unknown ids before training
    command = "hrl " + shlex.join(args.argv)
    trainer = DADSTrainer(config, Path(args.out), command=command)
    path = trainer.train(resume=args.resume, progress=not args.json, name=args.name)
    metrics = json.loads((path / "skill.json").read_text())["metrics"]
    payload = {"package": str(path), "metrics": metrics, "plot": str(path / "skills.png")}
    _emit(
        args,
        payload,
        f"wrote {path} ({metrics['steps']} steps, dynamics log-likelihood "
        f"{metrics['dynamics_log_likelihood']:.3f}, intrinsic reward "
        f"{metrics['intrinsic_reward']:.3f}, "
        f"skill distinctness {metrics['skill_distinctness']:.1f})",
    )
    return 0


def cmd_envs(args: argparse.Namespace) -> int:
    import envs

    ids = envs.env_ids()
    _emit(args, {"envs": ids}, "\n".join(ids))
    return 0


# --- parser -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hrl", description="hrl-runtime: hierarchical planning and control for robot learning"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_json(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--json", action="store_true", help="print one JSON object")
        return sub

    skills = commands.add_parser("skills", help="list, show and verify skill packages")
    skill_commands = skills.add_subparsers(dest="skills_command", required=True, metavar="ACTION")
    with_json(skill_commands.add_parser("list", help="packages on the search path")).set_defaults(
        func=cmd_skills_list
    )
    show = with_json(skill_commands.add_parser("show", help="one package's manifest"))
    show.add_argument("name", help="NAME or NAME@VERSION")
    show.set_defaults(func=cmd_skills_show)
    verify = with_json(skill_commands.add_parser("verify", help="check manifest, hashes, shapes"))
    verify.add_argument("path", help="package directory")
    verify.set_defaults(func=cmd_skills_verify)

    follow = with_json(commands.add_parser("follow", help="follow goals with a skill"))
    follow.add_argument("--skill", required=True, help="skill NAME[@VERSION] or directory")
    follow.add_argument("--env", required=True, help="environment id (see `hrl envs`)")
    goals = follow.add_mutually_exclusive_group(required=True)
    goals.add_argument(
        "--goals", help='goals as "x,y;x,y;..." in metres (write --goals="-1,2;..." if negative)'
    )
    goals.add_argument("--random-goals", type=int, help="sample N reachable goals")
    follow.add_argument("--planner", default="sequence", help="high level (default: sequence)")
    follow.add_argument("--seed", type=int, default=0, help="seed for goals, reset and planner")
    follow.add_argument(
        "--max-steps",
        type=int,
        help="control steps allowed per goal (default: the env's episode length, 2000 in "
        f"hrl/PointMaze-v0, 1000 in hrl/PointArena-v0; {DEFAULT_STEPS_PER_GOAL} if it has none)",
    )
    follow.add_argument("--radius", type=float, default=0.5, help="success radius, metres")
    follow.add_argument("--realtime", action="store_true", help="pace to the wall clock")
    follow.add_argument("--plot", help="write a PNG of the run here")
    follow.add_argument("--video", help="write a video (.mp4 or .gif; needs offscreen GL)")
    follow.set_defaults(func=cmd_follow)

    demo = with_json(
        commands.add_parser("demo", help="the main demo: zero-shot goal following with DADS")
    )
    demo.add_argument("--out", default="runs/demo", help="output directory (PNG and JSON)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--scenario",
        choices=("dads", "maze"),
        default="dads",
        help="dads: DADS skills + latent MPPI in the arena; maze: scripted reach through the maze",
    )
    demo.add_argument("--video", help="also write a video (.mp4 or .gif; needs offscreen GL)")
    demo.set_defaults(func=cmd_demo)

    train = commands.add_parser("train", help="train skills")
    algorithms = train.add_subparsers(dest="algorithm", required=True, metavar="ALGORITHM")
    dads = with_json(algorithms.add_parser("dads", help="DADS skill discovery"))
    dads.add_argument("--env", default="hrl/PointArena-v0", help="environment id")
    dads.add_argument("--latent-dim", type=int, default=2, help="skill dimension dz")
    dads.add_argument("--steps", type=int, default=100_000, help="policy steps in total")
    dads.add_argument("--out", required=True, help="package directory (checkpoints inside)")
    dads.add_argument("--seed", type=int, default=0)
    dads.add_argument("--name", default="dads-skills", help="package name in the registry")
    dads.add_argument("--num-envs", type=int, default=16, help="environments side by side")
    dads.add_argument("--off-policy", action="store_true", help="off-DADS replay")
    dads.add_argument("--all-dims", action="store_true", help="dynamics over every obs entry")
    dads.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    dads.set_defaults(func=cmd_train_dads)

    from hrl_runtime import cli_learning

    cli_learning.add_train_commands(algorithms, with_json)
    cli_learning.add_commands(commands, with_json)
    from hrl_runtime import cli_am

    cli_am.add_train_commands(algorithms, with_json)
    cli_am.add_commands(commands, with_json)

    bench = with_json(
        commands.add_parser("bench", help="planning latency side by side (W1 workload)")
    )
    bench.add_argument(
        "target",
        nargs="?",
        choices=("planner", "loop"),
        default="planner",
        help="planner (default): planning latency; loop: the async control loop at 100 Hz",
    )
    bench.add_argument("--steps", type=int, default=10_000, help="loop: control ticks")
    bench.add_argument("--runs", type=int, default=3, help="side-by-side runs (median taken)")
    bench.add_argument("--repeats", type=int, default=200, help="timed iterations per run")
    bench.add_argument("--threads", type=int, default=2, help="cores each contender may use")
    bench.add_argument("--no-sweep", action="store_true", help="skip the K x T sweep")
    bench.add_argument("--out", default="runs/bench", help="where the table and PNG go")
    bench.set_defaults(func=cmd_bench)

    envs_parser = with_json(commands.add_parser("envs", help="supported environment ids"))
    envs_parser.set_defaults(func=cmd_envs)

    from hrl_runtime import cli_runtime

    cli_runtime.add_commands(commands, with_json)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hrl`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except HrlError as error:
        print(f"hrl: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
