"""Skill-embedding training: multi-task, entropy-regularized, off-policy (Hausman et al. 2018).

Each iteration draws a task ``t`` and ``z ~ p(z | t)`` per environment and holds z for the
episode (the paper's Algorithm 1 with one z per episode), stores full transitions with the z,
the task and the window of the last H states, then takes ``updates_per_iteration`` steps of:
the lower-bound Q-function on the augmented reward ``r_hat`` (rewards relabelled with the
current inference network), the actor and the embedding by reparameterized value gradients,
SAC's temperature, and the inference network's likelihood. After the last iteration the final
policy is run with commands held for ``hold_steps`` (task embeddings and points between them)
and a skill-dynamics model of the fingertip is fitted to those segments: the component latent
MPPI plans with.

This module is the only place in ``embedding/`` that steps an optimizer.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skill_library.dynamics import LearnedDynamics
from skill_library.embedding.config import EmbeddingConfig
from skill_library.embedding.environments import TaskEnvs, held_command_segments
from skill_library.embedding.evaluation import evaluate_tasks, plot_embedding
from skill_library.embedding.losses import (
    augmented_reward,
    critic_loss,
    embedding_actor_loss,
    inference_loss,
    policy_input,
)
from skill_library.embedding.networks import InferenceNet, TaskEmbedding
from skill_library.embedding.skill import EmbeddingSkill, EmbeddingSkillConfig
from skill_library.networks import DynamicsNetConfig, SkillDynamicsNet
from skill_library.replay import ReplayBuffer
from skill_library.run import TrainingRun
from skill_library.sac.losses import soft_update, temperature_loss
from skill_library.sac.networks import TanhGaussianPolicy, TwinQ

logger = logging.getLogger(__name__)

XY = (0, 1)
"""Observation entries of the fingertip x-y (the goal space of goal following)."""


class EmbeddingTrainer:
    """Trains the skill embedding; checkpoints and resumes; packages an :class:`EmbeddingSkill`.

    Args:
        config: the run's configuration.
        out_dir: package directory (checkpoints in ``out_dir/checkpoint``, TensorBoard scalars
            in ``out_dir/tensorboard``).
        command: the command line that started the run, for the manifest.

    Raises:
        ConfigError: a bad config, or an env without ``config.tasks`` tasks.
    """

    def __init__(self, config: EmbeddingConfig, out_dir: Path | str, command: str = ""):
        from hrl_runtime.errors import ConfigError

        config.validate()
        self.config = config
        self.out_dir = Path(out_dir)
        self.command = command
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.envs = TaskEnvs(
            config.env_id, config.num_envs, config.env_workers, config.env_worker_backend
        )
        if self.envs.num_tasks < config.tasks:
            raise ConfigError(
                f"--tasks {config.tasks}: {config.env_id} has {self.envs.num_tasks} tasks "
                "(its unwrapped env's num_tasks); pick at most that many"
            )
        do, da, dz, nets = (
            self.envs.obs_dim,
            self.envs.action_dim,
            config.latent_dim,
            config.networks,
        )
        hidden = nets.policy_hidden
        self.policy = TanhGaussianPolicy(do + dz, da, hidden)
        self.critic = TwinQ(do + dz + config.tasks, da, hidden)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.embedding = TaskEmbedding(
            config.tasks,
            dz,
            nets.latent_extent,
            nets.max_embedding_std,
            self.generator,
            min_std=nets.min_embedding_std,
        )
        self.inference = InferenceNet(config.window * do, dz, nets.inference_hidden)
        self.log_alpha = torch.tensor(float(config.sac.initial_alpha)).log().requires_grad_(True)
        target = config.sac.target_entropy
        self.target_entropy = -float(da) if target is None else float(target)
        lr = config.sac.learning_rate
        self.policy_optimizer = torch.optim.Adam(self.policy.parameters(), lr=lr)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=lr)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=lr)
        self.embedding_optimizer = torch.optim.Adam(
            self.embedding.parameters(), config.embedding_lr
        )
        self.inference_optimizer = torch.optim.Adam(
            self.inference.parameters(), config.inference_lr
        )
        self.replay = ReplayBuffer(
            config.replay_capacity,
            {
                "obs": (do,),
                "next_obs": (do,),
                "actions": (da,),
                "latents": (dz,),
                "tasks": (),
                "rewards": (),
                "windows": (config.window * do,),
                "dones": (),
            },
        )
        # The skill dynamics models the whole observation (fingertip x-y first, then the joint
        # angles and velocities): holding z from a moving arm goes elsewhere than from a still
        # one, so the fingertip alone is not a state the model can predict from.
        self.planning_state = tuple(range(self.envs.obs_dim))
        self.dynamics: SkillDynamicsNet | None = None
        self.dynamics_metrics: dict[str, float] = {}
        self.steps_done = 0
        self.iteration = 0

    # --- data ------------------------------------------------------------------------------
    def collect(self) -> dict[str, float]:
        """One episode per environment; z ~ p(z | t) held for the episode. Returns the
        episodes' mean task reward and final fingertip distance to the target."""
        config = self.config
        n, window = config.num_envs, config.window
        tasks = self.rng.integers(config.tasks, size=n)
        with torch.no_grad():
            latents = self.embedding.rsample(torch.from_numpy(tasks), self.generator).numpy()
        obs = self.envs.reset(tasks, self.rng, config.random_start)
        history = np.repeat(obs[:, None], window, axis=1)  # (N, H, do)
        warmup = self.steps_done < config.warmup_steps
        rewards_seen = []
        for _ in range(config.episode_length):
            if warmup:
                actions = self.rng.uniform(-1, 1, (n, self.envs.action_dim)).astype(np.float32)
            else:
                with torch.no_grad():
                    x = policy_input(torch.from_numpy(obs), torch.from_numpy(latents))
                    actions = self.policy.sample(x, self.generator)[0].numpy()
            next_obs, rewards, terminated = self.envs.step(actions)
            history = np.concatenate([history[:, 1:], next_obs[:, None]], 1)
            self.replay.add(
                obs=obs,
                next_obs=next_obs,
                actions=actions,
                latents=latents,
                tasks=tasks.astype(np.float32),
                rewards=rewards,
                windows=history.reshape(n, -1),
                dones=terminated,
            )
            rewards_seen.append(rewards)
            obs = next_obs
        self.steps_done += n * config.episode_length
        final = -rewards_seen[-1]
        return {
            "task_reward": float(np.mean(rewards_seen)),
            "final_distance": float(final.mean()),
            "success_rate": float((final <= 0.1).mean()),
            "warmup": float(warmup),
        }

    # --- updates ---------------------------------------------------------------------------
    def update(self) -> dict[str, float]:
        """One critic, actor + embedding, temperature and inference step on a replayed batch."""
        config = self.config
        raw = self.replay.sample(self.rng, config.batch_size)
        tasks = raw["tasks"].long()
        batch = {
            **raw,
            "tasks": tasks,
            "task_one_hot": torch.nn.functional.one_hot(tasks, config.tasks).float(),
        }
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            log_q = self.inference.log_prob(batch["windows"], batch["latents"])
        rewards = augmented_reward(
            batch["rewards"], log_q, config.inference_weight, config.inference_floor
        )
        loss, metrics = critic_loss(
            self.critic,
            self.target_critic,
            self.policy,
            batch,
            rewards,
            alpha,
            config.sac.discount,
            self.generator,
        )
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optimizer.step()

        self.critic.requires_grad_(False)
        loss, log_prob, actor_metrics = embedding_actor_loss(
            self.policy,
            self.critic,
            self.embedding,
            batch,
            alpha,
            config.embedding_entropy_weight,
            self.generator,
            config.embedding_repulsion_weight,
            config.embedding_repulsion_bandwidth,
        )
        self.policy_optimizer.zero_grad(set_to_none=True)
        self.embedding_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.policy_optimizer.step()
        self.embedding_optimizer.step()
        self.critic.requires_grad_(True)
        metrics.update(actor_metrics)

        if config.sac.learn_alpha:
            loss, alpha_metrics = temperature_loss(self.log_alpha, log_prob, self.target_entropy)
            self.alpha_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.alpha_optimizer.step()
            metrics.update(alpha_metrics)

        loss, inference_metrics = inference_loss(self.inference, batch)
        self.inference_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.inference_optimizer.step()
        metrics.update(inference_metrics)
        metrics["augmented_reward"] = rewards.mean().item()
        soft_update(self.target_critic, self.critic, config.sac.tau)
        return metrics

    def iterate(self) -> dict[str, float]:
        """Collect one episode per environment, then ``updates_per_iteration`` updates."""
        started = time.perf_counter()
        metrics = self.collect()
        collected = time.perf_counter()
        if metrics["warmup"] == 0.0 or self.steps_done >= self.config.warmup_steps:
            for _ in range(self.config.updates_per_iteration):
                metrics.update(self.update())
        metrics["collect_seconds"] = collected - started
        metrics["update_seconds"] = time.perf_counter() - collected
        self.iteration += 1
        metrics["steps"] = float(self.steps_done)
        return metrics

    # --- skill dynamics --------------------------------------------------------------------
    def dynamics_data(self, skill: EmbeddingSkill) -> dict[str, np.ndarray]:
        """Held-command segments of the final skill (:func:`held_command_segments`)."""
        return held_command_segments(self.envs, skill, self.config, self.rng, self.planning_state)

    def fit_dynamics(self, data: dict[str, np.ndarray]) -> SkillDynamicsNet:
        """Fits the skill dynamics to held-command segments (unit-variance Gaussian in
        normalized units, i.e. least squares on the normalized state change); the metrics
        report the fingertip error on a held-out tenth."""
        config = self.config
        network = SkillDynamicsNet(
            DynamicsNetConfig(
                state_dim=len(self.planning_state),
                command_dim=config.latent_dim,
                hidden=config.networks.dynamics_hidden,
                activation="tanh",
                num_experts=0,
                residual=True,
            )
        )
        states, commands, next_states = (
            torch.from_numpy(data[k]) for k in ("states", "commands", "next_states")
        )
        network.in_norm.fit(torch.cat([states, commands], -1))
        network.out_norm.fit(next_states - states)
        count = len(states)
        held_out = self.rng.permutation(count)
        test, train = held_out[: count // 10], held_out[count // 10 :]
        optimizer = torch.optim.Adam(network.parameters(), config.dynamics_lr)
        for _ in range(config.dynamics_updates):
            index = torch.from_numpy(train[self.rng.integers(0, len(train), config.batch_size)])
            loss = -network.log_prob(states[index], commands[index], next_states[index]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            test_index = torch.from_numpy(test)
            predicted = network(states[test_index], commands[test_index])[:, list(XY)]
            actual = next_states[test_index][:, list(XY)]
            error = (predicted - actual).norm(dim=-1)
            moved = (actual - states[test_index][:, list(XY)]).norm(dim=-1)
        self.dynamics_metrics = {
            "dynamics_segments": float(count),
            "dynamics_test_error_m": float(error.mean()),
            "dynamics_test_motion_m": float(moved.mean()),
        }
        logger.info(
            "skill dynamics: held-out error %.3f m on segments moving %.3f m",
            error.mean(),
            moved.mean(),
        )
        return network.eval()

    # --- the run ---------------------------------------------------------------------------
    def train(
        self,
        resume: bool = False,
        progress: bool = True,
        name: str = "embed-skills",
        version: str = "1.0.0",
    ) -> Path:
        """Trains to ``config.steps`` control steps, fits the skill dynamics, writes the package.

        Raises:
            ConfigError: the checkpoint was made with another configuration, or the weights
                are not finite.
        """
        run = TrainingRun(
            self.config,
            self.out_dir,
            tag="embedding",
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
                run.save(self.state())
                skill = self.make_skill(
                    LearnedDynamics(
                        _untrained_dynamics(self.config, len(self.planning_state)),
                        self.planning_state,
                    )
                )
                self.dynamics = self.fit_dynamics(self.dynamics_data(skill))
            return self.package(run, name=name, version=version)
        finally:
            self.close()

    def _train_iteration(self, run: TrainingRun) -> None:
        before = self.steps_done
        metrics = self.iterate()
        run.log(self.iteration, metrics)
        run.advance(
            self.steps_done - before,
            dist=f"{metrics['final_distance']:.2f}",
            logq=f"{metrics.get('inference_log_likelihood', float('nan')):.2f}",
            Hz=f"{metrics.get('embedding_entropy', float('nan')):.2f}",
        )
        if self.iteration % self.config.checkpoint_every == 0:
            run.save(self.state())

    def close(self) -> None:
        """Closes the environments."""
        self.envs.close()

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds besides the config and the history."""
        replay, counters = self.replay.state()
        return {
            "policy": self.policy.state_dict(),
            "critic": self.critic.state_dict(),
            "target_critic": self.target_critic.state_dict(),
            "embedding": self.embedding.state_dict(),
            "inference": self.inference.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "optimizers": {
                "policy": self.policy_optimizer.state_dict(),
                "critic": self.critic_optimizer.state_dict(),
                "alpha": self.alpha_optimizer.state_dict(),
                "embedding": self.embedding_optimizer.state_dict(),
                "inference": self.inference_optimizer.state_dict(),
            },
            "replay": replay,
            "replay_counters": counters,
            "rng": self.rng.bit_generator.state,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "steps_done": self.steps_done,
            "iteration": self.iteration,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continues from a checkpoint's :meth:`state`."""
        self.policy.load_state_dict(state["policy"])
        self.critic.load_state_dict(state["critic"])
        self.target_critic.load_state_dict(state["target_critic"])
        self.embedding.load_state_dict(state["embedding"])
        self.inference.load_state_dict(state["inference"])
        with torch.no_grad():
            self.log_alpha.copy_(torch.as_tensor(state["log_alpha"]))
        optimizers = state["optimizers"]
        self.policy_optimizer.load_state_dict(optimizers["policy"])
        self.critic_optimizer.load_state_dict(optimizers["critic"])
        self.alpha_optimizer.load_state_dict(optimizers["alpha"])
        self.embedding_optimizer.load_state_dict(optimizers["embedding"])
        self.inference_optimizer.load_state_dict(optimizers["inference"])
        self.replay.restore(
            {k: v.numpy() if torch.is_tensor(v) else v for k, v in state["replay"].items()},
            state["replay_counters"],
        )
        self.rng.bit_generator.state = state["rng"]
        self.generator.set_state(torch.as_tensor(state["generator"]))
        torch.set_rng_state(torch.as_tensor(state["torch_rng"]))
        self.steps_done = int(state["steps_done"])
        self.iteration = int(state["iteration"])
        logger.info("resumed at iteration %d (%d steps)", self.iteration, self.steps_done)

    def make_skill(self, dynamics: LearnedDynamics | None = None) -> EmbeddingSkill:
        """The current policy, embedding and skill dynamics as an :class:`EmbeddingSkill`."""
        if dynamics is None:
            if self.dynamics is None:
                raise RuntimeError("fit the skill dynamics (fit_dynamics) before make_skill()")
            dynamics = LearnedDynamics(copy.deepcopy(self.dynamics), self.planning_state)
        nets = self.config.networks
        config = EmbeddingSkillConfig(
            latent_dim=self.config.latent_dim,
            tasks=self.config.tasks,
            command_bound=nets.latent_extent + nets.max_embedding_std,
            hold_steps=self.config.hold_steps,
            policy_hidden=nets.policy_hidden,
        )
        return EmbeddingSkill(
            config,
            copy.deepcopy(self.policy),
            self.embedding.means().numpy(),
            self.embedding.stds().numpy(),
            dynamics,
            self.envs.observation_space,
            self.envs.action_space,
        )

    def package(self, run: TrainingRun, name: str = "embed-skills", version: str = "1.0.0") -> Path:
        """Evaluates every task at its embedding mean and writes the package (with the
        embedding picture and the run's history) into ``out_dir``."""
        skill = self.make_skill()
        evaluation = evaluate_tasks(skill, self.config.env_id, seed=self.config.seed + 1)
        history = run.history
        last = [m for m in history[-20:] if "inference_log_likelihood" in m] or [{}]
        metrics = {
            "steps": self.steps_done,
            "iterations": self.iteration,
            "wall_seconds_this_session": round(run.seconds, 1),
            "inference_log_likelihood": float(
                np.mean([m.get("inference_log_likelihood", np.nan) for m in last])
            ),
            "embedding_entropy": float(np.mean([m.get("embedding_entropy", np.nan) for m in last])),
            **self.dynamics_metrics,
            **{k: v for k, v in evaluation.items() if k != "paths"},
        }
        path = run.package(
            skill,
            name=name,
            version=version,
            description=(
                f"Skill embedding (Hausman et al. 2018, dz={self.config.latent_dim}) of "
                f"{self.config.tasks} reaching tasks on {self.config.env_id}, with a skill "
                "dynamics of the fingertip x-y for latent MPPI"
            ),
            metrics=metrics,
        )
        plot_embedding(skill, self.config.env_id, path / "embedding.png", seed=self.config.seed + 2)
        (path / "history.json").write_text(json.dumps(history) + "\n")
        return path


def _untrained_dynamics(config: EmbeddingConfig, state_dim: int) -> SkillDynamicsNet:
    """A placeholder dynamics so the skill can act while its own dynamics data is collected."""
    return SkillDynamicsNet(
        DynamicsNetConfig(
            state_dim=state_dim,
            command_dim=config.latent_dim,
            hidden=config.networks.dynamics_hidden,
            num_experts=0,
        )
    )
