"""DADS training: alternate skill-dynamics fitting and SAC on the intrinsic reward.

Algorithm 1 of Sharma et al. 2019: sample a skill ``z ~ p(z)`` (continuous uniform on
[-1, 1]^dz) and hold it for the episode (or a fixed number of steps); collect on-policy
transitions; update ``q_phi`` by gradient descent on them; relabel their rewards with
``r_z(s, a, s')``; update the policy with SAC. ``off_policy=True`` keeps a replay buffer instead
and weights the dynamics loss by clipped importance ratios ``pi(a|s,z) / pi_behavior(a|s,z)``
(off-DADS, Sharma et al. 2020).

This module is the only place in ``dads/`` that steps an optimizer.
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrl_runtime.errors import ConfigError
from skill_library.checkpoint import load_checkpoint, save_checkpoint
from skill_library.dads.config import DADSConfig
from skill_library.dads.losses import dynamics_loss, intrinsic_reward
from skill_library.dads.networks import make_networks
from skill_library.dads.skill import DADSSkill, DADSSkillConfig
from skill_library.dynamics import LearnedDynamics
from skill_library.replay import ReplayBuffer

logger = logging.getLogger(__name__)


class _Envs:
    """``num_envs`` environments stepped in lockstep at the policy's rate."""

    def __init__(self, config: DADSConfig, rng: np.random.Generator):
        import envs

        horizon = config.episode_length * config.action_repeat + 1
        self.envs = [
            envs.make_env(config.env_id, max_episode_steps=horizon) for _ in range(config.num_envs)
        ]
        self.goal_space = envs.goal_space(self.envs[0])
        self.config = config
        self.rng = rng
        self.obs = np.zeros((config.num_envs, *self.envs[0].observation_space.shape), np.float32)
        self.alive = np.ones(config.num_envs, bool)

    @property
    def obs_dim(self) -> int:
        return self.obs.shape[1]

    @property
    def action_dim(self) -> int:
        return int(np.prod(self.envs[0].action_space.shape))

    def reset(self) -> np.ndarray:
        layout = getattr(self.goal_space, "layout", None)
        for index, env in enumerate(self.envs):
            options = None
            if self.config.random_start and layout is not None:
                options = {"start_xy": tuple(self.goal_space.sample(self.rng, 1)[0])}
            seed = int(self.rng.integers(2**31))
            self.obs[index] = env.reset(seed=seed, options=options)[0]
        self.alive[:] = True
        return self.obs.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Holds each action for ``action_repeat`` control steps; returns next obs and dones."""
        dones = np.zeros(len(self.envs), np.float32)
        for index, env in enumerate(self.envs):
            if not self.alive[index]:
                continue
            for _ in range(self.config.action_repeat):
                obs, _, terminated, truncated, _ = env.step(actions[index])
                if terminated or truncated:
                    break
            self.obs[index] = obs
            if terminated:
                dones[index] = 1.0
                self.alive[index] = False
        return self.obs.copy(), dones


class DADSTrainer:
    """Runs DADS; checkpoints and resumes; packages the result as a :class:`DADSSkill`.

    Args:
        config: the run's configuration.
        out_dir: package directory; checkpoints go to ``out_dir/checkpoint``, TensorBoard
            scalars to ``out_dir/tensorboard``.
        command: the command line that started the run, recorded in the manifest.
    """

    def __init__(self, config: DADSConfig, out_dir: Path, command: str = ""):
        config.validate()
        self.config = config
        self.out_dir = Path(out_dir)
        self.command = command or " ".join(shlex.quote(a) for a in sys.argv)
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.envs = _Envs(config, self.rng)
        obs_dim = self.envs.obs_dim
        self.dynamics_dims = tuple(config.dynamics_dims or range(obs_dim))
        if max(self.dynamics_dims) >= obs_dim:
            raise ConfigError(
                f"dynamics_dims {self.dynamics_dims} out of range for {config.env_id} "
                f"observations of size {obs_dim}"
            )
        hidden = set(self.dynamics_dims) if config.hide_dynamics_dims else set()
        self.policy_dims = tuple(i for i in range(obs_dim) if i not in hidden)
        self.learner, self.dynamics = make_networks(
            len(self.policy_dims),
            self.envs.action_dim,
            len(self.dynamics_dims),
            config.latent_dim,
            config.networks,
            config.sac,
            config.seed,
        )
        self.dynamics_optimizer = torch.optim.Adam(self.dynamics.parameters(), config.dynamics_lr)
        fields = {
            "obs": (obs_dim,),
            "next_obs": (obs_dim,),
            "actions": (self.envs.action_dim,),
            "skills": (config.latent_dim,),
            "dones": (),
            "behavior_log_prob": (),
        }
        capacity = (
            config.replay_capacity
            if config.off_policy
            else config.num_envs * (config.episode_length)
        )
        self.replay = ReplayBuffer(capacity, fields)
        self.steps_done = 0
        self.iteration = 0
        self.history: list[dict[str, float]] = []
        self._writer = None

    # --- data ------------------------------------------------------------------------------
    def _policy_input(self, obs: np.ndarray, skills: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.concatenate([obs[:, self.policy_dims], skills], -1))

    def _sample_skills(self, count: int) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, (count, self.config.latent_dim)).astype(np.float32)

    def collect(self) -> dict[str, np.ndarray]:
        """One episode in every environment with the current stochastic policy."""
        config = self.config
        obs = self.envs.reset()
        skills = self._sample_skills(config.num_envs)
        columns: dict[str, list[np.ndarray]] = {k: [] for k in self.replay.data}
        for step in range(config.episode_length):
            if config.skill_hold and step > 0 and step % config.skill_hold == 0:
                skills = self._sample_skills(config.num_envs)
            with torch.no_grad():
                actions, log_prob = self.learner.policy.sample(
                    self._policy_input(obs, skills), self.learner.generator
                )
            actions = actions.numpy()
            alive = self.envs.alive.copy()
            next_obs, dones = self.envs.step(actions)
            for key, value in (
                ("obs", obs),
                ("next_obs", next_obs),
                ("actions", actions),
                ("skills", skills),
                ("dones", dones),
                ("behavior_log_prob", log_prob.numpy()),
            ):
                columns[key].append(value[alive])
            obs = next_obs
        return {k: np.concatenate(v).astype(np.float32) for k, v in columns.items()}

    def _dynamics_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        dims = list(self.dynamics_dims)
        return {
            "dyn_obs": batch["obs"][:, dims],
            "dyn_next_obs": batch["next_obs"][:, dims],
            "skills": batch["skills"],
        }

    # --- updates ---------------------------------------------------------------------------
    def update_dynamics(self) -> dict[str, float]:
        """``dynamics_updates`` NLL steps (importance-weighted for off-DADS)."""
        metrics: dict[str, float] = {}
        for _ in range(self.config.dynamics_updates):
            raw = self.replay.sample(self.rng, self.config.batch_size)
            batch = self._dynamics_batch(raw)
            if self.config.off_policy:
                with torch.no_grad():
                    mean, log_std = self.learner.policy(self._sac_obs(raw["obs"], raw["skills"]))
                    log_prob = _tanh_gaussian_log_prob(mean, log_std, raw["actions"])
                ratio = (log_prob - raw["behavior_log_prob"]).clamp(max=20).exp()
                batch["weights"] = ratio.clamp(max=self.config.importance_clip)
            loss, metrics = dynamics_loss(self.dynamics, batch)
            self.dynamics_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.dynamics_optimizer.step()
        return metrics

    def _sac_obs(self, obs: torch.Tensor, skills: torch.Tensor) -> torch.Tensor:
        return torch.cat([obs[:, list(self.policy_dims)], skills], -1)

    def relabel(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """SAC batch with intrinsic rewards from the current skill dynamics."""
        dyn = self._dynamics_batch(batch)
        alternatives = torch.from_numpy(self._sample_skills(self.config.num_alternatives))
        rewards = intrinsic_reward(
            self.dynamics, dyn["dyn_obs"], dyn["dyn_next_obs"], dyn["skills"], alternatives
        )
        return {
            "obs": self._sac_obs(batch["obs"], batch["skills"]),
            "next_obs": self._sac_obs(batch["next_obs"], batch["skills"]),
            "actions": batch["actions"],
            "rewards": rewards,
            "dones": batch["dones"],
        }

    def iterate(self) -> dict[str, float]:
        """Collect, fit q_phi, relabel, SAC (Algorithm 1, one pass)."""
        config = self.config
        fresh = self.collect()
        if not config.off_policy:
            self.replay.clear()
        self.replay.add(**fresh)
        steps = len(fresh["obs"])
        fresh_t = {k: torch.from_numpy(v) for k, v in fresh.items()}
        dyn_fresh = self._dynamics_batch(fresh_t)
        self.dynamics.in_norm.update(torch.cat([dyn_fresh["dyn_obs"], dyn_fresh["skills"]], -1))
        self.dynamics.out_norm.update(dyn_fresh["dyn_next_obs"] - dyn_fresh["dyn_obs"])
        with torch.no_grad():  # likelihood of new data before fitting: how predictable skills are
            held_out = self.dynamics.log_prob(
                dyn_fresh["dyn_obs"], dyn_fresh["skills"], dyn_fresh["dyn_next_obs"]
            ).mean()
        metrics = {"dynamics_log_likelihood_new_data": held_out.item()}
        metrics.update(self.update_dynamics())

        if config.off_policy:
            pool_index = self.replay.indices(self.rng, min(config.relabel_pool, len(self.replay)))
            pool = self.relabel(self.replay.get(pool_index))
        else:
            pool = self.relabel(self.replay.get(np.arange(len(self.replay))))
        metrics["intrinsic_reward"] = pool["rewards"].mean().item()
        size = len(pool["rewards"])
        for _ in range(config.sac_updates):
            index = torch.from_numpy(self.rng.integers(0, size, config.batch_size))
            metrics.update(self.learner.update({k: v[index] for k, v in pool.items()}))
        self.steps_done += steps
        self.iteration += 1
        metrics["steps"] = float(self.steps_done)
        return metrics

    # --- the run ---------------------------------------------------------------------------
    def train(self, resume: bool = False, progress: bool = True, name: str = "dads-skills") -> Path:
        """Trains to ``config.steps`` policy steps and writes the skill package."""
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        checkpoint = self.out_dir / "checkpoint"
        if resume and (checkpoint / "state.json").exists():
            self.load(checkpoint)
            logger.info("resumed at iteration %d (%d steps)", self.iteration, self.steps_done)
        elif resume:
            logger.warning("no checkpoint in %s; starting from scratch", checkpoint)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=self.iteration)
        started = time.perf_counter()
        bar = tqdm(
            total=self.config.steps, initial=self.steps_done, disable=not progress, unit="step"
        )
        while self.steps_done < self.config.steps:
            before = self.steps_done
            metrics = self.iterate()
            self.history.append(metrics)
            for key, value in metrics.items():
                writer.add_scalar(f"dads/{key}", value, self.iteration)
            bar.update(self.steps_done - before)
            bar.set_postfix(
                ll=f"{metrics['dynamics_log_likelihood']:.2f}",
                r=f"{metrics['intrinsic_reward']:.2f}",
            )
            if self.iteration % self.config.checkpoint_every == 0:
                self.save(checkpoint)
        bar.close()
        writer.close()
        self.save(checkpoint)
        return self.package(time.perf_counter() - started, name=name)

    def save(self, directory: Path) -> None:
        save_checkpoint(
            directory,
            {
                "config": self.config.to_json(),
                "learner": self.learner.state_dict(),
                "dynamics": self.dynamics.state_dict(),
                "dynamics_optimizer": self.dynamics_optimizer.state_dict(),
                "replay": self.replay.state()[0],
                "replay_counters": self.replay.state()[1],
                "rng": self.rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "steps_done": self.steps_done,
                "iteration": self.iteration,
                "history": self.history,
            },
        )

    def load(self, directory: Path) -> None:
        state = load_checkpoint(directory)
        saved = DADSConfig.from_json(state["config"])
        if replace(saved, steps=self.config.steps) != self.config:
            raise ConfigError(
                f"the checkpoint in {directory} was made with a different configuration; "
                "resume with the same options (only --steps may change) or use a new --out"
            )
        self.learner.load_state_dict(state["learner"])
        self.dynamics.load_state_dict(state["dynamics"])
        self.dynamics_optimizer.load_state_dict(state["dynamics_optimizer"])
        self.replay.restore(
            {k: v.numpy() if torch.is_tensor(v) else v for k, v in state["replay"].items()},
            state["replay_counters"],
        )
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        self.steps_done = int(state["steps_done"])
        self.iteration = int(state["iteration"])
        self.history = list(state["history"])

    def make_skill(self) -> DADSSkill:
        """The current policy and dynamics as a :class:`DADSSkill`."""
        import copy

        env = self.envs.envs[0]
        skill_config = DADSSkillConfig(
            latent_dim=self.config.latent_dim,
            policy_obs_indices=self.policy_dims,
            action_repeat=self.config.action_repeat,
            policy_hidden=self.config.networks.policy_hidden,
        )
        dynamics = LearnedDynamics(copy.deepcopy(self.dynamics), self.dynamics_dims)
        return DADSSkill(
            skill_config,
            copy.deepcopy(self.learner.policy),
            dynamics,
            env.observation_space,
            env.action_space,
        )

    def package(self, seconds: float, name: str = "dads-skills", version: str = "1.0.0") -> Path:
        """Writes the skill package (and its z-grid PNG) into ``out_dir``."""
        from hrl_runtime.registry import SkillRegistry

        skill = self.make_skill()
        evaluation = evaluate_skills(skill, self.config, seed=self.config.seed + 1)
        last = self.history[-5:] if self.history else [{}]
        metrics = {
            "steps": self.steps_done,
            "iterations": self.iteration,
            "wall_seconds_this_session": round(seconds, 1),
            "dynamics_log_likelihood": float(np.mean([m["dynamics_log_likelihood"] for m in last])),
            "intrinsic_reward": float(np.mean([m["intrinsic_reward"] for m in last])),
            "first_dynamics_log_likelihood": self.history[0]["dynamics_log_likelihood"]
            if self.history
            else None,
            **{k: v for k, v in evaluation.items() if k != "trajectories"},
        }
        path = SkillRegistry([self.out_dir.parent]).save(
            skill,
            self.out_dir,
            name=name,
            version=version,
            description=(
                f"DADS skills (dz={self.config.latent_dim}) discovered without reward on "
                f"{self.config.env_id}; dynamics over observation entries "
                f"{list(self.dynamics_dims)}"
            ),
            training={
                "command": self.command,
                "seed": self.config.seed,
                "config": self.config.to_json(),
            },
            metrics=metrics,
            overwrite=True,
        )
        plot_skill_grid(evaluation["trajectories"], path / "skills.png", self.config)
        (path / "history.json").write_text(json.dumps(self.history) + "\n")
        return path


def _tanh_gaussian_log_prob(
    mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor
) -> torch.Tensor:
    """log pi(a | x) of given squashed actions (for off-DADS importance ratios)."""
    actions = actions.clamp(-0.999999, 0.999999)
    pre = torch.atanh(actions)
    normal = -0.5 * ((pre - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    return (normal - torch.log1p(-(actions**2))).sum(-1)


def skill_grid(latent_dim: int, per_axis: int = 5, seed: int = 0) -> np.ndarray:
    """A grid of skills ``(N, dz)``: a ``per_axis``-square grid in the first two dimensions
    (others zero), or a single axis when dz = 1."""
    axis = np.linspace(-1.0, 1.0, per_axis, dtype=np.float32)
    if latent_dim == 1:
        return axis[:, None]
    grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    return np.concatenate([grid, np.zeros((len(grid), latent_dim - 2), np.float32)], -1)


def evaluate_skills(skill: DADSSkill, config: DADSConfig, seed: int = 0) -> dict[str, Any]:
    """Runs each z of a grid from the same start (deterministic policy, twice with different
    reset noise); measures how different the end states of different z are.

    Returns:
        ``trajectories (N, 2, steps + 1, do)``, ``end_spread`` (RMS distance of end states from
        their mean over z), ``repeat_spread`` (RMS distance between the two repeats of each z),
        and their ratio ``skill_distinctness``.
    """
    import envs

    grid = skill_grid(config.latent_dim)
    env = envs.make_env(
        config.env_id, max_episode_steps=config.episode_length * skill.hold_steps + 1
    )
    trajectories = np.zeros(
        (len(grid), 2, config.episode_length + 1, env.observation_space.shape[0])
    )
    for index, z in enumerate(grid):
        for repeat in range(2):
            obs, _ = env.reset(seed=seed + repeat)
            skill.reset()
            trajectories[index, repeat, 0] = obs
            for step in range(config.episode_length):
                for _ in range(skill.hold_steps):
                    obs, _, terminated, truncated, _ = env.step(skill.act(obs, z))
                    if terminated or truncated:
                        break
                trajectories[index, repeat, step + 1] = obs
    dims = list(config.dynamics_dims or range(trajectories.shape[-1]))
    ends = trajectories[:, :, -1][..., dims]
    end_spread = float(np.sqrt(((ends[:, 0] - ends[:, 0].mean(0)) ** 2).sum(-1).mean()))
    repeat_spread = float(np.sqrt(((ends[:, 0] - ends[:, 1]) ** 2).sum(-1).mean()))
    return {
        "trajectories": trajectories,
        "end_spread": end_spread,
        "repeat_spread": repeat_spread,
        "skill_distinctness": end_spread / max(repeat_spread, 1e-6),
    }


def plot_skill_grid(trajectories: np.ndarray, path: Path, config: DADSConfig) -> Path:
    """PNG of the x-y paths of the grid of z (first repeat), coloured by z."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = list(config.dynamics_dims or (0, 1))[:2]
    grid = skill_grid(config.latent_dim)
    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=110)
    angle = np.arctan2(grid[:, -1], grid[:, 0]) if grid.shape[1] > 1 else grid[:, 0]
    colors = plt.cm.hsv((angle - angle.min()) / max(np.ptp(angle), 1e-6))
    for index in range(len(grid)):
        path_xy = trajectories[index, 0][:, dims]
        ax.plot(path_xy[:, 0], path_xy[:, 1], color=colors[index], lw=1.2)
        ax.plot(*path_xy[-1], "o", color=colors[index], ms=3)
    ax.plot(*trajectories[0, 0, 0][dims], "ks", ms=6)
    ax.set_aspect("equal")
    ax.set_title(f"DADS skills on {config.env_id}: a {len(grid)}-skill grid of z", fontsize=9)
    ax.set_xlabel(f"obs[{dims[0]}]")
    ax.set_ylabel(f"obs[{dims[1]}]")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
