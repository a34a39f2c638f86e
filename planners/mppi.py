"""Latent-space MPPI (and CEM) over a skill's dynamics: zero-shot goal following.

The planner searches over sequences of ``T`` commands, each held for the skill's ``hold_steps``,
by rolling them out through the skill-dynamics model ``q(s' | s, z)`` (DADS, Sharma et al. 2019,
Sec. 4: "planning using skill dynamics") and scoring the predicted states against a goal. MPPI
(Williams et al. 2017) updates the nominal plan with the softmax-of-negative-cost weighted
average of the sampled sequences; CEM refits a Gaussian to the elite samples.

Backends, chosen once in the constructor:

- ``numba``: the dynamics network is exported to ``kernels`` and rolled out there (fast path);
- ``torch``: any ``torch.nn.Module`` dynamics; the reference for the numba path;
- ``numpy``: any dynamics through its ``predict`` (e.g. analytic models).

Every iteration allocates nothing: noise, commands, states and costs live in buffers made here.

Online adaptation (GrBAL, Nagabandi et al. 2019): with an adapter (:meth:`LatentMPPI.use_adapter`),
every ``optimize()`` first hands the adapter the planning state and the command that ran since
the previous plan, and the adapter writes adapted weights in place into the packed network the
numba rollouts read, before any sample is rolled out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

import kernels
from hrl_runtime.errors import ConfigError, IncompatibleError
from hrl_runtime.high_level import HighLevel
from hrl_runtime.skill import Skill
from hrl_runtime.threads import SerialBlas, planner_threads

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "numba", "torch", "numpy")


@dataclass(frozen=True)
class MPPIConfig:
    """Configuration of :class:`LatentMPPI`."""

    num_samples: int = 1024
    """K: sampled command sequences per iteration."""
    horizon: int = 10
    """T: planned commands (each held for ``hold_steps`` control steps)."""
    iterations: int = 1
    """R: refinement iterations per ``optimize()``."""
    temperature: float = 0.1
    """MPPI lambda, in cost units (metres with the default Euclidean cost); smaller is greedier."""
    noise_scale: float = 0.5
    """Exploration std as a fraction of the command half-range."""
    noise_smoothing: float = 0.0
    """Time correlation of the noise, beta in [0, 1) (0 = white)."""
    step_weight: float = 0.1
    """Weight of the distance to the goal at each intermediate predicted state."""
    terminal_weight: float = 1.0
    """Weight of the distance at the last predicted state."""
    squared_distance: bool = False
    """Squared Euclidean (quadratic) goal cost instead of Euclidean."""
    smoothness_weight: float = 0.0
    """Weight of ``||z_t - z_{t-1}||^2`` between consecutive commands."""
    method: str = "mppi"
    """``mppi`` (weighted average) or ``cem`` (elite refit)."""
    elite_fraction: float = 0.1
    """CEM: share of samples kept as elites."""
    min_std: float = 0.05
    """CEM: floor on the refit std, as a fraction of the command half-range."""
    prior_fraction: float = 0.5
    """Share of samples drawn from the skill's prior ``p(z | s)`` when it offers one."""
    threads: int | None = None
    """numba threads of the rollouts, set on the planning thread at every ``optimize()``; None:
    whatever the loop running the planner set (every core inline, one fewer beside a control
    thread; see :mod:`hrl_runtime.threads`)."""
    backend: str = "auto"
    """``auto`` (numba if the dynamics exports an MLP, else torch, else numpy) or one of those."""
    seed: int = 0
    """Seed of the sampling noise; the same seed gives the same plans."""

    def validate(self) -> None:
        """Raises ConfigError naming the first bad field."""
        checks = [
            (self.num_samples >= 2, "num_samples must be >= 2"),
            (self.horizon >= 1, "horizon must be >= 1"),
            (self.iterations >= 1, "iterations must be >= 1"),
            (0 < self.temperature < np.inf, "temperature must be finite and > 0"),
            (self.noise_scale > 0, "noise_scale must be > 0"),
            (0 <= self.noise_smoothing < 1, "noise_smoothing must be in [0, 1)"),
            (self.method in ("mppi", "cem"), "method must be 'mppi' or 'cem'"),
            (0 < self.elite_fraction <= 1, "elite_fraction must be in (0, 1]"),
            (0 <= self.prior_fraction <= 1, "prior_fraction must be in [0, 1]"),
            (self.backend in BACKENDS, f"backend must be one of {BACKENDS}"),
            (self.threads is None or self.threads >= 1, "threads must be >= 1 or None"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"MPPIConfig: {message}")


class DynamicsAdapter(Protocol):
    """Adapts a packed dynamics network online (e.g. :class:`skill_library.meta.OnlineAdapter`).

    Called only from the thread that optimizes, in this order: ``bind`` once, ``reset`` at every
    episode, then at every optimization ``observe`` and ``adapt``.
    """

    def bind(self, network: kernels.MLPWeights) -> None:
        """Writes adapted weights into ``network.weights_flat`` and ``biases_flat`` in place."""

    def reset(self) -> None:
        """Forgets the episode's transitions and restores the meta-parameters."""

    def observe(self, step: int, state: np.ndarray, command: np.ndarray) -> None:
        """The planning state ``(ds,)`` at control step ``step`` and the command ``(dz,)``
        that ran since the previous observation."""

    def adapt(self) -> bool:
        """Adapts and hands the weights over; False when it had too little data to."""


class LatentMPPI(HighLevel):
    """MPPI/CEM over the commands of a skill that offers ``dynamics``.

    Args:
        skill: the skill whose commands are planned; must offer ``dynamics``.
        config: planner settings.
        goal_dims: entries of the dynamics state the goal refers to (default: the first
            ``min(2, ds)``).

    Raises:
        IncompatibleError: the skill has no dynamics, or the backend cannot run it.
    """

    def __init__(
        self,
        skill: Skill,
        config: MPPIConfig | None = None,
        goal_dims: tuple[int, ...] | None = None,
    ):
        config = config or MPPIConfig()
        config.validate()
        dynamics = skill.dynamics
        label = skill.name or type(skill).__name__
        if dynamics is None:
            raise IncompatibleError(
                f"skill {label!r} offers no dynamics, which latent MPPI plans with; choose a "
                "skill whose manifest lists a dynamics component (see `hrl skills list`)"
            )
        self.skill = skill
        self.dynamics = dynamics
        self.config = config
        K, T = config.num_samples, config.horizon
        ds = dynamics.state_dim
        dz = int(np.prod(skill.command_space.shape))
        self.goal_dims = np.asarray(goal_dims if goal_dims is not None else range(min(2, ds)))
        self.goal_dims = self.goal_dims.astype(np.int64)
        if self.goal_dims.size == 0 or self.goal_dims.max() >= ds or self.goal_dims.min() < 0:
            raise IncompatibleError(f"goal_dims {self.goal_dims.tolist()} out of range for ds={ds}")

        self.low = np.asarray(skill.command_space.low, np.float32).reshape(dz)
        self.high = np.asarray(skill.command_space.high, np.float32).reshape(dz)
        if not (np.all(np.isfinite(self.low)) and np.all(np.isfinite(self.high))):
            raise IncompatibleError(f"skill {label!r} has an unbounded command space")
        half_range = (self.high - self.low) / 2
        self.center = ((self.high + self.low) / 2).astype(np.float32)
        self.sigma = (config.noise_scale * half_range).astype(np.float32)
        self.min_std = (config.min_std * half_range).astype(np.float32)

        # Buffers: everything the hot loop touches is allocated here, once.
        self.mean = np.empty((T, dz), np.float32)
        self.std = np.empty((T, dz), np.float32)
        self.noise = np.empty((K, T, dz), np.float32)
        self.commands = np.empty((K, T, dz), np.float32)
        self.states = np.empty((K, T + 1, ds), np.float32)
        self.costs = np.empty(K, np.float32)
        self.weights = np.empty(K, np.float32)
        self.state = np.zeros(ds, np.float32)
        self.goal = np.zeros(self.goal_dims.size, np.float32)
        self.previous = np.zeros(dz, np.float32)
        self._zero_plan = np.zeros((T, dz), np.float32)
        self._fill = np.empty(dz, np.float32)
        self._unit = np.ones(dz, np.float32)
        self._command_out = np.empty(dz, np.float32)
        self.nominal_costs = np.full(config.iterations, np.nan, np.float64)
        self.n_elite = max(1, round(config.elite_fraction * K))
        self.n_prior = round(config.prior_fraction * K) if skill.prior is not None else 0
        self._obs: np.ndarray | None = None
        self._origin: int | None = None  # control step that plan entry 0 starts at
        self._executed_steps = 0  # control steps of the plan that ran since the last optimize
        self._has_goal = False
        self._adapter: DynamicsAdapter | None = None
        self._clock = 0  # control steps since the episode began (from advance())
        self._applied = np.zeros(dz, np.float32)  # the command that ran since the last plan

        self.backend = self._choose_backend(config.backend, label)
        self._rollout = getattr(self, f"_rollout_{self.backend}")
        kernels.warmup()  # compile before the first control tick, never inside it
        self.reset(None)
        logger.info("LatentMPPI on %s: backend %s, K=%d, T=%d", label, self.backend, K, T)

    # --- set-up --------------------------------------------------------------------------
    def _choose_backend(self, requested: str, label: str) -> str:
        exported = self.dynamics.export_mlp() if requested in ("auto", "numba") else None
        module = self.dynamics.torch_module() if requested in ("auto", "torch") else None
        if requested == "auto":
            requested = "numba" if exported else "torch" if module is not None else "numpy"
        if requested == "numba":
            if not exported:
                raise IncompatibleError(
                    f"the dynamics of {label!r} cannot be exported to the numba kernels; use "
                    "backend 'torch' or 'numpy'"
                )
            self._network = kernels.make_mlp_weights(**exported)
            blocks = planner_threads(asynchronous=False, requested=self.config.threads)
            self._workspace = kernels.make_rollout_workspace(
                self.config.num_samples, self._network, n_blocks=blocks
            )
        elif requested == "torch":
            if module is None:
                raise IncompatibleError(f"the dynamics of {label!r} is not a torch module")
            import torch

            self._torch = torch
            self._module = module.eval()
            self._commands_t = torch.from_numpy(self.commands)  # shares memory
        return requested

    # --- rollouts (one is bound in __init__) -----------------------------------------------
    def _rollout_numba(self) -> None:
        kernels.rollout(self.state, self.commands, self._network, self.states, self._workspace)

    def _rollout_torch(self) -> None:
        torch = self._torch
        self.states[:, 0] = self.state
        with torch.inference_mode():
            states = torch.from_numpy(self.states[:, 0])
            for t in range(self.config.horizon):
                states = self._module(states, self._commands_t[:, t])
                self.states[:, t + 1] = states.numpy()

    def _rollout_numpy(self) -> None:
        self.states[:, 0] = self.state
        for t in range(self.config.horizon):
            self.states[:, t + 1] = self.dynamics.predict(self.states[:, t], self.commands[:, t])

    # --- HighLevel lifecycle ---------------------------------------------------------------
    def reset(self, obs: np.ndarray | None) -> None:
        """Clears the plan (commands at the centre of the command space) and re-seeds."""
        self.rng = np.random.default_rng(self.config.seed)
        self.mean[:] = self.center
        self.std[:] = self.sigma
        self.previous[:] = self.center
        self._origin = None
        self._executed_steps = 0
        self._clock = 0
        self._applied[:] = self.center
        if self._adapter is not None:
            self._adapter.reset()
        if obs is not None:
            self.set_state(obs)

    def use_adapter(self, adapter: DynamicsAdapter) -> None:
        """Adapts the dynamics online from now on: every :meth:`optimize` starts with
        ``adapter.observe(step, state, command)`` and ``adapter.adapt()``, which writes the
        adapted weights into this planner's kernel network (numba backend only).

        Raises:
            IncompatibleError: the planner does not roll out with the numba kernels, or the
                adapter refuses the network.
        """
        if self.backend != "numba":
            raise IncompatibleError(
                f"online adaptation writes the numba kernels' weights; this planner uses the "
                f"{self.backend} backend (use backend 'auto' or 'numba')"
            )
        try:
            adapter.bind(self._network)
        except ValueError as error:
            raise IncompatibleError(str(error)) from None
        self._adapter = adapter
        adapter.reset()

    def set_goal(self, goal: np.ndarray) -> None:
        """Sets the goal ``(dg,)`` for the state entries ``goal_dims``."""
        goal = np.asarray(goal, np.float32).reshape(-1)
        if goal.shape != self.goal.shape or not np.all(np.isfinite(goal)):
            raise ConfigError(f"goal must be {self.goal.size} finite numbers, got {goal}")
        self.goal[:] = goal
        self._has_goal = True

    def advance(self, executed_steps: int) -> None:
        """Books ``executed_steps`` control steps of the plan as run; the next :meth:`optimize`
        shifts out the ``executed_steps // hold_steps`` entries that are over (warm start)."""
        self._executed_steps += max(0, int(executed_steps))
        self._clock += max(0, int(executed_steps))

    def set_state(self, obs: np.ndarray) -> None:
        self._obs = np.asarray(obs)
        self.state[:] = self.dynamics.state_of(self._obs)

    def optimize(self) -> None:
        """Warm-starts from the shifted previous plan, then runs R sample-evaluate-update
        iterations."""
        if not self._has_goal:
            raise ConfigError("LatentMPPI has no goal: call set_goal(goal) before optimize()")
        if self._adapter is not None:  # GrBAL Alg. 2: adapt, then plan with the adapted model
            self._adapter.observe(self._clock, self.state, self._applied)
            self._adapter.adapt()
        self._warm_start()
        config = self.config
        if config.threads is not None:
            kernels.set_threads(config.threads)  # per thread: the planning thread's pool
        with SerialBlas():  # the kernels' GEMMs run one thread each inside their parallel blocks
            self._iterate(config)
        self._applied[:] = self.mean[0]  # what the control path runs until the next plan

    def _iterate(self, config: MPPIConfig) -> None:
        for iteration in range(config.iterations):
            self._sample(refit=config.method == "cem" and iteration > 0)
            self._rollout()
            self._evaluate()
            self.nominal_costs[iteration] = self.costs[0]
            if config.method == "mppi":
                if kernels.mppi_weights(self.costs, config.temperature, self.weights):
                    # The new plan is the weighted average of the (clipped) samples.
                    kernels.mppi_update(
                        self._zero_plan, self.commands, self.weights, self.low, self.high, self.mean
                    )
            else:
                kernels.cem_update(
                    self.commands, self.costs, self.n_elite, self.mean, self.std, 0.0
                )
                np.maximum(self.std, self.min_std, out=self.std)

    def _warm_start(self) -> None:
        """Shifts the plan by the entries executed since the last optimize (MPPI warm start);
        the shifted-in entries repeat the last one."""
        executed = min(self._executed_steps // self.skill.hold_steps, self.config.horizon)
        self._executed_steps = 0
        self._origin = None  # the new plan starts at the next commanded step
        if executed == 0:
            return
        self.previous[:] = self.mean[executed - 1]
        for _ in range(executed):
            self._fill[:] = self.mean[-1]
            kernels.shift_plan(self.mean, self._fill)

    def _sample(self, refit: bool) -> None:
        """Fills ``commands`` with the nominal plan, prior draws and perturbed plans.

        Args:
            refit: scale the noise by CEM's refit std ``(T, dz)`` instead of ``sigma (dz,)``.
        """
        kernels.gaussian_noise(self.rng, self._unit if refit else self.sigma, self.noise)
        if self.config.noise_smoothing > 0:
            kernels.smooth_noise(self.noise, self.config.noise_smoothing)
        if refit:
            np.multiply(self.noise, self.std, out=self.noise)
        self.noise[0] = 0.0  # sample 0 is the nominal plan itself
        if self.n_prior:
            draws = self.skill.prior.sample(self._obs, self.n_prior * self.config.horizon, self.rng)
            prior = np.asarray(draws, np.float32).reshape(self.n_prior, self.config.horizon, -1)
            self.noise[1 : self.n_prior + 1] = prior[: self.config.num_samples - 1] - self.mean
        kernels.perturb(self.mean, self.noise, self.low, self.high, self.commands)

    def _evaluate(self) -> None:
        config = self.config
        kernels.goal_cost(
            self.states,
            self.goal,
            self.goal_dims,
            config.step_weight,
            config.terminal_weight,
            self.costs,
            config.squared_distance,
        )
        if config.smoothness_weight > 0:
            kernels.smoothness_cost(
                self.commands, self.previous, config.smoothness_weight, self.costs
            )

    def command(self, obs: np.ndarray, t: int) -> np.ndarray:
        """The planned command for step ``t``: the entry covering ``t``, counting from the first
        step commanded since the last optimization."""
        if self._origin is None:
            self._origin = t
        index = min((t - self._origin) // self.skill.hold_steps, self.config.horizon - 1)
        self._command_out[:] = self.mean[index]
        return self._command_out

    def nominal_plan(self) -> np.ndarray:
        """The mean plan ``(T, dz)`` (the buffer itself; the asynchronous loop copies it)."""
        return self.mean

    def plan_info(self) -> dict[str, Any]:
        """The mean plan ``(T, dz)``, its predicted trajectory ``(T + 1, ds)``, the lowest-cost
        sampled trajectories ``(16, T + 1, ds)`` of the last iteration, and the nominal cost of
        each iteration."""
        trajectory = np.empty((self.config.horizon + 1, self.state.size), np.float32)
        trajectory[0] = self.state
        for t in range(self.config.horizon):
            trajectory[t + 1] = self.dynamics.predict(trajectory[t : t + 1], self.mean[t : t + 1])
        order = np.argsort(np.where(np.isfinite(self.costs), self.costs, np.inf))[:16]
        return {
            "mean_plan": self.mean.copy(),
            "trajectory": trajectory,
            "samples": self.states[order].copy(),
            "nominal_costs": self.nominal_costs.copy(),
            "goal": self.goal.copy(),
            "goal_dims": self.goal_dims.copy(),
        }
