"""Evaluates a packaged high-level policy with its skill in the control loop (``hrl eval``)."""

from __future__ import annotations

from typing import Any

import numpy as np

import envs
from hrl_runtime.agent import HierarchicalAgent
from hrl_runtime.errors import ConfigError, IncompatibleError
from hrl_runtime.loop import ControlLoop, LoopConfig, latency_summary_ms
from hrl_runtime.registry import SkillRegistry, load_skill
from skill_library.spirl.policy import SPiRLPolicy, check_policy_fits


def evaluate_policy(
    policy_ref: str, env_id: str, episodes: int, seed: int, skill_ref: str | None = None
) -> dict[str, Any]:
    """Runs a packaged high-level policy with its skill in the ControlLoop."""
    registry = SkillRegistry()
    policy = registry.load(policy_ref)
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
