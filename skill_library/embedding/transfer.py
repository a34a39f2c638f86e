"""Transfer by control in the embedding space (Hausman et al. 2018, Sec. 5): a new task is
learned by a high-level SAC policy whose action is the command ``z`` of a frozen embedded skill,
held for the skill's ``hold_steps`` control steps; compared with SAC on raw actions from scratch.

Two new tasks on the arm, neither a training task, both with sparse rewards (as the paper's
sequencing tasks):

- ``interpolate``: touch a target between two trained ones (reward 1 on touching it, which
  ends the episode as a success);
- ``sequence``: touch target A, then target B (reward 1 on touching A, 1 on touching B after
  A, which ends the episode as a success). The observation gains a flag "A touched".

Both methods use the same SAC core and hyperparameters (:attr:`TransferConfig.sac`), the same
observation (the arm's plus the phase flag), the same rewards and the same budget of control
steps. The high level holds each z for ``high_level_hold`` control steps (about the time the arm
takes to reach a target; the skill itself acts every control step) and takes
``high_level_updates`` SAC updates per decision; SAC from scratch takes SAC's usual one update
per control step. Each is evaluated with its deterministic policy every ``eval_every`` control
steps on ``eval_episodes`` episodes.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrl_runtime.threads import ThreadPools
from skill_library.embedding.skill import EmbeddingSkill
from skill_library.replay import ReplayBuffer
from skill_library.sac.config import SACConfig
from skill_library.sac.train import SACLearner

logger = logging.getLogger(__name__)

SUCCESS_RADIUS = 0.1
"""Fingertip distance counted as touching a target, metres."""
TASKS = {
    # a point between trained targets 6 (0.55 m, 270 deg) and 7 (0.95 m, 315 deg), at 0.75 m
    # and 292.5 deg: across the workspace from home, 1.3 m away (a point between targets 0
    # and 1, 0.33 m from home, is found by random torques and solved by SAC from scratch too)
    "interpolate": np.array([[0.75 * np.cos(13 * np.pi / 8), 0.75 * np.sin(13 * np.pi / 8)]]),
    # A at 112.5 degrees, then B at -22.5 degrees (135 degrees on), both at 0.75 m: between
    # trained targets (2 and 3, then 0 and 7). B was first at 247.5 degrees (the other point
    # 135 degrees from A), where embed-arm 3.0.0 has no skill: from A, 3 of 225 held z on a
    # grid over the box pass within 0.1 m of it (all at the box's edge) and 0 of 150 random
    # sequences of z; at -22.5 degrees, 19 of those 150 do
    "sequence": np.array(
        [
            [0.75 * np.cos(5 * np.pi / 8), 0.75 * np.sin(5 * np.pi / 8)],
            [0.75 * np.cos(-np.pi / 8), 0.75 * np.sin(-np.pi / 8)],
        ]
    ),
}
"""Target x-y of each transfer task, metres."""
METHODS = ("embedding", "scratch")
"""High-level SAC over z with the frozen skill; SAC over raw torques from scratch."""


@dataclass(frozen=True)
class TransferConfig:
    """A transfer comparison's settings."""

    env_id: str = "hrl/ArmReach-v0"
    """The arm."""
    steps: int = 20_000
    """Control steps of experience per run (both methods)."""
    episode_steps: int = 200
    """Control steps per episode."""
    eval_every: int = 5_000
    """Control steps between evaluations."""
    eval_episodes: int = 10
    """Episodes per evaluation."""
    scratch_update_every: int = 1
    """SAC from scratch takes one update every this many control steps (1: SAC's usual one
    update per environment step)."""
    high_level_hold: int = 25
    """Control steps the high level holds each z (0.5 s: the task means reach their targets
    from home in 5-50 control steps, so one decision is about one reach)."""
    high_level_updates: int = 4
    """SAC updates of the high level per decision (4 per 25 control steps: still fewer updates
    than SAC from scratch takes on the same steps; with 1, the sequence is learned later)."""
    warmup: int = 1_000
    """Control steps of uniform random actions (or commands) before learning."""
    batch_size: int = 128
    """SAC minibatch size."""
    sac: SACConfig = field(
        default_factory=lambda: SACConfig(hidden=(128, 128), learning_rate=1e-3, discount=0.99)
    )
    """SAC of both methods (the high level discounts per decision, SAC from scratch per
    control step)."""
    seed: int = 0
    """Seed of the first run; run ``k`` uses ``seed + k``."""


class _Task:
    """The arm with a transfer task's reward, success and phase flag."""

    def __init__(self, env: Any, name: str, episode_steps: int):
        self.env, self.name, self.episode_steps = env, name, episode_steps
        self.targets = TASKS[name]

    @property
    def obs_dim(self) -> int:
        return int(self.env.observation_space.shape[0]) + 1

    def reset(self, seed: int) -> np.ndarray:
        obs, _ = self.env.reset(seed=seed, options={"task": 0})
        self.phase, self.t, self.done = 0, 0, False
        self.success = False
        return self._observe(obs)

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        return np.append(obs, np.float32(self.phase)).astype(np.float32)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float]:
        obs, *_ = self.env.step(action)
        self.t += 1
        distance = float(np.linalg.norm(obs[:2] - self.targets[self.phase]))
        reward = 0.0
        if distance <= SUCCESS_RADIUS:
            reward = 1.0
            if self.phase + 1 < len(self.targets):
                self.phase += 1
            else:
                self.success, self.done = True, True
        self.done = self.done or self.t >= self.episode_steps
        return self._observe(obs), reward


def embedding_box(skill: EmbeddingSkill, stds: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """The box the high level's actions in [-1, 1]^dz are mapped onto: the task embeddings'
    means +- ``stds`` standard deviations (the part of the command space the skills were
    trained on; the rest of the command box is z no task ever drew).

    Returns:
        ``center (dz,)`` and ``half_range (dz,)``, within the command bounds.
    """
    bound = float(skill.config.command_bound)
    low = np.clip((skill.embedding_means - stds * skill.embedding_stds).min(0), -bound, bound)
    high = np.clip((skill.embedding_means + stds * skill.embedding_stds).max(0), -bound, bound)
    return ((low + high) / 2).astype(np.float32), ((high - low) / 2).astype(np.float32)


def _flat(obs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(obs, np.float32)[None])


def run_one(
    task_name: str,
    method: str,
    seed: int,
    config: TransferConfig,
    skill: EmbeddingSkill | None,
) -> list[dict[str, float]]:
    """One learning run; returns the evaluation curve ``[{steps, success_rate, return}]``."""
    import envs

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env = envs.make_env(config.env_id, max_episode_steps=10**9)
    task = _Task(env, task_name, config.episode_steps)
    embedded = method == "embedding"
    if embedded and skill is None:
        raise ValueError("the embedding method needs the embedded skill")
    repeat = config.high_level_hold if embedded else 1
    action_dim = skill.command_space.shape[0] if embedded else env.action_space.shape[0]
    center, half_range = embedding_box(skill) if embedded else (0.0, 1.0)
    learner = SACLearner(task.obs_dim, action_dim, config.sac, seed=seed)
    replay = ReplayBuffer(
        config.steps + 1,  # at most one transition per control step: nothing is overwritten
        {
            "obs": (task.obs_dim,),
            "actions": (action_dim,),
            "rewards": (),
            "next_obs": (task.obs_dim,),
            "dones": (),
        },
    )

    def act(obs: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, float]:
        """Holds one high-level action for ``repeat`` control steps; returns obs and reward."""
        total = 0.0
        for _ in range(repeat):
            low = skill.act(obs[:-1], center + half_range * action) if embedded else action
            obs, reward = task.step(low)
            total += reward
            if task.done:
                break
        return obs, total

    def evaluate() -> dict[str, float]:
        successes, returns = [], []
        for episode in range(config.eval_episodes):
            obs, ret = task.reset(10_000 + episode), 0.0
            while not task.done:
                with torch.no_grad():
                    action = learner.policy.mode(_flat(obs))[0].numpy()
                obs, reward = act(obs, action)
                ret += reward
            successes.append(task.success)
            returns.append(ret)
        return {"success_rate": float(np.mean(successes)), "return": float(np.mean(returns))}

    curve, steps, next_eval = [], 0, config.eval_every
    updates_per_action = (
        config.high_level_updates if embedded else repeat / config.scratch_update_every
    )
    owed = 0.0
    obs = task.reset(int(rng.integers(2**31)))
    while steps < config.steps:
        if steps < config.warmup:
            action = rng.uniform(-1, 1, action_dim).astype(np.float32)
        else:
            with torch.no_grad():
                action = learner.policy.sample(_flat(obs), learner.generator)[0][0].numpy()
        before = task.t
        next_obs, reward = act(obs, action)
        steps += task.t - before
        terminal = float(task.success)  # a time limit is no terminal state
        replay.add(
            obs=obs[None],
            actions=action[None],
            rewards=np.array([reward]),
            next_obs=next_obs[None],
            dones=np.array([terminal]),
        )
        obs = task.reset(int(rng.integers(2**31))) if task.done else next_obs
        if steps >= config.warmup:
            owed += updates_per_action
            while owed >= 1.0:
                owed -= 1.0
                learner.update(replay.sample(rng, min(len(replay), config.batch_size)))
        if steps >= next_eval:
            # at the budget point due (a held command may overshoot it by a few steps)
            point = {"steps": float(next_eval), **evaluate()}
            logger.info("%s/%s seed %d: %s", task_name, method, seed, point)
            curve.append(point)
            next_eval += config.eval_every
            obs = task.reset(int(rng.integers(2**31)))
    env.close()
    return curve


def compare(
    skill: EmbeddingSkill, config: TransferConfig, seeds: int, out_dir: Path | str
) -> dict[str, Any]:
    """Runs both methods on both tasks for ``seeds`` seeds; writes ``transfer.csv``,
    ``transfer.png`` and returns the final success rates (mean over seeds) as a table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    # small networks on a shared machine: one torch and one BLAS thread is fastest and
    # reproducible; the caller's pools come back afterwards
    with ThreadPools(blas=1, torch=1):
        for task_name in TASKS:
            for method in METHODS:
                for k in range(seeds):
                    run_config = replace(config, seed=config.seed + k)
                    curve = run_one(task_name, method, config.seed + k, run_config, skill)
                    rows += [{"task": task_name, "method": method, "seed": k, **p} for p in curve]
    with open(out / "transfer.csv", "w", newline="") as handle:
        writer = csv.DictWriter(
            handle, ["task", "method", "seed", "steps", "success_rate", "return"]
        )
        writer.writeheader()
        writer.writerows(rows)
    table = {}
    for task_name in TASKS:
        for method in METHODS:
            # each seed's last evaluation (high-level runs end a few steps past the budget)
            mine = [r for r in rows if r["task"] == task_name and r["method"] == method]
            finals = [
                max((r for r in mine if r["seed"] == k), key=lambda r: r["steps"])["success_rate"]
                for k in {r["seed"] for r in mine}
            ]
            table[f"{task_name}/{method}"] = float(np.mean(finals))
    _plot(rows, out / "transfer.png")
    return {
        "final_success_rate": table,
        "csv": str(out / "transfer.csv"),
        "plot": str(out / "transfer.png"),
    }


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TASKS), figsize=(10, 4), dpi=100)
    for axis, task_name in zip(axes, TASKS, strict=True):
        for method, color in zip(METHODS, ("tab:blue", "tab:red"), strict=True):
            mine = [r for r in rows if r["task"] == task_name and r["method"] == method]
            steps = sorted({r["steps"] for r in mine})
            mean = [np.mean([r["success_rate"] for r in mine if r["steps"] == s]) for s in steps]
            axis.plot(steps, mean, "o-", color=color, label=method)
        axis.set(title=task_name, xlabel="control steps", ylabel="success rate", ylim=(-0.05, 1.05))
        axis.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
