"""Body perturbations: wrappers that edit a MuJoCo model per episode and restore it on reset.

The body a skill runs on is never the one it was trained on (weaker motors, a payload, a damaged
leg). :class:`PerturbedBody` changes the live ``MjModel`` of the wrapped env at every reset,
either to one fixed :class:`Perturbation` (``--perturb gain=0.4,mirror=x`` on the CLI) or to one
drawn from a :class:`PerturbationDistribution` (meta-training over bodies, Nagabandi et al. 2019).
Every reset first restores the model's original arrays, so perturbations never accumulate, and
:meth:`PerturbedBody.close` leaves the model as it was built.

Perturbations:

- ``gain``: scale of every actuator's gear (motor strength), > 0;
- ``mirror``: ``x``, ``y`` or ``xy``: the sign of the actuators driving those slide joints flips
  (the point mass pushes the other way along that axis);
- ``mass``: scale of every body's mass and inertia, > 0;
- ``leg``: Ant's crippled leg ``1..4``: the gear of its hip and ankle actuators is zero.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium
import mujoco
import numpy as np

MIRROR_AXES = ("x", "y", "xy")
"""Values of ``mirror``: which slide-joint axes have their actuator sign flipped."""
NAMES = ("gain", "mirror", "mass", "leg")
"""The perturbation names ``--perturb NAME=VALUE`` accepts."""
MAX_SCALE = 100.0
"""Largest ``gain`` or ``mass`` scale accepted (and smallest: its inverse)."""


class PerturbationError(ValueError):
    """A perturbation that is malformed or does not apply to the body (one-line message)."""


@dataclass(frozen=True)
class Perturbation:
    """One body: how the nominal model is changed. The defaults change nothing."""

    gain: float = 1.0
    """Actuator gear scale (1 = nominal)."""
    mirror: str = ""
    """Axes whose actuators push the other way: ``""``, ``x``, ``y`` or ``xy`` (point mass)."""
    mass: float = 1.0
    """Body mass and inertia scale (1 = nominal)."""
    leg: int = 0
    """Ant's crippled leg, 1..4 (its actuators do nothing); 0 = none."""

    def __post_init__(self) -> None:
        for name in ("gain", "mass"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 1.0 / MAX_SCALE <= value <= MAX_SCALE):
                raise PerturbationError(
                    f"perturbation {name}={value!r} must be a finite scale in "
                    f"[{1.0 / MAX_SCALE:g}, {MAX_SCALE:g}] (1 = nominal)"
                )
        if self.mirror not in ("", *MIRROR_AXES):
            raise PerturbationError(
                f"perturbation mirror={self.mirror!r} must be one of {', '.join(MIRROR_AXES)}"
            )
        if not 0 <= self.leg <= 4:
            raise PerturbationError(f"perturbation leg={self.leg!r} must be a leg 1..4 of Ant")

    @property
    def nominal(self) -> bool:
        """True when nothing changes."""
        return self == Perturbation()

    def label(self) -> str:
        """``NAME=VALUE,...`` of what differs from nominal (``nominal`` when nothing does)."""
        parts = [
            f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"
            for name, value in asdict(self).items()
            if value != getattr(Perturbation(), name)
        ]
        return ",".join(parts) or "nominal"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def parse(cls, text: str) -> Perturbation:
        """Parses ``NAME=VALUE[,NAME=VALUE...]`` (names in :data:`NAMES`).

        Raises:
            PerturbationError: naming the malformed entry, one line.
        """
        if len(text) > 200:
            raise PerturbationError(f"--perturb is {len(text)} characters long; at most 200")
        values: dict[str, Any] = {}
        for part in (p.strip() for p in text.split(",")):
            name, sep, value = part.partition("=")
            name, value = name.strip(), value.strip()
            if not sep or name not in NAMES or not value:
                shown = part if len(part) <= 40 else part[:37] + "..."
                raise PerturbationError(
                    f"--perturb entry {shown!r} is not NAME=VALUE with NAME one of "
                    f"{', '.join(NAMES)} (e.g. --perturb gain=0.4,mirror=x)"
                )
            if name in values:
                raise PerturbationError(f"--perturb gives {name} twice")
            try:
                if name in ("gain", "mass"):
                    values[name] = float(value)
                elif name == "leg":
                    values[name] = int(value)
                else:
                    values[name] = value
            except ValueError:
                kind = "an integer leg 1..4" if name == "leg" else "a number"
                raise PerturbationError(f"--perturb {name}={value[:40]!r} is not {kind}") from None
        if values.get("leg") == 0:
            raise PerturbationError("--perturb leg=0 is not a leg; Ant's legs are 1..4")
        return cls(**values)


@dataclass(frozen=True)
class PerturbationDistribution:
    """Bodies to sample: each entry drawn independently at every reset.

    The default is the meta-training distribution of the point mass: motors from 25 % to 150 %
    strength except the held-out band ``gain_holdout`` (so evaluation bodies such as
    ``gain=0.4`` are never seen in training), each axis mirrored with probability
    ``mirror_probability``, and masses from 50 % to 200 %.
    """

    gain: tuple[float, float] = (0.25, 1.5)
    """Uniform range of the gear scale."""
    gain_holdout: tuple[float, float] | None = (0.35, 0.45)
    """A band of gear scales never drawn (redrawn uniformly from the rest); None: none."""
    mirror_probability: float = 0.5
    """Probability that each of the x and y actuator axes is mirrored."""
    mirror_axes: str = "xy"
    """Axes that may be mirrored (``""`` for bodies without slide joints, e.g. Ant)."""
    mass: tuple[float, float] = (0.5, 2.0)
    """Log-uniform range of the mass scale."""
    legs: tuple[int, ...] = ()
    """Ant legs one of which may be crippled (with probability ``leg_probability``)."""
    leg_probability: float = 0.0
    """Probability of a crippled leg."""

    def sample(self, rng: np.random.Generator) -> Perturbation:
        """One body drawn from the distribution."""
        low, high = self.gain
        gain = float(rng.uniform(low, high))
        if self.gain_holdout is not None:
            hold_low, hold_high = self.gain_holdout
            width = (high - low) - (hold_high - hold_low)
            gain = low + float(rng.uniform(0.0, width))
            if gain >= hold_low:
                gain += hold_high - hold_low
        mirror = "".join(
            axis for axis in self.mirror_axes if rng.uniform() < self.mirror_probability
        )
        mass = float(np.exp(rng.uniform(np.log(self.mass[0]), np.log(self.mass[1]))))
        leg = 0
        if self.legs and rng.uniform() < self.leg_probability:
            leg = int(rng.choice(self.legs))
        return Perturbation(gain=gain, mirror=mirror, mass=mass, leg=leg)


class PerturbedBody(gymnasium.Wrapper, gymnasium.utils.RecordConstructorArgs):
    """Edits the wrapped env's MuJoCo model at every reset: restores it, then applies the body.

    Args:
        env: an env whose ``unwrapped`` has a ``model`` (``mujoco.MjModel``): our point masses,
            Gymnasium's MuJoCo envs (Ant-v5).
        perturbation: the one body of every episode; or None with ``distribution``.
        distribution: bodies drawn at every reset from ``seed`` (the wrapper's own generator).
        seed: seed of the draws.

    Attributes:
        current: the body of the current episode (None before the first reset).

    Raises:
        PerturbationError: the env has no MuJoCo model, or the body does not apply to it (a
            mirrored axis without a slide joint of that name, a leg on a body without legs).
    """

    def __init__(
        self,
        env: gymnasium.Env,
        perturbation: Perturbation | None = None,
        distribution: PerturbationDistribution | None = None,
        seed: int = 0,
    ) -> None:
        gymnasium.utils.RecordConstructorArgs.__init__(
            self, perturbation=perturbation, distribution=distribution, seed=seed
        )
        gymnasium.Wrapper.__init__(self, env)
        if (perturbation is None) == (distribution is None):
            raise PerturbationError("PerturbedBody: give exactly one of perturbation, distribution")
        model = getattr(env.unwrapped, "model", None)
        if not isinstance(model, mujoco.MjModel):
            raise PerturbationError(
                f"--perturb needs a MuJoCo environment; {env.spec.id if env.spec else env} has "
                "no MjModel to edit"
            )
        self.model = model
        self.perturbation = perturbation
        self.distribution = distribution
        self.rng = np.random.default_rng(seed)
        self.current: Perturbation | None = None
        # The nominal arrays every reset starts from.
        self._gear = model.actuator_gear.copy()
        self._mass = model.body_mass.copy()
        self._inertia = model.body_inertia.copy()
        self._axis_actuators = {axis: self._actuators_of((axis,)) for axis in "xy"}
        self._leg_actuators = {
            leg: self._actuators_of((f"hip_{leg}", f"ankle_{leg}")) for leg in range(1, 5)
        }
        if perturbation is not None:
            self._check(perturbation)

    def _actuators_of(self, joints: tuple[str, ...]) -> list[int]:
        """Indices of the actuators that drive the named joints."""
        model = self.model
        found = []
        for actuator in range(model.nu):
            if model.actuator_trntype[actuator] != mujoco.mjtTrn.mjTRN_JOINT:
                continue
            joint = int(model.actuator_trnid[actuator, 0])
            if mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, joint) in joints:
                found.append(actuator)
        return found

    def _check(self, body: Perturbation) -> None:
        for axis in body.mirror:
            if not self._axis_actuators[axis]:
                raise PerturbationError(
                    f"mirror={body.mirror}: this body has no actuated slide joint {axis!r} to "
                    "mirror (mirror is for the point masses)"
                )
        if body.leg and not self._leg_actuators[body.leg]:
            raise PerturbationError(
                f"leg={body.leg}: this body has no hip_{body.leg}/ankle_{body.leg} joints (leg "
                "is for Ant-v5)"
            )

    def restore(self) -> None:
        """Puts the nominal model back."""
        self.model.actuator_gear[:] = self._gear
        self.model.body_mass[:] = self._mass
        self.model.body_inertia[:] = self._inertia
        self.current = None

    def apply(self, body: Perturbation) -> None:
        """Restores the nominal model, then applies ``body`` (it holds until the next reset).

        Raises:
            PerturbationError: the body does not apply to this model.
        """
        self._check(body)
        self.restore()
        model = self.model
        model.actuator_gear[:, 0] *= body.gain
        for axis in body.mirror:
            model.actuator_gear[self._axis_actuators[axis], 0] *= -1.0
        if body.leg:
            model.actuator_gear[self._leg_actuators[body.leg], 0] = 0.0
        model.body_mass[:] *= body.mass
        model.body_inertia[:] *= body.mass
        self.current = body

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Resets the env on the body of the new episode; ``info["perturbation"]`` names it."""
        body = self.perturbation
        if body is None:
            body = self.distribution.sample(self.rng)
        self.apply(body)
        # Derived constants of the new masses (subtree masses, inverse weights), before the
        # env's reset sets the state.
        mujoco.mj_setConst(self.model, self.env.unwrapped.data)
        obs, info = self.env.reset(seed=seed, options=options)
        info = {**info, "perturbation": body.label()}
        return obs, info

    def close(self) -> None:
        self.restore()
        super().close()
