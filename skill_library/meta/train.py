"""``hrl train adapt``: MAML over a skill's dynamics on perturbed bodies, repackaged.

GrBAL (Nagabandi et al. 2019, Alg. 1) with the skill's own policy as the data collector: bodies
are drawn from the training distribution, each contributes a sequence of skill transitions, and
every outer update samples ``meta_batch`` bodies and in each a random window of M context
transitions followed by K query transitions.
The meta-parameters move by Adam on the MAML loss (second order by default).
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrl_runtime.errors import ConfigError
from hrl_runtime.registry import load_skill
from skill_library.dads.skill import DADSSkill
from skill_library.dynamics import LearnedDynamics
from skill_library.meta.config import MetaConfig
from skill_library.meta.data import BodyData, collect_bodies
from skill_library.meta.losses import Transitions, maml_loss
from skill_library.meta.networks import make_dynamics_net, parameters
from skill_library.meta.skill import MetaDADSSkill
from skill_library.run import TrainingRun

logger = logging.getLogger(__name__)


def base_skill(reference: str) -> DADSSkill:
    """The DADS skill to meta-train from (a meta-trained one gives its DADS part).

    Raises:
        ConfigError: the skill is not a DADS skill.
    """
    skill = load_skill(reference)
    if not isinstance(skill, DADSSkill):
        raise ConfigError(
            f"--skill {reference!r} is a {skill.kind!r} skill; hrl train adapt meta-learns the "
            "dynamics of a DADS skill (e.g. dads-pointmass)"
        )
    return skill


class MetaTrainer:
    """Meta-trains skill dynamics with MAML; checkpoints and resumes; packages the skill.

    Args:
        config: the run.
        out_dir: the package directory (checkpoints and TensorBoard inside).
        command: the command line, for the manifest.
    """

    def __init__(self, config: MetaConfig, out_dir: Path | str, command: str = ""):
        config.validate()
        self.config = config
        self.out_dir = Path(out_dir)
        self.command = command
        self.skill = base_skill(config.skill)
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        dynamics = self.skill.dynamics
        obs_dim = int(np.prod(self.skill.observation_space.shape))
        self.state_indices = tuple(config.state_indices or range(obs_dim))
        if any(not 0 <= i < obs_dim for i in self.state_indices) or not set(
            dynamics.state_indices
        ) <= set(self.state_indices):
            raise ConfigError(
                f"state_indices {list(self.state_indices)} must be observation entries "
                f"(0..{obs_dim - 1}) that include the skill dynamics' "
                f"{list(dynamics.state_indices)}"
            )
        dz = int(np.prod(self.skill.command_space.shape))
        self.network = make_dynamics_net(len(self.state_indices), dz, config.hidden).double()
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=config.outer_lr)
        self.updates = 0
        self.data: BodyData | None = None

    # --- data ------------------------------------------------------------------------------
    def collect(self, progress: bool) -> None:
        """Collects the bodies' transitions (deterministic in the seed, so a resumed run
        collects the same) and fits the network's normalizers to them."""
        config = self.config
        self.data = collect_bodies(
            self.skill,
            config.env_id,
            config.bodies,
            config.transitions_per_body,
            seed=config.seed,
            jitter=config.command_jitter,
            persistence=config.persistence,
            progress=progress,
            state_indices=self.state_indices,
        )
        states = torch.from_numpy(self.data.states.reshape(-1, self.data.states.shape[-1]))
        commands = torch.from_numpy(self.data.commands.reshape(-1, self.data.commands.shape[-1]))
        after = torch.from_numpy(self.data.next_states.reshape(states.shape))
        self.network.in_norm.fit(torch.cat([states, commands], -1).double())
        self.network.out_norm.fit((after - states).double())

    def _sample(self) -> tuple[Transitions, Transitions]:
        """``meta_batch`` bodies, each a window of M context then K query transitions."""
        config, data = self.config, self.data
        m, k = config.adaptation.context, config.query
        bodies = self.rng.choice(len(data.states), config.meta_batch, replace=False)
        starts = self.rng.integers(0, data.states.shape[1] - m - k + 1, config.meta_batch)
        rows = starts[:, None] + np.arange(m + k)[None, :]

        def take(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(array[bodies[:, None], rows]).double()

        states, commands, after = take(data.states), take(data.commands), take(data.next_states)
        context = Transitions(states[:, :m], commands[:, :m], after[:, :m])
        query = Transitions(states[:, m:], commands[:, m:], after[:, m:])
        return context, query

    # --- training ----------------------------------------------------------------------------
    def update(self) -> dict[str, float]:
        """One outer update: theta <- theta - beta grad sum_i L_Ti(f_theta'_i) (MAML Eq. 2,
        GrBAL Alg. 1 line 8), by Adam."""
        context, query = self._sample()
        settings = self.config.adaptation
        loss, metrics = maml_loss(
            self.network,
            parameters(self.network),
            context,
            query,
            settings.inner_lr,
            settings.inner_steps,
            self.config.first_order,
        )
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.updates += 1
        return metrics

    def train(
        self, resume: bool = False, progress: bool = True, name: str = "", version: str = "1.0.0"
    ) -> Path:
        """Meta-trains to ``config.steps`` outer updates and writes the package.

        Raises:
            ConfigError: the checkpoint was made with another configuration, or the weights
                are not finite.
        """
        run = TrainingRun(
            self.config,
            self.out_dir,
            tag="meta",
            budget="steps",
            unit="update",
            command=self.command,
            progress=progress,
            label="meta",
        )
        state = run.resume() if resume else None
        self.collect(progress)
        if state is not None:
            self.restore(state)
        with run.session(done=self.updates, log_step=self.updates):
            window: list[dict[str, float]] = []
            while self.updates < self.config.steps:
                window.append(self.update())
                run.advance(1, loss=f"{window[-1]['query_loss_adapted']:.3f}")
                if self.updates % self.config.log_every == 0:
                    metrics = {key: float(np.mean([w[key] for w in window])) for key in window[0]}
                    run.log(self.updates, {"step": float(self.updates), **metrics})
                    window = []
                if self.updates % self.config.checkpoint_every == 0:
                    run.save(self.state())
        run.save(self.state())
        return self.package(run, name=name or f"{self.skill.name}-meta", version=version)

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds besides the config and the history."""
        return {
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "updates": self.updates,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continues from a checkpoint's :meth:`state`."""
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        self.updates = int(state["updates"])
        logger.info("resumed at update %d", self.updates)

    # --- packaging ---------------------------------------------------------------------------
    def make_skill(self) -> MetaDADSSkill:
        """The skill's policy with the meta-learned dynamics (float32) and the settings."""
        network = copy.deepcopy(self.network).float()
        return MetaDADSSkill(
            self.skill,
            LearnedDynamics(network, self.state_indices),
            self.config.adaptation,
            self.config.mppi,
        )

    def package(self, run: TrainingRun, name: str, version: str = "1.0.0") -> Path:
        """Writes the package (and the run's history) into ``out_dir``."""
        skill = self.make_skill()
        last = run.history[-5:] if run.history else [{}]

        def mean(key: str) -> float | None:
            values = [m[key] for m in last if key in m]
            return float(np.mean(values)) if values else None

        metrics = {
            "updates": self.updates,
            "bodies": self.config.bodies,
            "wall_seconds_this_session": round(run.seconds, 1),
            "query_loss_meta": mean("query_loss_meta"),
            "query_loss_adapted": mean("query_loss_adapted"),
            "first_query_loss_adapted": run.history[0]["query_loss_adapted"]
            if run.history
            else None,
        }
        path = run.package(
            skill,
            name=name,
            version=version,
            description=(
                f"{self.skill.name} with MAML meta-learned skill dynamics "
                f"(M={self.config.adaptation.context}, {self.config.adaptation.inner_steps} inner "
                f"step(s), alpha={self.config.adaptation.inner_lr:g}) over perturbed bodies of "
                f"{self.config.env_id}"
            ),
            metrics=metrics,
        )
        (path / "history.json").write_text(json.dumps(run.history) + "\n")
        logger.info("packaged %s (adaptation %s)", path, asdict(self.config.adaptation))
        return path
