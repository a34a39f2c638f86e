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
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrl_runtime.errors import ConfigError
from skill_library.dads.config import DADSConfig
from skill_library.dads.environments import SkillEnvs
from skill_library.dads.evaluation import (
    SIGNAL_WINDOW,
    evaluate_skills,
    plot_skill_grid,
    skill_signal,
)
from skill_library.dads.losses import (
    dynamics_loss,
    importance_weights,
    intrinsic_reward,
    shaped_reward,
)
from skill_library.dads.networks import make_networks
from skill_library.dads.skill import DADSSkill, DADSSkillConfig
from skill_library.dynamics import LearnedDynamics
from skill_library.replay import ReplayBuffer
from skill_library.run import TrainingRun

logger = logging.getLogger(__name__)


class DADSTrainer:
    """Runs DADS; checkpoints and resumes; packages the result as a :class:`DADSSkill`.

    Args:
        config: the run's configuration.
        out_dir: package directory; checkpoints go to ``out_dir/checkpoint``, TensorBoard
            scalars to ``out_dir/tensorboard``.
        command: the command line that started the run, recorded in the manifest (by default
            this process's arguments).
    """

    def __init__(self, config: DADSConfig, out_dir: Path, command: str = ""):
        config.validate()
        self.config = config
        self.out_dir = Path(out_dir)
        self.command = command
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.envs = SkillEnvs(config, self.rng)
        self.dynamics_dims, self.policy_dims = split_observation(config, self.envs.obs_dim)
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
        self.replay = _replay_buffer(config, self.envs.obs_dim, self.envs.action_dim)
        self.steps_done = 0
        self.iteration = 0

    # --- data ------------------------------------------------------------------------------
    def _policy_input(self, obs: np.ndarray, skills: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.concatenate([obs[:, self.policy_dims], skills], -1))

    def _sample_skills(self, count: int) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, (count, self.config.latent_dim)).astype(np.float32)

    def collect(self) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """One episode in every environment with the current stochastic policy.

        Returns:
            The transitions (one column per replay field, ``(n, ...)``) and the episodes'
            statistics: ``fall_rate`` (fraction of episodes in which the body fell, e.g. Ant's
            torso left the healthy range, whether or not that ended the episode),
            ``episode_steps`` (mean policy steps) and ``displacement_spread`` (RMS distance of
            the episodes' ``dynamics_dims`` change from its mean over the batch: how far apart
            different skills go).
        """
        config = self.config
        dims = list(self.dynamics_dims)
        obs = self.envs.reset()
        start = obs[:, dims].copy()
        # history[t]: the planning state s_t of every environment, for the k-step windows.
        history = [start]
        segment_start = 0
        skills = self._sample_skills(config.num_envs)
        columns: dict[str, list[np.ndarray]] = {k: [] for k in self.replay.data}
        fell = np.zeros(config.num_envs, bool)
        for step in range(config.episode_length):
            if config.skill_hold and step > 0 and step % config.skill_hold == 0:
                skills = self._sample_skills(config.num_envs)
                segment_start = step
            with torch.no_grad():
                actions, log_prob = self.learner.policy.sample(
                    self._policy_input(obs, skills), self.learner.generator
                )
            actions = actions.numpy()
            alive = self.envs.alive.copy()
            if not alive.any():
                break
            next_obs, dones, fallen = self.envs.step(actions)
            fell |= fallen
            history.append(next_obs[:, dims].copy())
            # The window of transition t ends at s_{t+1} and starts k steps earlier, inside the
            # span the current skill has been held (else it is partial: no dynamics target).
            begin = step + 1 - config.dynamics_horizon
            full = np.full(config.num_envs, float(begin >= segment_start), np.float32)
            for key, value in (
                ("obs", obs),
                ("next_obs", next_obs),
                ("actions", actions),
                ("skills", skills),
                ("dones", dones),
                ("behavior_log_prob", log_prob.numpy()),
                ("window_start", history[max(begin, segment_start)]),
                ("window_full", full),
            ):
                columns[key].append(value[alive])
            obs = next_obs
        moved = obs[:, dims] - start
        stats = {
            "fall_rate": float(fell.mean()),
            "episode_steps": sum(len(c) for c in columns["dones"]) / config.num_envs,
            "displacement_spread": float(np.sqrt(((moved - moved.mean(0)) ** 2).sum(-1).mean())),
        }
        return {k: np.concatenate(v).astype(np.float32) for k, v in columns.items()}, stats

    def _dynamics_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The k-step windows ``s_{t+1-k} -> s_{t+1}`` of the planning state under the skill."""
        return {
            "dyn_obs": batch["window_start"],
            "dyn_next_obs": batch["next_obs"][:, list(self.dynamics_dims)],
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
                batch["weights"] = importance_weights(
                    log_prob, raw["behavior_log_prob"], self.config.importance_clip
                )
            if self.config.dynamics_horizon > 1:
                # Partial windows (the first k-1 steps of a skill) are no k-step targets.
                batch["weights"] = batch.get("weights", 1.0) * raw["window_full"]
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
            "rewards": shaped_reward(
                self.config.intrinsic_weight * rewards,
                batch["window_full"],
                batch["dones"],
                self.config.survival_bonus,
            ),
            "intrinsic": rewards,
            "dones": batch["dones"],
        }

    def iterate(self) -> dict[str, float]:
        """Collect, fit q_phi, relabel, SAC (Algorithm 1, one pass)."""
        started = time.perf_counter()
        fresh, metrics = self.collect()
        collected = time.perf_counter()
        self._store(fresh)
        metrics["dynamics_log_likelihood_new_data"] = self._fit_normalizers(fresh)
        metrics.update(self.update_dynamics())
        metrics.update(self.update_policy(self._sac_update_count(len(fresh["obs"]))))
        metrics["skill_r2"] = self._skill_signal()
        metrics["collect_seconds"] = collected - started
        metrics["update_seconds"] = time.perf_counter() - collected
        self.steps_done += len(fresh["obs"])
        self.iteration += 1
        metrics["steps"] = float(self.steps_done)
        return metrics

    def _skill_signal(self) -> float:
        """:func:`skill_signal` over the most recent transitions of the replay."""
        recent = self.replay.recent(SIGNAL_WINDOW)
        ends = recent["next_obs"][:, list(self.dynamics_dims)]
        return skill_signal(recent["window_start"], ends, recent["skills"], recent["window_full"])

    def _store(self, fresh: dict[str, np.ndarray]) -> None:
        """Adds the new episodes to the replay (which on-policy DADS empties first)."""
        if not self.config.off_policy:
            self.replay.clear()
        self.replay.add(**fresh)

    def _fit_normalizers(self, fresh: dict[str, np.ndarray]) -> float:
        """Updates q_phi's input and output normalizers with the new transitions; returns their
        mean log-likelihood under q_phi before it is fitted to them (how predictable the
        skills are)."""
        full = fresh["window_full"] > 0
        batch = self._dynamics_batch({k: torch.from_numpy(v[full]) for k, v in fresh.items()})
        self.dynamics.in_norm.update(torch.cat([batch["dyn_obs"], batch["skills"]], -1))
        self.dynamics.out_norm.update(batch["dyn_next_obs"] - batch["dyn_obs"])
        with torch.no_grad():
            log_prob = self.dynamics.log_prob(
                batch["dyn_obs"], batch["skills"], batch["dyn_next_obs"]
            )
        return log_prob.mean().item()

    def _relabel_pool(self) -> dict[str, torch.Tensor]:
        """The transitions SAC trains on: all of them on-policy, ``relabel_pool`` off-policy."""
        if not self.config.off_policy:
            return self.replay.get(np.arange(len(self.replay)))
        size = min(self.config.relabel_pool, len(self.replay))
        return self.replay.get(self.replay.indices(self.rng, size))

    def _sac_update_count(self, new_steps: int) -> int:
        """``sac_updates``, or ``sac_updates_per_step`` times the steps just collected."""
        if self.config.sac_updates_per_step > 0:
            return max(1, round(self.config.sac_updates_per_step * new_steps))
        return self.config.sac_updates

    def update_policy(self, count: int) -> dict[str, float]:
        """``count`` SAC steps on minibatches of relabelled pools (a fresh pool every
        ``relabel_every`` updates, or one per call)."""
        metrics: dict[str, float] = {}
        every = self.config.relabel_every or count
        rewards, intrinsic = [], []
        for done in range(count):
            if done % every == 0:
                pool = self.relabel(self._relabel_pool())
                rewards.append(pool["rewards"].mean().item())
                intrinsic.append(pool.pop("intrinsic").mean().item())
                size = len(pool["rewards"])
            index = torch.from_numpy(self.rng.integers(0, size, self.config.batch_size))
            metrics.update(self.learner.update({k: v[index] for k, v in pool.items()}))
        metrics["intrinsic_reward"] = float(np.mean(intrinsic))
        metrics["reward"] = float(np.mean(rewards))
        metrics["sac_updates"] = float(count)
        return metrics

    # --- the run ---------------------------------------------------------------------------
    def train(
        self,
        resume: bool = False,
        progress: bool = True,
        name: str = "dads-skills",
        version: str = "1.0.0",
    ) -> Path:
        """Trains to ``config.steps`` policy steps and writes the skill package.

        Args:
            resume: continue from ``out_dir/checkpoint`` if there is one (only ``steps`` may
                differ from the checkpoint's configuration).
            progress: show a progress bar.
            name: package name.
            version: package version.

        Raises:
            ConfigError: the checkpoint was made with another configuration, or the weights
                are not finite.
        """
        run = TrainingRun(
            self.config,
            self.out_dir,
            tag="dads",
            budget="steps",
            command=self.command,
            progress=progress,
            threads=self.config.torch_threads,
        )
        state = run.resume() if resume else None
        if state is not None:
            self.restore(state)
        try:
            with run.session(done=self.steps_done, log_step=self.iteration):
                while self.steps_done < self.config.steps:
                    self._train_iteration(run)
        finally:
            self.close()
        run.save(self.state())
        return self.package(run, name=name, version=version)

    def _train_iteration(self, run: TrainingRun) -> None:
        """One :meth:`iterate`, logged, shown, and checkpointed every ``checkpoint_every``."""
        before = self.steps_done
        metrics = self.iterate()
        run.log(self.iteration, metrics)
        run.advance(
            self.steps_done - before,
            ll=f"{metrics['dynamics_log_likelihood']:.2f}",
            r=f"{metrics['intrinsic_reward']:.2f}",
            fall=f"{metrics['fall_rate']:.2f}",
            spread=f"{metrics['displacement_spread']:.2f}",
            r2=f"{metrics['skill_r2']:.3f}",
        )
        if self.iteration % self.config.checkpoint_every == 0:
            run.save(self.state())

    def close(self) -> None:
        """Stops the environment workers (the trainer collects no more after this)."""
        self.envs.close()

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds besides the config and the history."""
        replay, counters = self.replay.state()
        return {
            "learner": self.learner.state_dict(),
            "dynamics": self.dynamics.state_dict(),
            "dynamics_optimizer": self.dynamics_optimizer.state_dict(),
            "replay": replay,
            "replay_counters": counters,
            "rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "steps_done": self.steps_done,
            "iteration": self.iteration,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continues from a checkpoint's :meth:`state`."""
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
        logger.info("resumed at iteration %d (%d steps)", self.iteration, self.steps_done)

    def make_skill(self) -> DADSSkill:
        """The current policy and dynamics as a :class:`DADSSkill`."""
        import copy

        env = self.envs.batch.first
        skill_config = DADSSkillConfig(
            latent_dim=self.config.latent_dim,
            policy_obs_indices=self.policy_dims,
            action_repeat=self.config.action_repeat,
            policy_hidden=self.config.networks.policy_hidden,
            dynamics_horizon=self.config.dynamics_horizon,
        )
        dynamics = LearnedDynamics(copy.deepcopy(self.dynamics), self.dynamics_dims)
        return DADSSkill(
            skill_config,
            copy.deepcopy(self.learner.policy),
            dynamics,
            env.observation_space,
            env.action_space,
        )

    def package(self, run: TrainingRun, name: str = "dads-skills", version: str = "1.0.0") -> Path:
        """Evaluates the skills and writes the package (with its z-grid PNG and the run's
        history) into ``out_dir``."""
        skill = self.make_skill()
        evaluation = evaluate_skills(skill, self.config, seed=self.config.seed + 1)
        history = run.history
        last = history[-5:] if history else [{}]
        metrics = {
            "steps": self.steps_done,
            "iterations": self.iteration,
            "wall_seconds_this_session": round(run.seconds, 1),
            "dynamics_log_likelihood": float(np.mean([m["dynamics_log_likelihood"] for m in last])),
            "intrinsic_reward": float(np.mean([m["intrinsic_reward"] for m in last])),
            "first_dynamics_log_likelihood": history[0]["dynamics_log_likelihood"]
            if history
            else None,
            **{k: v for k, v in evaluation.items() if k != "trajectories"},
        }
        path = run.package(
            skill,
            name=name,
            version=version,
            description=(
                f"DADS skills (dz={self.config.latent_dim}) discovered without reward on "
                f"{self.config.env_id}; dynamics over observation entries "
                f"{list(self.dynamics_dims)}"
            ),
            metrics=metrics,
        )
        plot_skill_grid(evaluation["trajectories"], path / "skills.png", self.config)
        (path / "history.json").write_text(json.dumps(history) + "\n")
        return path


def split_observation(config: DADSConfig, obs_dim: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The observation entries the skill dynamics models and those the policy sees.

    Raises:
        ConfigError: ``dynamics_dims`` names an entry the observations do not have.
    """
    dynamics_dims = tuple(config.dynamics_dims or range(obs_dim))
    if max(dynamics_dims) >= obs_dim:
        raise ConfigError(
            f"dynamics_dims {dynamics_dims} out of range for {config.env_id} "
            f"observations of size {obs_dim}"
        )
    visible = tuple(config.policy_obs_dims or range(obs_dim))
    if max(visible) >= obs_dim:
        raise ConfigError(
            f"policy_obs_dims {visible} out of range for {config.env_id} "
            f"observations of size {obs_dim}"
        )
    hidden = set(dynamics_dims) if config.hide_dynamics_dims else set()
    return dynamics_dims, tuple(i for i in visible if i not in hidden)


def _replay_buffer(config: DADSConfig, obs_dim: int, action_dim: int) -> ReplayBuffer:
    """The off-DADS replay, or room for one iteration's episodes (on-policy)."""
    fields = {
        "obs": (obs_dim,),
        "next_obs": (obs_dim,),
        "actions": (action_dim,),
        "skills": (config.latent_dim,),
        "dones": (),
        "behavior_log_prob": (),
        "window_start": (len(config.dynamics_dims or range(obs_dim)),),
        "window_full": (),
    }
    on_policy = config.num_envs * config.episode_length
    return ReplayBuffer(config.replay_capacity if config.off_policy else on_policy, fields)


def _tanh_gaussian_log_prob(
    mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor
) -> torch.Tensor:
    """log pi(a | x) of given squashed actions (for off-DADS importance ratios)."""
    actions = actions.clamp(-0.999999, 0.999999)
    pre = torch.atanh(actions)
    normal = -0.5 * ((pre - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    return (normal - torch.log1p(-(actions**2))).sum(-1)
