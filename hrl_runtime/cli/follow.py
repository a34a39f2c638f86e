"""``hrl follow``, ``hrl demo`` and ``hrl envs``: goal following from the command line."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from hrl_runtime import checks
from hrl_runtime.cli.common import (
    GOALS,
    SEED,
    STEPS,
    WithJson,
    add_force_flag,
    add_loop_flags,
    check_video,
    emit,
    json_default,
    make_env,
    ms,
    positive_type,
    show_progress,
)
from hrl_runtime.errors import ConfigError, IncompatibleError
from hrl_runtime.experiments.follow import (
    FollowConfig,
    follow_goals,
    parse_goals,
    plot_follow,
    validate_goals,
)
from hrl_runtime.registry import load_skill

DEFAULT_STEPS_PER_GOAL = 1000
"""Steps per goal for environments that declare no episode length."""
PLANNER_CHOICES = ("sequence", "mppi", "chaining")
"""The high levels ``planners.build_goal_follower`` builds (``planners.factory.PLANNERS``; named
here so that ``hrl --help`` does not import the planners, and a test holds the two equal)."""


def _run_follow(
    *,
    skill_ref: str,
    env_id: str,
    planner: str,
    goals: np.ndarray | None,
    random_goals: int | None,
    seed: int,
    steps_per_goal: int | None,
    radius: float | None,
    realtime: bool,
    record_plans_every: int = 0,
    video: str | None = None,
    sync: bool = False,
    threads: int | None = None,
    perturbation: Any = None,
    adapt: bool = False,
    tour: bool = False,
):
    import envs  # MuJoCo and numba load when a command needs them, not for `hrl --help`
    from planners import SequenceConfig, build_goal_follower

    _check_adapt(adapt, planner)
    n_goals = len(goals) if goals is not None else int(random_goals or 0)
    steps_per_goal = _goal_budget(env_id, steps_per_goal, n_goals)
    env, xy, space, goals = _env_and_goals(env_id, goals, n_goals, seed, steps_per_goal, video)
    if perturbation is not None:
        env = perturbed_env(env, perturbation)
    skill = load_skill(skill_ref)  # after the cheap checks of goals and env
    adapter = _adapter(skill) if adapt else None
    radius = envs.success_radius(env_id) if radius is None else radius
    config = FollowConfig(
        success_radius=radius,
        steps_per_goal=steps_per_goal,
        asynchronous=not (sync or video),  # rendering frames inline cannot keep a real-time loop
        realtime=realtime,
        seed=seed,
        threads=threads,
        # goals given from the start pose (Ant's) are each attempted from a reset, unless the
        # run is a tour (one goal after another along one path)
        reset_each_goal=not tour and space is not None and space.start_distance is not None,
    )

    def make_high_level(part: np.ndarray):
        sequence = SequenceConfig(radius, steps_per_goal)
        follower = build_goal_follower(planner, skill, part, xy, sequence, seed=seed)
        if adapter is not None:
            follower.delegate.use_adapter(adapter)
        return follower

    high_level = make_high_level(goals)
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
        progress=show_progress(),
        make_high_level=make_high_level,
    )
    if video:
        _write_video(frames, video, fps=25)
    report.perturbation = None if perturbation is None else perturbation.label()
    report.adaptation = None if adapter is None else adapter.report()
    return report, env


def _check_adapt(adapt: bool, planner: str) -> None:
    """Raises ConfigError when ``--adapt`` is given with a planner that has no dynamics."""
    if adapt and planner != "mppi":
        raise ConfigError(
            f"--adapt adapts the skill dynamics that latent MPPI plans with; --planner {planner} "
            "plans with none: use --planner mppi"
        )


def _adapter(skill: Any) -> Any:
    """The online adapter of ``skill``'s dynamics (its meta-learned settings, if any)."""
    from skill_library.meta.skill import adapter_for

    return adapter_for(skill)


def _goal_budget(env_id: str, steps_per_goal: int | None, n_goals: int) -> int:
    """Control steps per goal: ``--max-steps``, else the env's episode length.

    Raises:
        ConfigError: the goals together would allow more steps than one run may take.
    """
    import envs

    if steps_per_goal is None:
        steps_per_goal = envs.episode_steps(env_id) or DEFAULT_STEPS_PER_GOAL
    if steps_per_goal * n_goals > checks.MAX_STEPS:
        raise ConfigError(
            f"{n_goals} goals of {steps_per_goal} control steps each allow "
            f"{steps_per_goal * n_goals:,} steps, more than the {checks.MAX_STEPS:,} of one run; "
            "lower --max-steps or the number of goals"
        )
    return steps_per_goal


def parse_perturbation(text: str | None) -> Any:
    """``--perturb NAME=VALUE[,...]`` as an :class:`envs.perturb.Perturbation` (None: none).

    Raises:
        ConfigError: the text is malformed (one line naming the entry).
    """
    if text is None:
        return None
    from envs.perturb import Perturbation, PerturbationError

    try:
        return Perturbation.parse(text)
    except PerturbationError as error:
        raise ConfigError(str(error)) from None


def perturbed_env(env: Any, perturbation: Any) -> Any:
    """``env`` on the perturbed body at every reset.

    Raises:
        ConfigError: the body does not apply to the env (one line).
    """
    from envs.perturb import PerturbationError, PerturbedBody

    try:
        return PerturbedBody(env, perturbation)
    except PerturbationError as error:
        raise ConfigError(str(error)) from None


def _env_and_goals(env_id, goals, n_goals, seed, steps_per_goal, video):
    """The plant (time limit for every goal), its x-y entries and goal space, and the goals
    (``n_goals`` sampled from the space when none are given), validated."""
    import envs

    render_mode = "rgb_array" if video else None
    env = make_env(env_id, steps_per_goal * n_goals + 1, render_mode)
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
    return env, xy, space, goals


def _check_rendering(env, video: str) -> None:
    """Renders one frame of ``env`` (its model, its size) before the run starts."""
    import warnings

    env.reset(seed=0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = env.render()
    except Exception as error:  # GL back ends fail in many ways; report, do not crash
        raise ConfigError(
            f"--video {checks.shorten(video)}: offscreen rendering failed "
            f"({checks.shorten(f'{type(error).__name__}: {error}')}); enable it with `apt-get "
            "install libosmesa6` and MUJOCO_GL=osmesa PYOPENGL_PLATFORM=osmesa, or drop --video"
        ) from None
    if frame is None:
        raise ConfigError("the environment rendered no frame; drop --video")


def _write_video(frames: list[np.ndarray], path: str, fps: int) -> None:
    import imageio.v2 as imageio

    if path.lower().endswith(".gif"):
        imageio.mimsave(path, frames, duration=1.0 / fps, loop=0)
    else:
        imageio.mimsave(path, frames, fps=fps)


def _report_text(payload: dict[str, Any]) -> str:
    lines = [f"{'#':>3} {'goal':>16} {'reached':>8} {'distance':>9} {'steps':>6} {'norm.dist':>9}"]
    lines[0] += "  fell" if payload["falls"] else ""
    for index, goal in enumerate(payload["goals"]):
        distance = goal["final_distance"]
        normalized = goal["normalized_distance"]
        lines.append(
            f"{index + 1:>3} {goal['goal'][0]:>7.2f},{goal['goal'][1]:>7.2f}  "
            f"{'yes' if goal['reached'] else 'no':>8} "
            f"{distance if distance is not None else float('nan'):>9.3f} {goal['steps']:>6} "
            f"{normalized if normalized is not None else float('nan'):>9.3f}"
            + ("   yes" if goal.get("fell") else "")
        )
    control, planner = payload["control_latency_ms"], payload["planner_latency_ms"]

    lines += [
        f"success rate {payload['success_rate']:.0%} over {len(payload['goals'])} goals "
        f"(radius {payload['success_radius']:g} m), "
        f"{payload['steps']} steps at {payload['control_period_ms']:g} ms",
        f"control latency ms  p50 {ms(control['p50'])}  p99 {ms(control['p99'])}  "
        f"max {ms(control['max'])}",
        f"planner latency ms  p50 {ms(planner['p50'])}  p99 {ms(planner['p99'])}  "
        f"max {ms(planner['max'])}",
        f"deadline misses {payload['deadline_misses']}, faults {payload['faults']}, "
        f"falls {payload['falls']}",
    ]
    age = payload.get("plan_age_ms")
    if payload.get("mode") == "async" and age and age["p50"] is not None:
        lines.insert(-1, f"plan age ms         p50 {ms(age['p50'])}  p99 {ms(age['p99'])}")
    return "\n".join(lines)


def _layout_of(env) -> Any:
    return getattr(env.unwrapped, "layout", None)


def cmd_follow(args: argparse.Namespace) -> int:
    if (args.goals is None) == (args.random_goals is None):
        raise ConfigError('give exactly one of --goals "x,y;..." or --random-goals N')
    plot = None
    if args.plot is not None:  # outputs are checked before any work
        plot = checks.output_file(args.plot, "--plot", suffixes=(".png",), force=args.force)
    check_video(args.video, args.force)
    goals = parse_goals(args.goals) if args.goals is not None else None
    perturbation = parse_perturbation(args.perturb)
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
        record_plans_every=4 if plot else 0,
        video=args.video,
        sync=args.sync,
        threads=args.threads,
        perturbation=perturbation,
        adapt=args.adapt,
    )
    payload = report.to_json()
    if plot is not None:
        payload["plot"] = str(plot_follow(report, plot, _layout_of(env), report.success_radius))
    emit(args, payload, _report_text(payload))
    return 0


# A tour of the open arena: far apart, in every direction, ending back near the start.
DEMO_GOALS = "3.5,3.5;-3.5,3.0;-4.0,-3.5;3.0,-4.0;4.0,0.5;-0.5,0.5"
# Ant's tour: four goals one after another (each 3-8 m from the start, as Ant's goals are),
# ~17 m of walking with turns to the left.
DEMO_ANT_GOALS = "4,0;4,4;-1,5;-4,2"


def cmd_demo(args: argparse.Namespace) -> int:
    tour, radius = False, 0.5
    if args.scenario == "dads":
        # Zero-shot goal following: DADS skills learned without reward, composed by latent MPPI.
        env_id, skill_ref, planner = "hrl/PointArena-v0", "dads-pointmass", "mppi"
        goals = parse_goals(DEMO_GOALS)
    elif args.scenario == "ant":
        # The same on a legged body: DADS skills on Ant-v5, latent MPPI in the real-time loop.
        env_id, skill_ref, planner = "Ant-v5", "dads-ant", "mppi"
        goals, tour, radius = parse_goals(DEMO_ANT_GOALS), True, 1.0
    else:
        # The scripted reach skill touring the maze's goal cells along corridor waypoints.
        env_id, skill_ref, planner = "hrl/PointMaze-v0", "scripted-reach", "sequence"
        from envs import MazeLayout

        layout = MazeLayout.load("maze")
        waypoints, position = [], layout.start_xy
        for cell in layout.goal_cells:
            target = layout.xy_of(cell)
            waypoints.extend(layout.shortest_path(position, target))
            position = target
        goals = np.asarray(waypoints)
    out = checks.output_dir(args.out, "--out", may_exist=True)  # before any work
    check_video(args.video, args.force)
    perturbation = parse_perturbation(args.perturb)
    report, env = _run_follow(
        skill_ref=skill_ref,
        env_id=env_id,
        planner=planner,
        goals=goals,
        random_goals=None,
        seed=args.seed,
        steps_per_goal=1000,
        radius=radius,
        realtime=False,
        record_plans_every=4,
        video=args.video,
        sync=args.sync,
        threads=args.threads,
        perturbation=perturbation,
        tour=tour,
    )
    out.mkdir(parents=True, exist_ok=True)
    payload = report.to_json()
    payload["plot"] = str(plot_follow(report, out / "demo.png", _layout_of(env), radius))
    if args.video:
        payload["video"] = args.video
    (out / "demo.json").write_text(json.dumps(payload, indent=2, default=json_default) + "\n")
    emit(args, payload, _report_text(payload) + f"\nwrote {payload['plot']}")
    return 0


def cmd_envs(args: argparse.Namespace) -> int:
    import envs

    ids = envs.env_ids()
    emit(args, {"envs": ids}, "\n".join(ids))
    return 0


def add_perturb_flag(sub: argparse.ArgumentParser) -> None:
    """Adds ``--perturb NAME=VALUE[,...]``: run on a changed body."""
    sub.add_argument(
        "--perturb",
        metavar="NAME=VALUE[,...]",
        help="run on a changed body: gain=SCALE (motor strength), mirror=x|y|xy (point mass: "
        "actuators push the other way), mass=SCALE, leg=1..4 (Ant: that leg's actuators off)",
    )


def add_commands(commands: argparse._SubParsersAction, with_json: WithJson) -> None:
    """``hrl follow``, ``hrl demo`` and ``hrl envs``."""
    follow = with_json(commands.add_parser("follow", help="follow goals with a skill"))
    follow.add_argument("--skill", required=True, help="skill NAME[@VERSION] or directory")
    follow.add_argument("--env", required=True, help="environment id (see `hrl envs`)")
    goals = follow.add_mutually_exclusive_group(required=True)
    goals.add_argument(
        "--goals", help='goals as "x,y;x,y;..." in metres (a first goal may be negative)'
    )
    goals.add_argument(
        "--random-goals", type=GOALS, help=f"sample N reachable goals (1..{checks.MAX_GOALS})"
    )
    follow.add_argument(
        "--planner",
        default="sequence",
        choices=PLANNER_CHOICES,
        help="high level: sequence (x-y goals as commands; goal-commanded skills), mppi (plans "
        "over the skill's dynamics), chaining (subgoals by the skill's values); default sequence",
    )
    follow.add_argument(
        "--seed", type=SEED, default=0, help="seed for goals, reset and planner (0..2**32-1)"
    )
    follow.add_argument(
        "--max-steps",
        type=STEPS,
        help="control steps allowed per goal (default: the env's episode length, 2000 in "
        f"hrl/PointMaze-v0, 1000 in hrl/PointArena-v0; {DEFAULT_STEPS_PER_GOAL} if it has none)",
    )
    follow.add_argument(
        "--radius",
        type=positive_type(checks.MAX_MAGNITUDE),
        default=None,
        help=f"success radius, m (finite, > 0; default {FollowConfig().success_radius:g}, "
        "1 in Ant-v5)",
    )
    add_loop_flags(follow)
    follow.add_argument(
        "--realtime", action="store_true", help="with --sync: pace to the wall clock"
    )
    follow.add_argument("--plot", help="write a PNG of the run here (a .png file)")
    follow.add_argument(
        "--video", help="write a video (.mp4 or .gif; needs offscreen GL; implies --sync)"
    )
    add_force_flag(follow, "--plot and --video files")
    add_perturb_flag(follow)
    follow.add_argument(
        "--adapt",
        action="store_true",
        help="adapt the skill dynamics online at every replanning (--planner mppi; a skill from "
        "`hrl train adapt` uses its meta-learned settings, any other its dynamics with M=16, "
        "one step, alpha=0.1)",
    )
    follow.set_defaults(func=cmd_follow)

    demo = with_json(
        commands.add_parser("demo", help="the main demo: zero-shot goal following with DADS")
    )
    demo.add_argument(
        "--out",
        default="runs/demo",
        help="output directory; demo.png and demo.json are written (replaced) in it",
    )
    demo.add_argument("--seed", type=SEED, default=0, help="seed (0..2**32-1)")
    demo.add_argument(
        "--scenario",
        choices=("dads", "ant", "maze"),
        default="dads",
        help="dads: DADS skills + latent MPPI in the arena; ant: the same on Ant-v5 with "
        "dads-ant (a tour of 4 goals); maze: scripted reach through the maze",
    )
    demo.add_argument(
        "--video", help="also write a video (.mp4 or .gif; needs offscreen GL; implies --sync)"
    )
    add_loop_flags(demo)
    add_force_flag(demo, "the --video file")
    add_perturb_flag(demo)
    demo.set_defaults(func=cmd_demo)

    envs_parser = with_json(commands.add_parser("envs", help="supported environment ids"))
    envs_parser.set_defaults(func=cmd_envs)
