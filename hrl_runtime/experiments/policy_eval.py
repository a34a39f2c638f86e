"""Evaluates a packaged high-level policy with its skill in the control loop (``hrl eval``)."""

from __future__ import annotations

from typing import Any

import numpy as np

import envs
from hrl_runtime.agent import HierarchicalAgent
from hrl_runtime.async_loop import AsyncControlLoop, AsyncLoopConfig
from hrl_runtime.errors import ConfigError, IncompatibleError
from hrl_runtime.loop import ControlLoop, LoopConfig, latency_summary_ms
from hrl_runtime.registry import SkillRegistry, load_skill
from skill_library.spirl.policy import SPiRLPolicy, check_policy_fits


def evaluate_policy(
    policy_ref: str,
    env_id: str,
    episodes: int,
    seed: int,
    skill_ref: str | None = None,
    *,
    asynchronous: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    """Runs a packaged high-level policy with its skill, episode after episode.

    Args:
        policy_ref: the policy package.
        env_id: the task.
        episodes: how many; episode ``i`` resets with ``seed + i``.
        seed: the first episode's seed.
        skill_ref: the skill to drive (default: the one the policy names).
        asynchronous: the policy runs in the planner thread beside a real-time control loop;
            False: inline in the synchronous loop, as fast as the simulation allows.
        threads: numba threads of the planner (see :mod:`hrl_runtime.threads`).
    """
    policy, skill, env = _load(policy_ref, env_id, skill_ref)
    period = float(env.unwrapped.dt)
    limit = env.spec.max_episode_steps or 3000
    runs = []
    if asynchronous:
        config = AsyncLoopConfig(control_period_s=period, planner_threads=threads)
        with AsyncControlLoop(skill, policy, config) as loop:
            for episode in range(episodes):
                runs.append(loop.run(env, max_steps=limit, seed=seed + episode))
    else:
        loop = ControlLoop(LoopConfig(control_period_s=period, threads=threads))
        for episode in range(episodes):
            agent = HierarchicalAgent(policy, skill, replan_every=skill.hold_steps)
            runs.append(loop.run(agent, env, max_steps=limit, seed=seed + episode))
    results = [_episode(run) for run in runs]
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
        "deadline_misses": int(sum(run.deadline_misses for run in runs)),
        "control_latency_ms": latency_summary_ms(
            np.concatenate([run.control_latency_s for run in runs])
        ),
        "mode": "async" if asynchronous else "sync",
        "threads": runs[-1].summary()["threads"] if runs else {},
        "per_episode": results,
    }


def _load(policy_ref: str, env_id: str, skill_ref: str | None):
    """The policy, the skill it drives and the environment, checked to fit together."""
    policy = SkillRegistry().load(policy_ref)
    if not isinstance(policy, SPiRLPolicy):
        raise IncompatibleError(f"{policy_ref!r} is not a high-level policy package")
    skill = load_skill(skill_ref or policy.skill_ref)
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
    return policy, skill, env


def _episode(run: Any) -> dict[str, Any]:
    """One episode's outcome; success = the task terminated (goal reached) without faults."""
    faults = run.summary()["faults"]["total"]
    return {
        "success": run.stop_reason == "terminated" and faults == 0,
        "return": float(run.rewards.sum()),
        "steps": run.steps,
        "faults": faults,
    }
