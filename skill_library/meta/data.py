"""Skill transitions on perturbed bodies, collected with the skill's own policy.

One body (task) is one episode on a body drawn from a
:class:`~envs.perturb.PerturbationDistribution`, from a random free start: the skill runs with a
command drawn per hold (kept for the next hold with probability ``persistence``) plus a little
per-control-step noise, as a replanning loop moves its command at every tick. Each hold of
``hold_steps`` control steps is one transition ``(s, mean z, s')`` of the planning state.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from envs import goal_space, make_env
from envs.perturb import Perturbation, PerturbationDistribution, PerturbedBody
from hrl_runtime.skill import Skill

logger = logging.getLogger(__name__)


class BodyData(NamedTuple):
    """Transitions of N bodies, W each, in order of time."""

    states: np.ndarray
    """``(N, W, ds)`` float32 planning states at the start of each hold."""
    commands: np.ndarray
    """``(N, W, dz)`` float32 commands, averaged over the hold."""
    next_states: np.ndarray
    """``(N, W, ds)`` float32 planning states at the end of each hold."""
    bodies: list[str]
    """The label of each body (:meth:`Perturbation.label`)."""


def collect_bodies(
    skill: Skill,
    env_id: str,
    bodies: int,
    transitions: int,
    seed: int,
    distribution: PerturbationDistribution | None = None,
    fixed: Perturbation | None = None,
    jitter: float = 0.05,
    persistence: float = 0.3,
    progress: bool = False,
    state_indices: tuple[int, ...] | None = None,
) -> BodyData:
    """Runs ``skill`` for ``transitions`` holds on each of ``bodies`` bodies.

    Args:
        skill: a skill with ``dynamics`` (its ``state_indices`` define the planning state).
        env_id: the environment.
        bodies: N, episodes (one body each).
        transitions: W, holds per episode.
        seed: seed of the bodies, starts and commands.
        distribution: bodies to draw from (default: the training distribution).
        fixed: one body for every episode instead (evaluation).
        jitter: std of the per-control-step command noise.
        persistence: probability that a hold keeps the previous hold's command.
        progress: show a progress bar.
        state_indices: observation entries of the planning state (default: the skill
            dynamics').

    Returns:
        The transitions.
    """
    rng = np.random.default_rng(seed)
    h = skill.hold_steps
    env = make_env(env_id, max_episode_steps=transitions * h + 1)
    if fixed is None:
        env = PerturbedBody(env, distribution=distribution or PerturbationDistribution(), seed=seed)
    else:
        env = PerturbedBody(env, perturbation=fixed)
    space = goal_space(env)
    indices = list(state_indices or skill.dynamics.state_indices)
    ds, dz = len(indices), int(np.prod(skill.command_space.shape))
    low = np.asarray(skill.command_space.low, np.float32)
    high = np.asarray(skill.command_space.high, np.float32)
    states = np.zeros((bodies, transitions, ds), np.float32)
    commands = np.zeros((bodies, transitions, dz), np.float32)
    next_states = np.zeros((bodies, transitions, ds), np.float32)
    labels = []
    for body in tqdm(range(bodies), disable=not progress, desc="bodies", unit="body"):
        options = None
        if space is not None and hasattr(env.unwrapped, "layout"):
            options = {"start_xy": space.sample(rng, 1)[0]}
        obs, info = env.reset(seed=int(rng.integers(2**31)), options=options)
        labels.append(info["perturbation"])
        skill.reset()
        z = rng.uniform(low, high).astype(np.float32)
        for t in range(transitions):
            if t > 0 and rng.uniform() >= persistence:
                z = rng.uniform(low, high).astype(np.float32)
            states[body, t] = obs[indices]
            total = np.zeros(dz, np.float64)
            for _ in range(h):
                command = np.clip(z + rng.normal(0.0, jitter, dz), low, high).astype(np.float32)
                total += command
                obs, _, terminated, truncated, _ = env.step(skill.act(obs, command))
                if terminated or truncated:
                    break
            commands[body, t] = total / h
            next_states[body, t] = obs[indices]
            if terminated or truncated:
                logger.warning("body %d ended early at hold %d", body, t)
                states[body, t + 1 :] = obs[indices]
                next_states[body, t + 1 :] = obs[indices]
                commands[body, t + 1 :] = z
                break
    env.close()
    return BodyData(states, commands, next_states, labels)
